"""Fine-tune the pretrained models with QAT and write the shipped QAT checkpoints.

Usage (this exact command produced the shipped checkpoints)::

    python -m qlab.qat_train cnn depthwise mlp

Each run starts from the shipped FP32 checkpoint, builds ``prepare_qat(model, 4, 4, "lsq",
**QAT_INIT)`` (BN folded, per-channel 4-bit weights, 4-bit per-tensor activations, every layer
at 4 bits, step sizes and activation ranges started from the MSE calibrator) and trains it with
:func:`qlab.train.fit` and :func:`recipe`: AdamW without weight decay (= Adam), the model's
learning rate :data:`QAT_LR` (1e-4 for cnn and mlp, 1e-3 for depthwise) with a per-step cosine
decay, 3 epochs, batch 128, seed 0, the model's own horizontal-flip setting,
:data:`NUM_THREADS` = 1 thread, deterministic algorithms. Re-running the command with torch
2.13.0 on CPU rewrites byte-identical files (the SHA-256 values in
:data:`QAT_CHECKPOINT_SHA256` and ``SHA256SUMS``).

How the recipe was chosen: on a validation split carved from the training set
(:func:`validation_split`: 5,000 training images held out, fine-tuning on the other 55,000),
never on the test set; the table is ``benchmarks/results/qat_accuracy_validation.md``, written by
``benchmarks/qat_recipe_selection.py``.

1. Start of the quantizers, on cnn W4A4 and mlp W3A3 with LSQ at lr 1e-3 and 1e-4: LSQ's paper
   initialisation (2 * mean|w| / sqrt(Qp), activations min/max) lost to the MSE calibrator's
   ranges (the initialisation of LSQ+, Bhalgat et al. 2020) in all four comparisons. The MSE
   search uses 256 histogram bins (candidate amax from max/16 up, as the default 2048 bins from
   bin 128) because a weight row holds at most 1,536 values; the default made the per-channel
   search minutes long.
2. Learning rate per model, LSQ with that start, lr 1e-4 / 3e-4 / 1e-3 (1e-4 is a tenth of the
   FP32 training rates 3e-3/1e-3, the usual fine-tuning choice) on each model's hardest floor
   case (cnn and depthwise W4A4, mlp W3A3; mlp W4A4 is already within noise of FP32 after PTQ).
   Rule (:func:`choose_lr`): the best validation accuracy, unless it beats lr 1e-4 by less than
   one standard error of the 5,000-image accuracy, in which case 1e-4 stays. The chosen rate
   applies to every method and setting of that model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from qlab.data import DataIntegrityError, load_fashion_mnist, sha256_file, verify_sha256
from qlab.evaluation import evaluate, predict_logits
from qlab.models import CHECKPOINT_DIR, MODEL_NAMES, load_pretrained
from qlab.qat import penalty, prepare_qat
from qlab.train import TRAIN_CONFIGS, Callback, TrainConfig, deterministic_cpu, fit, write_checksums

__all__ = ["NUM_THREADS", "QAT_CHECKPOINT_DIR", "RESULTS_FILE", "benchmark_results", "QAT_CHECKPOINT_SHA256", "QAT_INIT", "QAT_LR", "QAT_RECIPE", "choose_lr", "lr_text", "VALIDATION_SIZE", "accuracy_on", "finetune", "load_qat", "main", "prepared", "validation_split"]

NUM_THREADS: int = 1
"""One thread per run: the benchmark's runs are independent and can run side by side."""

QAT_RECIPE = TrainConfig(epochs=3, lr=1e-4, weight_decay=0.0)
"""Optimizer settings shared by every QAT fine-tune (``lr`` from :data:`QAT_LR`, ``hflip`` from the
model's own training recipe)."""

QAT_LR: dict[str, float] = {"cnn": 1e-4, "depthwise": 1e-3, "mlp": 1e-4}
"""Learning rate per model, chosen on the validation split by :func:`choose_lr` (module docstring)."""

QAT_INIT: dict[str, Any] = {"calibrator": "mse", "calibrator_options": {"num_bins": 256, "start_bin": 16}}
"""Where every QAT fine-tune's quantizers start (``prepare_qat`` options; chosen on the validation split)."""

