"""`python -m qlab.train` is deterministic: two runs write byte-identical checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qlab.models import checkpoint_info, load_pretrained


def _train(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qlab.train", "mlp", "--epochs", "1", "--out", str(out), *args],
        capture_output=True, text=True, timeout=300,
    )


@pytest.mark.slow
def test_training_twice_gives_identical_checkpoints(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = _train(out)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "mlp: test accuracy" in result.stdout
        assert "mlp epoch 1/1" in result.stderr  # the tqdm progress bar
    assert (first / "mlp.pt").read_bytes() == (second / "mlp.pt").read_bytes()
    assert (first / "SHA256SUMS").read_text() == (second / "SHA256SUMS").read_text()
    meta = checkpoint_info("mlp", root=first)
    assert meta["epochs"] == 1 and 0.8 < meta["test_accuracy"] < 1.0
    assert f"{100 * meta['test_accuracy']:.2f}%" in (first / "README.md").read_text()
    model = load_pretrained("mlp", root=first)
    assert not model.training and all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_arguments_are_rejected(tmp_path):
    result = _train(tmp_path, "--epochs", "0")
    assert result.returncode != 0 and "must be >= 1" in result.stderr
    result = subprocess.run([sys.executable, "-m", "qlab.train", "resnet"], capture_output=True, text=True)
    assert result.returncode != 0 and "invalid choice: 'resnet'" in result.stderr


def test_retraining_into_the_shipped_directory_asks_to_update_the_hashes_in_code(tmp_path, monkeypatch, capsys):
    from qlab import train

    (tmp_path / "mlp.pt").write_bytes(b"retrained")
    monkeypatch.setattr(train, "CHECKPOINT_DIR", tmp_path)
    train._warn_on_changed_checkpoints(tmp_path, ["mlp"])
    assert "set CHECKPOINT_SHA256['mlp.pt']" in capsys.readouterr().err
