"""Tests for qlab.models and the shipped checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from qlab.data import DataIntegrityError, sha256_file
from qlab.evaluation import evaluate
from qlab import models
from qlab.models import CHECKPOINT_DIR, CHECKPOINT_SHA256, MODEL_NAMES, build_model, checkpoint_info, load_pretrained

ACCURACY_THRESHOLDS = {"cnn": 0.91, "depthwise": 0.89, "mlp": 0.88}
ALLOWED_LAYERS = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.Linear,
    nn.ReLU,
    nn.ReLU6,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape(name: str) -> None:
    model = build_model(name)
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_are_flat_sequentials_of_walkable_layers(name: str) -> None:
    model = build_model(name)
    assert isinstance(model, nn.Sequential)
    for layer_name, layer in model.named_children():
        assert isinstance(layer, ALLOWED_LAYERS), f"{layer_name} is {type(layer).__name__}"


@pytest.mark.parametrize("name", ["cnn", "depthwise"])
def test_every_conv_is_bias_free_and_followed_by_batchnorm(name: str) -> None:
    layers = list(build_model(name).children())
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    assert convs
    for i in convs:
        assert layers[i].bias is None
        assert isinstance(layers[i + 1], nn.BatchNorm2d)
        assert layers[i + 1].num_features == layers[i].out_channels


def test_depthwise_net_has_real_depthwise_layers() -> None:
    convs = [m for m in build_model("depthwise").modules() if isinstance(m, nn.Conv2d)]
    depthwise = [c for c in convs if c.groups > 1]
    assert len(depthwise) >= 3
    for conv in depthwise:
        assert conv.groups == conv.in_channels == conv.out_channels
    assert any(c.kernel_size == (1, 1) for c in convs)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pretrained_model_is_in_eval_mode_and_reaches_recorded_accuracy(name: str) -> None:
    model = load_pretrained(name)
    assert not any(module.training for module in model.modules())
    meta = checkpoint_info(name)
    assert meta["test_accuracy"] >= ACCURACY_THRESHOLDS[name]
    assert abs(evaluate(model) - meta["test_accuracy"]) <= 1e-4
    assert meta["num_parameters"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_checkpoint_metadata_records_training_setup(name: str) -> None:
    meta = checkpoint_info(name)
    assert meta["model"] == name
    assert meta["epochs"] == meta["config"]["epochs"] >= 1
    assert isinstance(meta["seed"], int)
    assert meta["torch_version"].startswith(torch.__version__.split("+")[0])
    assert (CHECKPOINT_DIR / f"{name}.pt").stat().st_size < 2_000_000


@pytest.fixture
def checkpoint_copy(tmp_path: Path) -> Path:
    """A writable copy of the MLP checkpoint and SHA256SUMS."""
    for filename in ("mlp.pt", "SHA256SUMS"):
        shutil.copyfile(CHECKPOINT_DIR / filename, tmp_path / filename)
    return tmp_path


def test_checkpoint_copy_loads(checkpoint_copy: Path) -> None:
    reference = load_pretrained("mlp").state_dict()
    loaded = load_pretrained("mlp", root=checkpoint_copy).state_dict()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)


def test_corrupted_checkpoint_is_rejected(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / "mlp.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=r"mlp\.pt.*expected SHA-256 [0-9a-f]{64}, got [0-9a-f]{64}"):
        load_pretrained("mlp", root=checkpoint_copy)
    with pytest.raises(DataIntegrityError, match="git checkout -- data/checkpoints"):
        checkpoint_info("mlp", root=checkpoint_copy)


def test_missing_checkpoint_and_checksum_entry(checkpoint_copy: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cnn\.pt.*python -m qlab\.train cnn"):
        load_pretrained("cnn", root=checkpoint_copy)
    (checkpoint_copy / "SHA256SUMS").write_text("")
    with pytest.raises(DataIntegrityError, match="no entry for mlp.pt"):
        load_pretrained("mlp", root=checkpoint_copy)


@pytest.mark.parametrize("function", [build_model, load_pretrained, checkpoint_info])
def test_unknown_model_name_lists_valid_names(function: object) -> None:
    with pytest.raises(ValueError, match=r"'resnet'.*'cnn', 'depthwise', 'mlp'"):
        function("resnet")  # type: ignore[operator]


def test_shipped_checkpoint_hashes_are_kept_in_code_and_match_sha256sums() -> None:
    listed = dict(reversed(line.split()) for line in (CHECKPOINT_DIR / "SHA256SUMS").read_text().splitlines())
    assert listed == CHECKPOINT_SHA256
    for filename, digest in CHECKPOINT_SHA256.items():
        assert sha256_file(CHECKPOINT_DIR / filename) == digest


def test_a_damaged_checkpoint_with_a_matching_sha256sums_is_rejected(checkpoint_copy: Path, monkeypatch) -> None:
    path = checkpoint_copy / "mlp.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    (checkpoint_copy / "SHA256SUMS").write_text(f"{sha256_file(path)}  mlp.pt\n")
    monkeypatch.setattr(models, "CHECKPOINT_DIR", checkpoint_copy)
    with pytest.raises(DataIntegrityError, match="CHECKPOINT_SHA256"):
        load_pretrained("mlp")