QAT_CHECKPOINT_DIR: Path = CHECKPOINT_DIR / "qat"
CHECKPOINT_SETTINGS: dict[str, Any] = {"weight_bits": 4, "act_bits": 4, "method": "lsq", "granularity": "per_channel"}

RESULTS_FILE: Path = CHECKPOINT_DIR.parent.parent / "benchmarks" / "results" / "qat_accuracy.json"
"""Results of ``benchmarks/qat_accuracy.py`` (FP32, best PTQ and QAT accuracies per run)."""

QAT_CHECKPOINT_SHA256: dict[str, str] = {
    "cnn": "491ac3f83d4f347bc9bab526cb1b306d8b3f11c7816126563dd1c465fbb398b8",
    "depthwise": "164b84ecfffaad728a7f34b0404dc7d106c7d2e6ebf32a13618f4ccee80bd957",
    "mlp": "23aed9e653aa222a11432649a8cfc9c1f64f31b12fc3fdf4c44682c8eb43d85d",
}
"""SHA-256 of ``data/checkpoints/qat/<name>_w4a4_lsq.pt`` (also listed in its SHA256SUMS)."""


def benchmark_results(path: Path = RESULTS_FILE) -> dict[str, Any]:
    """The QAT benchmark's results: ``{"fp32": {model: acc}, "ptq": {"model/setting": {...}},
    "qat": {"model/setting/method": {...}}, ...}`` with accuracies in [0, 1]."""
    return json.loads(Path(path).read_text())


def recipe(name: str, epochs: int | None = None) -> TrainConfig:
    """:data:`QAT_RECIPE` with model ``name``'s learning rate (:data:`QAT_LR`) and flip setting
    (and ``epochs`` if given)."""
    config = dataclasses.replace(QAT_RECIPE, lr=QAT_LR[name], hflip=TRAIN_CONFIGS[name].hflip)
    return config if epochs is None else dataclasses.replace(config, epochs=epochs)


VALIDATION_SIZE: int = 5000
"""Training images held out to choose the QAT recipe (never the test set)."""


def lr_text(lr: float) -> str:
    """A learning rate as written in the tables: 1e-4, 3e-4, 1e-3."""
    return f"{lr:.0e}".replace("e-0", "e-")


def choose_lr(val_accuracy: dict[float, float], n: int = VALIDATION_SIZE, default: float = QAT_RECIPE.lr) -> float:
    """The learning rate to use, from ``{lr: validation accuracy in [0, 1]}``.

    The best one, unless it beats ``default`` by less than one standard error
    sqrt(p (1 - p) / n) of its accuracy p on ``n`` images: a lead inside the noise keeps the default.
    """
    if default not in val_accuracy:
        raise ValueError(f"val_accuracy must contain the default lr {default:g}, got {sorted(val_accuracy)}")
    best = max(val_accuracy, key=val_accuracy.__getitem__)
    p = val_accuracy[best]
    return best if p - val_accuracy[default] >= math.sqrt(p * (1 - p) / n) else default


