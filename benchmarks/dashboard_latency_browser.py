"""Latency of every lesson dashboard as the learner sees it: in JupyterLab, in headless Chromium.

Usage (from the repository root; needs Chromium, see tools/jupyterlab_browser.py)::

    .venv/bin/python benchmarks/dashboard_latency_browser.py              # or: make benchmarks
    .venv/bin/python benchmarks/dashboard_latency_browser.py --only 01 05 --moves 30

The script starts JupyterLab through ``make lab`` on a temporary copy of the lessons and
measures each dashboard of ``qlab.dashboards.REGISTRY`` where the learner uses it: in its
lesson, after Run All (lessons show one or two live dashboards among their prose, figures and
exercises; a test notebook holding all nine live dashboards is slower per move by ~10 ms in the
browser and is not what anyone runs). Per dashboard it makes ``--moves`` control changes the
way a learner does (one arrow-key step on a slider, another option of a dropdown or toggle, a
click on a checkbox), round-robin over the enabled controls and preferring settings not visited
yet, so caches of visited results rarely help. For each move it times, in the page's clock,
from the input event to

- the figure: the last ``drawImage`` on the dashboard's ipympl canvas of that update (the
  picture the learner ends up seeing; kernel update + Agg draw + PNG transfer + browser paint);
- the readout: the first change of the dashboard's HTML readout (kernel update + one message).

It also times a fixed reference workload in the same run (:func:`reference_workload_ms`:
one Agg draw + PNG of a fixed figure and one fixed conv-net evaluation, one torch thread),
before each dashboard and after the last, and reports each dashboard's figure p50 as a
multiple of it, so results from machines of different speed can be compared, and scaled to the
slowest machine the budgets are for (:data:`SLOW_REFERENCE_MS`), where the budget is checked.
The table is written into
``benchmarks/results/dashboard_latency.md`` after the kernel-side table (which is kept).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from dashboard_latency import BROWSER_MARKER, RESULTS, machine_info  # noqa: E402
from qlab.dashboards._base import MEMO_ENV  # noqa: E402
from tools.jupyterlab_browser import (  # noqa: E402
    Control, Notebook, Server, chromium_page, dashboard_controls, jupyterlab, lesson_copy, measure_move, step_options,
)

MOVE_TIMEOUT_S = 10.0  # a move whose figure or readout has not changed by then counts as not observed
SETTLE_S = 2.0  # wait after scrolling a dashboard into view, before the reference and the moves
SLOW_REFERENCE_MS = 200.0
"""The reference workload on the slowest machine the budgets must hold on, assumed (not timed
there): issue 8's 2-core AVX2 EPYC ran the kernel-side benchmark about 2x slower than the machine
this results file comes from, whose reference workload takes ~95 ms when the machine is quiet, so
the check amounts to a figure p50 of at most ~47 ms here for a 100 ms budget. Each figure p50 is scaled by
``SLOW_REFERENCE_MS / reference`` before it is checked against its budget, the reference being
the mean of the timings just before and just after that dashboard's moves: the budgets keep
that 2x margin on a faster machine, and a shared (virtual) machine whose speed drifts during the
run (by up to 2x over minutes here) is measured against its speed at the time."""


@dataclass
class BrowserResult:
    """The moves measured on one dashboard (milliseconds; None: not observed)."""

    name: str
    budget_ms: float
    moves: list[Any] = field(default_factory=list)
    revisits: int = 0

    def samples(self, attr: str) -> list[float]:
        return [getattr(m, attr) for m in self.moves if getattr(m, attr) is not None]

    def p(self, attr: str, q: float) -> float:
        values = self.samples(attr)
        return float(np.percentile(values, q)) if values else float("nan")


def browser_budget_ms(dashboard_class: type) -> float:
    """The browser-observed p50 budget: ``dashboard_class.browser_budget_ms`` if set, else 100 ms
    for tensor-level dashboards (kernel budget <= 50 ms) and the kernel budget (300 ms) for
    whole-model ones."""
    kernel = dashboard_class.budget_ms
    return float(getattr(dashboard_class, "browser_budget_ms", 100.0 if kernel <= 50 else kernel))


def reference_workload_ms(repeats: int = 5) -> float:
    """Median milliseconds of a fixed workload: one Agg draw + PNG encoding of a fixed
    9 x 5.4 in, 80 dpi figure (2 axes, 2,000-point line, 64 bars) and one evaluation of the
    shipped ``cnn`` on 512 fixed random images, with one torch thread."""
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from qlab.models import load_pretrained

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = load_pretrained("cnn")
    images = torch.randn(512, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x = np.linspace(0, 10, 2000)
    times = []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            fig = Figure(figsize=(9.0, 5.4), dpi=80.0)
            ax1, ax2 = fig.subplots(1, 2)
            ax1.plot(x, np.sin(x) * np.exp(-x / 5))
            ax1.step(x[::40], np.round(4 * np.sin(x[::40])) / 4, where="mid")
            ax2.bar(np.arange(64), np.cos(np.arange(64) / 8) ** 2)
            FigureCanvasAgg(fig).print_png(io.BytesIO())
            with torch.inference_mode():
                model(images)
            times.append(1e3 * (time.perf_counter() - start))
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def _config(controls: list[Control]) -> tuple[str, ...]:
    return tuple(c.value() for c in controls)


def _next_move(controls: list[Control], turn: int, visited: set[tuple[str, ...]],
               direction: dict[int, str]) -> tuple[Control, str]:
    """Round-robin over the enabled controls from ``turn``: the first move predicted to reach an
    unvisited setting (sliders keep stepping one way and bounce at the ends)."""
    current = _config(controls)
    fallback = None
    for k in range(len(controls)):
        i = (turn + k) % len(controls)
        control = controls[i]
        if not control.enabled():
            continue
        options = step_options(control)
        if control.kind == "slider":
            if direction.get(i) not in options:
                direction[i] = options[0]
            return control, direction[i]
        for option in options:
            predicted = current[:i] + (option if control.kind != "checkbox" else str(current[i] != "True"),) + current[i + 1:]
            if predicted not in visited:
                return control, option
        fallback = fallback or (control, options[0])
    if fallback is None:
        raise RuntimeError("no enabled control")
    return fallback


def measure_dashboard(page: Any, root: Any, name: str, budget_ms: float, moves: int) -> BrowserResult:
    """``moves`` timed control changes on one dashboard (see the module docstring)."""
    controls = dashboard_controls(root)
    result = BrowserResult(name, budget_ms)
    visited = {_config(controls)}
    direction: dict[int, str] = {}
    for turn in range(moves):
        control, option = _next_move(controls, turn, visited, direction)
        result.moves.append(measure_move(page, root, control, option, timeout_s=MOVE_TIMEOUT_S))
        config = _config(controls)
        result.revisits += config in visited
        visited.add(config)
    return result


def run_in_lab(lab: Server, page: Any, names: list[str], moves: int, reference: list[float]) -> list[BrowserResult]:
    """Measure the dashboards ``names`` in the lessons the lab serves (each lesson Run All, its
    kernel shut down afterwards), timing the reference workload into ``reference`` before each.
    Results come in the order measured (lesson order)."""
    from qlab.dashboards import REGISTRY

    results: list[BrowserResult] = []
    for lesson in sorted(lab.root_dir.glob("[0-9][0-9]_*.ipynb")):
        wanted = [n for n in names if n[:2] == lesson.name[:2]]
        if not wanted:
            continue
        nb = Notebook(page, lab, lesson.name)
        nb.open()
        nb.run_all()
        if errors := nb.errors():
            raise RuntimeError(f"{lesson.name} failed: {errors}")
        for root in nb.dashboards():
            text, measured = root.text_content() or "", {r.name for r in results}
            name = next((n for n in wanted if REGISTRY[n].title in text and n not in measured), None)
            if name is None:
                continue
            root.scroll_into_view_if_needed()
            time.sleep(SETTLE_S)  # cells scrolled into view render (and ipympl sends their first frames)
            reference.append(reference_workload_ms(repeats=5))
            results.append(measure_dashboard(page, root, name, browser_budget_ms(REGISTRY[name]), moves))
            r = results[-1]
            print(f"{name}: reference {reference[-1]:.0f} ms, figure p50 {r.p('canvas_ms', 50):.0f} ms, "
                  f"readout p50 {r.p('readout_ms', 50):.0f} ms, {len(r.samples('canvas_ms'))}/{len(r.moves)} redraws",
                  file=sys.stderr, flush=True)
        lab.delete_sessions()
    if missing := sorted(set(names) - {r.name for r in results}):
        raise RuntimeError(f"no lesson shows the dashboards {missing}")
    return results


def report(results: list[BrowserResult], reference_ms: list[float], moves: int, info: list[str]) -> str:
    """The "In the browser" section; ``reference_ms`` holds a timing before each dashboard and one after the last."""
    if len(reference_ms) != len(results) + 1:
        raise ValueError(f"{len(reference_ms)} reference timings for {len(results)} dashboards: one before each and one after the last expected")
    ref = statistics.median(reference_ms)
    lines = [
        BROWSER_MARKER,
        "## In the browser",
        "",
        f"JupyterLab in headless Chromium (1366x768, device-pixel ratio 1), each dashboard in its lesson after Run All, "
        f"{moves} moves per dashboard "
        "(arrow-key steps, dropdown options, toggles; round-robin over the enabled controls, unvisited "
        "settings first), timed from the input event to the last canvas redraw of the update (figure) "
        "and to the readout's change. Generated by `benchmarks/dashboard_latency_browser.py`.",
        "",
        f"Reference workload (one Agg draw + PNG of a fixed figure and one `cnn` evaluation on 512 images, "
        f"1 thread), timed before each dashboard and after the last: median {ref:.1f} ms, "
        f"{min(reference_ms):.1f} to {max(reference_ms):.1f} ms. Each dashboard's reference is the mean of the timings "
        f"just before and after its moves; the budget is checked on the figure p50 scaled to a machine whose "
        f"reference takes {SLOW_REFERENCE_MS:.0f} ms, twice this machine type's: the 2-core machine of issue 8 ran "
        "the kernel-side benchmark about 2x slower (its reference was not timed there). Result caches are off "
        f"(`{MEMO_ENV}=0` in the lessons' kernels): every move is computed.",
        "",
        "| dashboard | budget p50 (ms) | figure p50 (ms) | figure p95 (ms) | reference (ms) | figure p50 / reference | "
        f"figure p50 at {SLOW_REFERENCE_MS:.0f} ms reference | "
        "readout p50 (ms) | readout p95 (ms) | moves with a redraw | revisited settings | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, r in enumerate(results):
        p50, local = r.p("canvas_ms", 50), (reference_ms[i] + reference_ms[i + 1]) / 2
        slow = p50 * SLOW_REFERENCE_MS / local
        ok = "pass" if slow <= r.budget_ms and r.p("canvas_ms", 95) <= 2 * p50 else "FAIL"
        lines.append(
            f"| {r.name} | {r.budget_ms:.0f} | {p50:.0f} | {r.p('canvas_ms', 95):.0f} | {local:.0f} | {p50 / local:.2f} | {slow:.0f} | "
            f"{r.p('readout_ms', 50):.0f} | {r.p('readout_ms', 95):.0f} | {len(r.samples('canvas_ms'))}/{len(r.moves)} | "
            f"{r.revisits} | {ok} |"
        )
    lines += ["", f"A dashboard passes when its figure p50, scaled to the {SLOW_REFERENCE_MS:.0f} ms reference, is within "
              "the budget and its p95 is at most twice its p50.",
              "", "Machine:", ""] + info
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace everything from :data:`BROWSER_MARKER` on in ``path`` by ``section`` (the
    kernel-side table before it is kept)."""
    old = path.read_text() if path.exists() else ""
    kept = old.split(BROWSER_MARKER)[0].rstrip("\n")
    path.write_text((kept + "\n\n" if kept else "") + section)


def main(argv: list[str] | None = None) -> int:
    from qlab.dashboards import REGISTRY

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="+", metavar="PREFIX",
                        help="measure only the dashboards whose name starts with a PREFIX (e.g. 05)")
    parser.add_argument("--details", type=Path, metavar="JSON",
                        help="also write every move (control, value, ms to first/last redraw and readout) to JSON")
    args = parser.parse_args(argv)
    names = [n for n in REGISTRY if not args.only or n.startswith(tuple(args.only))]
    info = machine_info()
    reference: list[float] = []
    os.environ[MEMO_ENV] = "0"  # inherited by the lab and its kernels: no move is served from a result cache
    with lesson_copy() as folder, jupyterlab(folder) as lab, chromium_page() as page:
        results = run_in_lab(lab, page, names, args.moves, reference)
    reference.append(reference_workload_ms())
    text = report(results, reference, args.moves, info)
    write_section(args.output, text)
    if args.details:
        args.details.write_text(json.dumps({r.name: [m.__dict__ for m in r.moves] for r in results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
