"""Latency of every lesson dashboard: one control change -> update -> full render.

Usage (from the repository root)::

    .venv/bin/python benchmarks/dashboard_latency.py            # or: make benchmarks
    .venv/bin/python benchmarks/dashboard_latency.py --clock cpu --iterations 100

For each dashboard in ``qlab.dashboards.REGISTRY`` the script changes one control at a
time (round-robin over the controls, a seeded random new value each time), which runs the
dashboard's observer: ``update()``, which with a front-end connected also renders and sends
the figure (Agg render + the PNG frame that ipympl sends to the browser, see
``qlab.dashboards._base.show_now``). It reports p50/p95 of the sum, writes ``benchmarks/results/dashboard_latency.md``
and exits with status 1 if any dashboard's p50 exceeds its ``budget_ms``.

Conditions, fixed so runs are comparable:
- ``torch.set_num_threads(dash.threads)``: 1 for tensor-level dashboards, 2 for whole-model
  ones (their lessons call ``setup(threads=2)``); the table reports the count;
- memoisation of visited configurations is off (``dash.memoize = False``), so every update
  is measured as an unvisited configuration;
- first-time work (building the dashboard: model loading, BN folding, calibration inputs;
  then ``dash.warm_up()``: every calibrator's ranges) is done before timing and reported
  separately under "First-time costs";
- the ipympl canvas behaves as with a connected JupyterLab front-end
  (``syncing_data_url = False``: one PNG per draw, not two);
- device-pixel ratio 1 (a projector or a normal laptop screen; HiDPI doubles both sides);
- ``--clock wall`` (default) measures wall time; ``--clock cpu`` measures the CPU time of
  the kernel thread, which stays meaningful when other processes load the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch

from qlab.dashboards import REGISTRY, Dashboard

RESULTS = Path(__file__).resolve().parent / "results" / "dashboard_latency.md"
BROWSER_MARKER = "<!-- browser-side table: benchmarks/dashboard_latency_browser.py -->"
"""Where the browser-side section of the results file starts; each script keeps the other's part."""
WARMUP = 5


@dataclass(frozen=True)
class Result:
    name: str
    budget_ms: float
    threads: int
    first_time_s: dict[str, float]
    wall_ms: list[float]
    cpu_ms: list[float]

    def p(self, clock: str, q: float) -> float:
        return float(np.percentile(self.wall_ms if clock == "wall" else self.cpu_ms, q))


def random_value(control: widgets.ValueWidget, rng: random.Random):
    """A random legal value for a slider, range slider, dropdown or checkbox."""
    if isinstance(control, widgets.Checkbox):
        return not control.value
    if isinstance(control, (widgets.Dropdown, widgets.ToggleButtons, widgets.RadioButtons)):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return rng.choice([v for v in values if v != control.value] or values)
    if isinstance(control, (widgets.IntRangeSlider, widgets.FloatRangeSlider)):
        return tuple(sorted(_number(control, rng) for _ in range(2)))
    return _number(control, rng)


def step_value(control: widgets.ValueWidget, rng: random.Random):
    """The value one key press away (ArrowRight on a slider, the next option), as a learner
    sweeping a control produces; back to the start at the end (``rng`` is unused)."""
    if isinstance(control, (widgets.Dropdown, widgets.ToggleButtons, widgets.RadioButtons)):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return values[(values.index(control.value) + 1) % len(values)]
    if isinstance(control, (widgets.IntRangeSlider, widgets.FloatRangeSlider)):
        lo, hi = control.value
        return (lo, hi + control.step) if hi + control.step <= control.max else (control.min, hi)
    if isinstance(control, (widgets.IntSlider, widgets.FloatSlider)):
        return control.value + control.step if control.value + control.step <= control.max else control.min
    return random_value(control, rng)


MOVES = {"random": random_value, "step": step_value}


def _number(control: widgets.ValueWidget, rng: random.Random) -> float:
    steps = round((control.max - control.min) / control.step)
    return type(control.min)(control.min + rng.randint(0, steps) * control.step)