def validation_split(n: int = VALIDATION_SIZE, seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((train_x, train_y), (val_x, val_y))``: the training split minus ``n`` held-out images.

    The held-out images are the *last* ``n`` of ``torch.randperm(60000)`` with seed ``seed``,
    the permutation whose first 512 images are ``qlab.data.calibration_subset()``, so the
    calibration images stay on the training side.
    """
    images, labels = load_fashion_mnist("train")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < len(images):
        raise ValueError(f"n must be an int in [1, {len(images) - 1}], got {n!r}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, val = order[:-n].sort().values, order[-n:]
    return (images[train], labels[train]), (images[val], labels[val])


def accuracy_on(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Top-1 accuracy of ``model`` on ``data = (images, labels)``, in [0, 1]."""
    images, labels = data
    return (predict_logits(model, images).argmax(dim=1) == labels).float().mean().item()


def prepared(name: str, weight_bits: int, act_bits: int | None, method: str, granularity: str = "per_channel",
             **qat_options: Any) -> nn.Sequential:
    """The QAT model every fine-tune of pretrained model ``name`` starts from, before any step:
    ``prepare_qat`` over :data:`QAT_INIT` (``qat_options`` override it), calibrated with
    :data:`NUM_THREADS` threads."""
    with deterministic_cpu(NUM_THREADS):
        return prepare_qat(load_pretrained(name), weight_bits, act_bits, method, granularity, **{**QAT_INIT, **qat_options})


def finetune(
    name: str,
    weight_bits: int,
    act_bits: int | None,
    method: str,
    granularity: str = "per_channel",
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    callback: Callback | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    on_prepared: Callable[[nn.Module], None] | None = None,
    **qat_options: Any,
) -> tuple[nn.Sequential, dict[str, float]]:
    """QAT fine-tune of pretrained model ``name``; returns the QAT model (eval) and fit's stats.

    ``on_prepared(model)`` is called with the QAT model before training (e.g. so a callback
    can inspect its weights). ``data`` = (images, labels) to train on (default: the whole
    training split; :func:`validation_split` for recipe selection); ``config`` replaces
    ``recipe(name, epochs)``; ``progress=False`` hides fit's tqdm bar; ``qat_options`` go to
    ``prepare_qat`` over :data:`QAT_INIT`.
    """
    model = prepared(name, weight_bits, act_bits, method, granularity, **qat_options)
    if on_prepared is not None:
        on_prepared(model)
    stats = fit(model, recipe(name, epochs) if config is None else config, max_steps=max_steps, callback=callback, num_threads=NUM_THREADS,
                regularizer=penalty if method == "penalty" else None, desc=f"{name} {method}", data=data,
                progress=progress)
    return model, stats


def checkpoint_path(name: str, root: Path | None = None) -> Path:
    """``<root>/<name>_w4a4_lsq.pt`` (root defaults to :data:`QAT_CHECKPOINT_DIR`)."""
    return (QAT_CHECKPOINT_DIR if root is None else Path(root)) / f"{name}_w4a4_lsq.pt"


def load_qat(name: str, *, root: Path | None = None) -> nn.Sequential:
    """The W4A4 LSQ QAT model ``name`` (eval mode), checked against its SHA-256 first.

    The shipped checkpoints are checked against :data:`QAT_CHECKPOINT_SHA256`; a checkpoint in
    another ``root`` against that directory's ``SHA256SUMS``.
    """
    path = checkpoint_path(name, root)
    hint = f"Restore it with `git checkout -- data/checkpoints/qat` or rebuild with `python -m qlab.qat_train {name}`."
    if root is None:
        if name not in QAT_CHECKPOINT_SHA256:
            raise DataIntegrityError(f"no SHA-256 recorded for the QAT checkpoint of {name!r}. {hint}")
        expected = QAT_CHECKPOINT_SHA256[name]
    else:
        sums = dict(line.split()[::-1] for line in (Path(root) / "SHA256SUMS").read_text().splitlines() if line.strip())
        expected = sums.get(path.name, "")
    verify_sha256(path, expected, hint)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = prepare_qat(load_pretrained(name), **CHECKPOINT_SETTINGS)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def save_checkpoint(name: str, model: nn.Module, stats: dict[str, float], out: Path) -> dict[str, Any]:
    """Evaluate the QAT model, save ``{"state_dict", "meta"}`` and return the metadata."""
    with deterministic_cpu(NUM_THREADS):
        accuracy = evaluate(model)
    meta = {
        "model": name, **CHECKPOINT_SETTINGS, "test_accuracy": accuracy,
        "final_epoch_train_accuracy": stats["accuracy"], "steps": stats["steps"],
        "config": dataclasses.asdict(recipe(name)), "init": QAT_INIT, "torch_version": str(torch.__version__), "num_threads": NUM_THREADS,
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta}, checkpoint_path(name, out))
    write_checksums(out)
    return meta


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: fine-tune the named models and write their QAT checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", choices=MODEL_NAMES, help="models to fine-tune")
    parser.add_argument("--out", type=Path, default=QAT_CHECKPOINT_DIR, help="checkpoint directory")
    args = parser.parse_args(argv)
    for name in args.models:
        model, stats = finetune(name, **CHECKPOINT_SETTINGS)
        meta = save_checkpoint(name, model, stats, args.out)
        print(json.dumps({"model": name, "test_accuracy": meta["test_accuracy"],
                          "sha256": sha256_file(checkpoint_path(name, args.out))}))


if __name__ == "__main__":
    main()
