"""qlab: a hands-on kit for learning neural-network quantization."""