def build_and_warm(build: Callable[[], Dashboard]) -> tuple[Dashboard, dict[str, float]]:
    """Build a dashboard with its own thread count, warm its caches; time both (seconds)."""
    torch.set_num_threads(getattr(build, "threads", 1))
    start = time.perf_counter()
    dash = build()
    costs = {"build (first update included)": time.perf_counter() - start}
    torch.set_num_threads(dash.threads)
    costs.update(dash.warm_up())
    dash.memoize = False
    return dash, costs


def run(name: str, dash: Dashboard, iterations: int, seed: int, first_time_s: dict[str, float],
        move: Callable = random_value) -> Result:
    rng = random.Random(seed)
    dash.canvas.syncing_data_url = False  # as once a JupyterLab front-end has connected
    dash.canvas.draw()
    wall, cpu = [], []
    for i in range(WARMUP + iterations):
        control = dash.controls[i % len(dash.controls)]
        value = move(control, rng)
        t0, c0 = time.perf_counter(), time.thread_time()
        control.value = value  # runs the observer: update(), which renders and sends the frame
        t1, c1 = time.perf_counter(), time.thread_time()
        if dash.last_error is not None:
            raise RuntimeError(f"{name}: update failed for {control.description}={value!r}: {dash.last_error}")
        if i >= WARMUP:
            wall.append(1e3 * (t1 - t0))
            cpu.append(1e3 * (c1 - c0))
    return Result(name, dash.budget_ms, dash.threads, first_time_s, wall, cpu)


def machine_info() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; load average before the run: {load}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"matplotlib {matplotlib.__version__}, ipywidgets {widgets.__version__}",
    ]


def report(results: list[Result], clock: str, iterations: int, info: list[str], moves: str) -> str:
    lines = [
        "# Dashboard latency",
        "",
        f"One control change ({moves} moves) -> `update()` (Agg render and PNG frame included), {iterations} iterations per dashboard "
        f"after {WARMUP} warm-up ones. Budget checked on the **{clock}** clock p50. Generated by "
        "`benchmarks/dashboard_latency.py` (see benchmarks/README.md).",
        "",
        "| dashboard | torch threads | budget p50 (ms) | wall p50 (ms) | wall p95 (ms) | CPU p50 (ms) | CPU p95 (ms) | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ok = "pass" if r.p(clock, 50) <= r.budget_ms else "FAIL"
        lines.append(
            f"| {r.name} | {r.threads} | {r.budget_ms:.0f} | {r.p('wall', 50):.1f} | {r.p('wall', 95):.1f} | "
            f"{r.p('cpu', 50):.1f} | {r.p('cpu', 95):.1f} | {ok} |"
        )
    lines += ["", "CPU time is that of the kernel thread only; with 2 torch threads wall time is the one to read.", "",
              "First-time costs (seconds, paid once per session, before the timed updates; calibration is cached "
              "per (calibrator, bits) afterwards). The dashboards run in one process in table order, so loading "
              "and checking the data set is paid by the first dashboard that needs it, and a dashboard's first "
              "update is part of its build:", ""]
    lines += [f"- {r.name}: {item}: {s:.2f} s" for r in results for item, s in r.first_time_s.items()]
    return "\n".join(lines + ["", "Machine:", ""] + info) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moves", choices=tuple(MOVES), default="random",
                        help="random: jump to a random value; step: one key press (next slider step or option)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="+", metavar="PREFIX",
                        help="measure only the dashboards whose name starts with a PREFIX (e.g. 07)")
    args = parser.parse_args()
    info = machine_info()
    results = []
    for name, build in REGISTRY.items():
        if args.only and not name.startswith(tuple(args.only)):
            continue
        dash, first_time_s = build_and_warm(build)
        results.append(run(name, dash, args.iterations, args.seed, first_time_s, MOVES[args.moves]))
    text = report(results, args.clock, args.iterations, info, args.moves)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    old = args.output.read_text() if args.output.exists() else ""
    browser_part = old[old.index(BROWSER_MARKER):] if BROWSER_MARKER in old else ""
    args.output.write_text(text + ("\n" + browser_part if browser_part else ""))
    print(text)
    failed = [r.name for r in results if r.p(args.clock, 50) > r.budget_ms]
    if failed:
        print(f"over budget: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
