"""Train the reference models deterministically on CPU and write their checkpoints.

Usage (this exact command produced the shipped checkpoints)::

    python -m qlab.train cnn depthwise mlp

Each model is trained from ``torch.manual_seed(seed)`` with AdamW and a per-step cosine
learning-rate decay; the data order (and the random horizontal flips used for the conv
nets) come from a ``torch.Generator`` seeded with the same seed, so no DataLoader or
worker processes are involved. ``torch.use_deterministic_algorithms(True)`` is on and the
thread count is fixed to :data:`NUM_THREADS` = 2 (this machine's core count): with torch
2.13.0 on CPU, re-running the command reproduces bit-identical state_dicts (verified for
all three models: the checkpoint files are byte-identical). A different torch
version, thread count or CPU instruction set may change the low bits of the results.
Training all three takes about 3 minutes on 2 CPU cores.

After training, the model is evaluated on the test set, saved to
``<out>/<name>.pt`` as ``{"state_dict": ..., "meta": {...}}``, and ``<out>/SHA256SUMS``
and ``<out>/README.md`` (accuracy table generated from the checkpoints' metadata) are
rewritten.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from qlab.data import load_fashion_mnist, sha256_file
from qlab.evaluation import evaluate
from qlab.models import CHECKPOINT_DIR, CHECKPOINT_SHA256, MODEL_NAMES, build_model, checkpoint_info

__all__ = ["NUM_THREADS", "TRAIN_CONFIGS", "TrainConfig", "fit", "main", "train_model", "write_checksums", "write_readme"]

NUM_THREADS: int = 2
"""Intra-op thread count used for training; fixed because it can affect float results."""

REPRODUCE_COMMAND = "python -m qlab.train cnn depthwise mlp"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    hflip: bool = False
    seed: int = 0


TRAIN_CONFIGS: dict[str, TrainConfig] = {
    "cnn": TrainConfig(epochs=10, hflip=True),
    "depthwise": TrainConfig(epochs=8, hflip=True),
    "mlp": TrainConfig(epochs=8, lr=1e-3),
}
"""Default configuration per model name."""


def _batch(
    images: torch.Tensor, indices: torch.Tensor, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Gather a batch and, if ``hflip``, mirror each image left-right with probability 1/2."""
    x = images[indices]
    if hflip:
        flip = torch.rand(len(indices), generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


Callback = Callable[[int, float, float], None]
"""``callback(step, loss, batch_accuracy)``, called after every optimizer step."""

Regularizer = Callable[[nn.Module], torch.Tensor]
"""``regularizer(model)`` returns a scalar added to the task loss (e.g. a QAT penalty)."""


def fit(
    model: nn.Module,
    config: TrainConfig,
    *,
    max_steps: int | None = None,
    regularizer: Regularizer | None = None,
    callback: Callback | None = None,
    num_threads: int = NUM_THREADS,
    desc: str = "train",
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` in place: AdamW, cosine decay per step, cross-entropy, seeded data order.

    Deterministic on CPU: ``torch.manual_seed(config.seed)``, data order and flips from a
    ``torch.Generator`` seeded with ``config.seed``, deterministic algorithms, ``num_threads``
    intra-op threads. Runs ``config.epochs`` epochs, or stops after ``max_steps`` optimizer
    steps (the cosine schedule then spans ``max_steps``). Shows a tqdm progress bar per epoch
    run (``tqdm.auto``: a widget in notebooks), unless ``progress=False``. The model is left in eval mode. ``data`` =
    (images, labels) to train on; default the full training split.

    Returns:
        ``{"loss": ..., "accuracy": ..., "steps": ...}``: mean training loss (task loss, without
        the regularizer) and accuracy over the last epoch's batches, and steps taken.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    with deterministic_cpu(num_threads):
        return _fit(model, config, max_steps, regularizer, callback, desc if progress else None, data)


@contextlib.contextmanager
def deterministic_cpu(num_threads: int) -> Iterator[None]:
    """Within the block: ``num_threads`` torch threads and deterministic algorithms; both
    settings are restored afterwards, so a notebook or test keeps its own."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _fit(model: nn.Module, config: TrainConfig, max_steps: int | None, regularizer: Regularizer | None,
         callback: Callback | None, desc: str | None, data: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, float]:
    """The loop of :func:`fit` (threads and determinism already set; ``desc=None``: no progress bar)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    images, labels = load_fashion_mnist("train") if data is None else data
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(images) // config.batch_size)
    total = config.epochs * steps_per_epoch if max_steps is None else min(max_steps, config.epochs * steps_per_epoch)
    epochs = -(-total // steps_per_epoch)  # epochs actually run (fewer than config.epochs if max_steps stops early)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    loss_fn = nn.CrossEntropyLoss()

    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        progress = tqdm(order.split(config.batch_size)[: total - step], desc=f"{desc} epoch {epoch}/{epochs}", unit="batch",
                        disable=desc is None)
        for indices in progress:
            x = _batch(images, indices, config.hflip, generator)
            y = labels[indices]
            logits = model(x)
            loss = loss_fn(logits, y)
            full = loss if regularizer is None else loss + regularizer(model)
            optimizer.zero_grad(set_to_none=True)
            full.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            batch_correct = (logits.argmax(dim=1) == y).sum().item()
            total_loss += loss.item() * len(y)
            correct += batch_correct
            seen += len(y)
            progress.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
            if callback is not None:
                callback(step, loss.item(), batch_correct / len(y))
    model.eval()
    return {"loss": total_loss / seen, "accuracy": correct / seen, "steps": step}


def train_model(name: str, config: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Train model ``name`` with ``config`` and return it (eval mode) with its metadata."""
    torch.manual_seed(config.seed)
    model = build_model(name)
    stats = fit(model, config, desc=name)
    meta: dict[str, Any] = {
        "model": name,
        "test_accuracy": evaluate(model, "test"),
        "final_epoch_train_accuracy": stats["accuracy"],
        "final_epoch_train_loss": stats["loss"],
        "epochs": config.epochs,
        "seed": config.seed,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "torch_version": str(torch.__version__),
        "num_threads": NUM_THREADS,
        "config": {**dataclasses.asdict(config), "optimizer": "AdamW", "schedule": "cosine per step"},
    }
    return model, meta


def write_checksums(out_dir: Path) -> None:
    """Rewrite ``out_dir/SHA256SUMS`` (``sha256sum`` format) for every ``*.pt`` in it."""
    lines = [
        f"{sha256_file(path)}  {path.name}\n"
        for path in sorted(out_dir.glob("*.pt"))
    ]
    (out_dir / "SHA256SUMS").write_text("".join(lines))


def write_readme(out_dir: Path) -> None:
    """Rewrite ``out_dir/README.md`` with an accuracy table read from the checkpoints."""
    rows = []
    for name in MODEL_NAMES:
        if not (out_dir / f"{name}.pt").is_file():
            continue
        meta = checkpoint_info(name, root=out_dir)
        rows.append(
            f"| `{name}` | {meta['test_accuracy'] * 100:.2f}% | {meta['num_parameters']:,} "
            f"| {meta['epochs']} | {meta['seed']} | {meta['torch_version']} | {meta['num_threads']} |"
        )
    text = "\n".join(
        [
            "# Pretrained checkpoints",
            "",
            "Generated by `qlab.train.write_readme` from the checkpoints' metadata; do not edit by hand.",
            "",
            "| Model | Test accuracy (FP32) | Parameters | Epochs | Seed | torch | Threads |",
            "|-------|---------------------:|-----------:|-------:|-----:|-------|--------:|",
            *rows,
            "",
            "Reproduce (deterministic on CPU with the torch version and thread count above):",
            "",
            f"    {REPRODUCE_COMMAND}",
            "",
            "Each `<name>.pt` is `{\"state_dict\": ..., \"meta\": {...}}`; `SHA256SUMS` is checked by",
            "`qlab.models.load_pretrained` before loading. Restore damaged files with",
            "`git checkout -- data/checkpoints`.",
            "",
        ]
    )
    (out_dir / "README.md").write_text(text)


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: train the named models and write their checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", choices=MODEL_NAMES, help="models to train")
    parser.add_argument("--epochs", type=_positive_int, help="override the per-model default number of epochs")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint directory")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        config = TRAIN_CONFIGS[name]
        if args.epochs is not None:
            config = dataclasses.replace(config, epochs=args.epochs)
        start = time.perf_counter()
        model, meta = train_model(name, config)
        torch.save({"state_dict": model.state_dict(), "meta": meta}, args.out / f"{name}.pt")
        print(
            f"{name}: test accuracy {meta['test_accuracy']:.4f}, "
            f"{meta['num_parameters']:,} parameters, trained in {time.perf_counter() - start:.0f} s"
        )
    write_checksums(args.out)
    write_readme(args.out)
    _warn_on_changed_checkpoints(args.out, args.models)


def _warn_on_changed_checkpoints(out_dir: Path, names: list[str]) -> None:
    """Tell the user to update ``qlab.models.CHECKPOINT_SHA256`` if a shipped checkpoint changed."""
    if out_dir.resolve() != CHECKPOINT_DIR.resolve():
        return
    for name in names:
        digest = sha256_file(out_dir / f"{name}.pt")
        if digest != CHECKPOINT_SHA256[f"{name}.pt"]:
            print(f"{name}.pt changed: set CHECKPOINT_SHA256[{name + '.pt'!r}] = {digest!r} in qlab/models.py",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
