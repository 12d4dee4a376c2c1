"""Tests for qlab.data: the vendored Fashion-MNIST files and their loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from qlab import data
from qlab.data import (
    CLASS_NAMES,
    DATA_DIR,
    DataIntegrityError,
    calibration_subset,
    load_fashion_mnist,
    sha256_file,
)

TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _copy_test_split(dest: Path) -> Path:
    """Copy the test-split IDX files into ``dest`` and return it."""
    for name in TEST_FILES:
        shutil.copyfile(DATA_DIR / name, dest / name)
    return dest


def test_test_split_shapes_dtypes_and_balanced_classes() -> None:
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10_000, 1, 28, 28)
    assert images.dtype == torch.float32
    assert labels.shape == (10_000,)
    assert labels.dtype == torch.int64
    assert int(labels.min()) == 0 and int(labels.max()) == len(CLASS_NAMES) - 1
    assert torch.bincount(labels).tolist() == [1000] * 10


def test_train_split_is_normalised() -> None:
    images, labels = load_fashion_mnist("train")
    assert images.shape == (60_000, 1, 28, 28)
    assert labels.shape == (60_000,)
    assert abs(images.mean().item()) < 1e-3
    assert abs(images.std().item() - 1.0) < 1e-3
    # Pixel 0 and 255 map to the documented extremes.
    assert images.min().item() == pytest.approx((0.0 - data.MEAN) / data.STD)
    assert images.max().item() == pytest.approx((1.0 - data.MEAN) / data.STD)


def test_repeated_loads_are_cached() -> None:
    first = load_fashion_mnist("test")
    second = load_fashion_mnist("test")
    assert first[0] is second[0] and first[1] is second[1]


def test_vendored_files_match_sha256sums_and_code() -> None:
    listed = {}
    for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    assert listed == data._SHA256
    for name, digest in listed.items():
        assert sha256_file(DATA_DIR / name) == digest


def test_unknown_split_names_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"'validation'.*'train', 'test'"):
        load_fashion_mnist("validation")


def test_loading_from_a_copy_gives_identical_tensors(tmp_path: Path) -> None:
    images, labels = load_fashion_mnist("test", root=_copy_test_split(tmp_path))
    ref_images, ref_labels = load_fashion_mnist("test")
    assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels)


def test_missing_file_says_which_and_how_to_restore(tmp_path: Path) -> None:
    root = _copy_test_split(tmp_path)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_fashion_mnist("test", root=root)
    message = str(excinfo.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert "git checkout -- data/fashion-mnist" in message
    assert "/usr/share/datasets/fashion-mnist" in message


def test_corrupted_file_reports_both_hashes(tmp_path: Path) -> None:
    root = _copy_test_split(tmp_path)
    path = root / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError) as excinfo:
        load_fashion_mnist("test", root=root)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert data._SHA256["t10k-images-idx3-ubyte.gz"] in message
    assert sha256_file(path) in message
    assert "git checkout -- data/fashion-mnist" in message


def test_calibration_subset_is_the_documented_training_subset() -> None:
    subset = calibration_subset()
    assert subset.shape == (512, 1, 28, 28)
    assert torch.equal(subset, calibration_subset(512, seed=0))
    train_images, _ = load_fashion_mnist("train")
    indices = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))[:512]
    assert torch.equal(subset, train_images[indices])
    assert torch.equal(calibration_subset(16), subset[:16])
    assert not torch.equal(calibration_subset(512, seed=1), subset)


@pytest.mark.parametrize("n", [0, -1, 60_001, 1.5, True])
def test_calibration_subset_rejects_bad_n(n: object) -> None:
    with pytest.raises(ValueError, match="n must be an int"):
        calibration_subset(n)  # type: ignore[arg-type]


def test_a_file_changed_on_disk_is_checked_again(tmp_path: Path) -> None:
    root = _copy_test_split(tmp_path)
    load_fashion_mnist("test", root=root)
    path = root / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match="t10k-labels-idx1-ubyte.gz"):
        load_fashion_mnist("test", root=root)
