"""Lesson infrastructure: the one setup call of every notebook, and plain-text tables.

Every lesson's first code cell is::

    from qlab.notebook import setup
    setup()

which makes the notebook reproducible (seeds, a fixed thread count, short printed
numbers, deterministic figure metadata) and quiet (no warnings reach stderr, so nbval
has nothing machine-specific to compare).
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

PRINT_DIGITS = 4
RESULTS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
"""Where the benchmarks write their results (``benchmarks/results`` of the repository)."""

OTHER_THREADS_ENV = "QLAB_OTHER_THREADS"
"""Set to 1 to run every lesson with the other torch thread count (1 <-> 2): ``make test``'s
portability pass uses it to check that no stored number depends on the thread count."""

RC_PARAMS: dict[str, Any] = {
    "figure.figsize": (8.0, 3.6),
    "figure.dpi": 100,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "svg.hashsalt": "qlab",
}

INLINE_FIGURE_KWARGS: dict[str, Any] = {"bbox_inches": "tight", "metadata": {"Software": None}}


def _configure_ipython_figures() -> None:
    """Drop the matplotlib version from inline PNGs (only when running under IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        ip.run_line_magic("config", f"InlineBackend.print_figure_kwargs = {INLINE_FIGURE_KWARGS!r}")


def lesson_threads(threads: int) -> int:
    """The torch thread count a lesson runs with: ``threads``, or under
    ``QLAB_OTHER_THREADS=1`` the other one of 1 and 2 (``3 - threads``)."""
    if threads not in (1, 2):
        raise ValueError(f"threads must be 1 or 2 (a lesson runs on a 2-core laptop), got {threads!r}")
    return 3 - threads if os.environ.get(OTHER_THREADS_ENV) == "1" else threads


def setup(seed: int = 0, threads: int = 1) -> None:
    """Make a lesson reproducible and quiet; returns None so the cell prints nothing.

    - seeds ``random``, ``numpy`` and ``torch`` with ``seed``;
    - ``torch.set_num_threads(threads)`` (see :func:`lesson_threads`): printed numbers must not
      depend on the count, and ``make test`` checks that by running every lesson a second time
      with the other count and with torch's generic (non-AVX) kernels;
    - torch and numpy print ``PRINT_DIGITS`` significant decimals;
    - every warning is filtered (e.g. torch.ao's deprecation warnings), so none reaches stderr;
    - matplotlib rcParams for figures that stay readable when projected, and
      deterministic figure metadata (``svg.hashsalt``, no ``Software`` entry in PNGs).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(lesson_threads(threads))
    torch.set_printoptions(precision=PRINT_DIGITS, sci_mode=False)
    np.set_printoptions(precision=PRINT_DIGITS, suppress=True)
    warnings.filterwarnings("ignore")
    matplotlib.rcParams.update(RC_PARAMS)
    _configure_ipython_figures()


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return _cell(value.item(), digits)
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = PRINT_DIGITS) -> str:
    """Right-aligned plain-text table; floats get ``digits`` decimals."""
    cells = [list(headers)] + [[_cell(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = PRINT_DIGITS) -> None:
    """Print :func:`format_table` (one stdout message, so nbval waits once)."""
    print(format_table(headers, rows, digits))


def load_results(name: str) -> dict[str, Any]:
    """The committed results of benchmark ``name`` (``benchmarks/results/<name>.json``).

    Lessons print engine timings and long-running accuracies from these files instead of
    measuring them live, so the stored outputs do not depend on the learner's machine.
    """
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results file {path}; run benchmarks/{name}.py to write it")
    return json.loads(path.read_text())
