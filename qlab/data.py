"""Fashion-MNIST, loaded from the IDX files vendored in ``data/fashion-mnist/``.

The four original ``.gz`` files ship with the repository (see
``data/fashion-mnist/README.md`` for provenance and licence), so nothing here ever
touches the network. Every file's SHA-256 is checked against the hashes below before it
is parsed, and the parsed tensors are cached by (split, directory, each file's size and
modification time), so only the first call per split pays for checking and decompression
(about half a second for the training set), and a file changed on disk is checked again.

Images come back as float32 tensors of shape ``(N, 1, 28, 28)``, normalised as
``(pixel / 255 - MEAN) / STD``; labels are int64 class indices into :data:`CLASS_NAMES`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CLASS_NAMES",
    "DATA_DIR",
    "MEAN",
    "STD",
    "SPLITS",
    "DataIntegrityError",
    "calibration_subset",
    "load_fashion_mnist",
    "sha256_file",
    "verify_sha256",
]

DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist"
"""Default location of the vendored IDX files."""

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST class names; label ``i`` means ``CLASS_NAMES[i]``."""

MEAN: float = 0.2860
"""Mean of all training-set pixels after scaling to [0, 1] (exactly 0.28604...)."""

STD: float = 0.3530
"""Standard deviation of all training-set pixels after scaling to [0, 1] (0.35302...)."""

SPLITS: tuple[str, ...] = ("train", "test")
"""Allowed values for the ``split`` argument of :func:`load_fashion_mnist`."""

_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Same values as data/fashion-mnist/SHA256SUMS. Kept in code as well so that a damaged
# SHA256SUMS file cannot make a damaged data file look valid.
_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
}

_IMAGE_MAGIC = 2051  # IDX: unsigned byte data, 3 dimensions
_LABEL_MAGIC = 2049  # IDX: unsigned byte data, 1 dimension
_RESTORE_HINT = (
    "Restore it with `git checkout -- data/fashion-mnist` or copy it from "
    "/usr/share/datasets/fashion-mnist/ (Debian package dataset-fashion-mnist)."
)


class DataIntegrityError(ValueError):
    """A data or checkpoint file exists but does not have the expected SHA-256."""


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, restore_hint: str) -> None:
    """Check that ``path`` exists and hashes to ``expected``.

    Raises:
        FileNotFoundError: ``path`` does not exist (message includes ``restore_hint``).
        DataIntegrityError: the digest differs (message names the file, both hashes and
            ``restore_hint``).
    """
    if not path.is_file():
        raise FileNotFoundError(f"Missing file {path}. {restore_hint}")
    actual = sha256_file(path)
    if actual != expected:
        raise DataIntegrityError(
            f"Checksum mismatch for {path}: expected SHA-256 {expected}, got {actual}. "
            f"The file is corrupted or was modified. {restore_hint}"
        )


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse a verified, gzipped IDX file of unsigned bytes into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = np.frombuffer(raw, dtype=">u4", count=1 + ndim)
    if int(header[0]) != magic:
        raise DataIntegrityError(f"{path}: bad IDX magic number {int(header[0])}, expected {magic}")
    shape = tuple(int(d) for d in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim))
    if data.size != int(np.prod(shape)):
        raise DataIntegrityError(f"{path}: header says shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def _file_state(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of ``path``, or None if it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=None)
def _load_cached(split: str, root: Path, _state: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Verify, parse and normalise one split; cached per ``(split, root, file states)``."""
    image_name, label_name = _FILES[split]
    for name in (image_name, label_name):
        verify_sha256(root / name, _SHA256[name], _RESTORE_HINT)
    images = _read_idx(root / image_name, _IMAGE_MAGIC, ndim=3)
    labels = _read_idx(root / label_name, _LABEL_MAGIC, ndim=1)
    if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise DataIntegrityError(
            f"{root}: unexpected shapes images={images.shape}, labels={labels.shape}"
        )
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    x = (x / 255.0 - MEAN) / STD
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def load_fashion_mnist(split: str, *, root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a Fashion-MNIST split as ``(images, labels)``.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images, 1,000 per class).
        root: directory holding the IDX ``.gz`` files; defaults to :data:`DATA_DIR`.

    Returns:
        ``images``: float32, shape ``(N, 1, 28, 28)``, normalised with :data:`MEAN` and
        :data:`STD`; ``labels``: int64, shape ``(N,)``, values in ``0..9``. The tensors are
        cached and shared between calls: clone them before modifying in place.

    Raises:
        ValueError: unknown ``split``.
        FileNotFoundError: a data file is missing.
        DataIntegrityError: a data file's SHA-256 does not match, or it is malformed.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root).resolve() if root is not None else DATA_DIR
    return _load_cached(split, root, tuple(_file_state(root / name) for name in _FILES[split]))


def calibration_subset(n: int = 512, seed: int = 0) -> torch.Tensor:
    """Return a fixed subset of ``n`` normalised *training* images for calibration.

    The subset is ``train_images[torch.randperm(60000, generator=g)[:n]]`` with
    ``g = torch.Generator().manual_seed(seed)``, so it is identical on every run and
    machine for a given ``(n, seed)``, and a smaller ``n`` gives a prefix of a larger one.
    It never contains test images, so calibrating on it does not leak the test set.

    Args:
        n: number of images, ``1 <= n <= 60000``.
        seed: seed of the permutation.

    Returns:
        float32 tensor of shape ``(n, 1, 28, 28)``.
    """
    images, _ = load_fashion_mnist("train")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(images):
        raise ValueError(f"n must be an int in [1, {len(images)}], got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(images), generator=generator)[:n]
    return images[indices]
