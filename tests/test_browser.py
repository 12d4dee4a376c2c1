"""The lessons in a real browser: JupyterLab started by `make lab`, driven in headless Chromium.

For every lesson (a temporary copy: JupyterLab autosaves): before any cell runs, each dashboard
cell shows its static snapshot; after Run All there is no error output, every dashboard
rendered, and moving one control redraws the figure and changes the readout. Lesson 07's
fine-tuning dashboard is only checked to render (its Train button is slow). Also: the presenter
view (Voilà) and the browser latency benchmark on one dashboard.

No Chromium is a failure naming the install command, never a skip.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from tools.jupyterlab_browser import (  # noqa: E402
    CANVAS, DASHBOARD, ERRORS_JS, Notebook, canvas_data_url, chromium_page, dashboard_controls, find_chromium,
    jupyterlab, lesson_copy, measure_move, readout_text, voila,
)

pytestmark = pytest.mark.slow
LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def stored_dashboards(name: str) -> int:
    """Number of dashboard outputs stored in the lesson file: widget views whose text fallback is
    ``[live dashboard: ...]`` (other widget views, e.g. progress bars, are not dashboards)."""
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    outputs = [out.get("data", {}) for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell["outputs"]]
    return sum(WIDGET_VIEW in data and "".join(data.get("text/plain", "")).startswith("[live dashboard:") for data in outputs)


@pytest.fixture(scope="module")
def lab():
    with lesson_copy() as folder, jupyterlab(folder) as server:
        yield server


@pytest.fixture(scope="module")
def page():
    try:
        find_chromium()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    with chromium_page() as browser_page:
        yield browser_page


def _wait_for_snapshots(nb: Notebook, expected: int, timeout_s: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        shots = nb.snapshot_images()
        if (len(shots) == expected and all(s["width"] > 0 for s in shots)) or time.monotonic() > deadline:
            return shots
        time.sleep(0.2)


def _is_trainer(root) -> bool:
    """A dashboard driven by a Train button (lesson 07's live fine-tuning)."""
    return root.locator(".widget-button", has_text="Train").count() > 0


def _check_dashboard_responds(page, root, where: str) -> None:
    controls = [c for c in dashboard_controls(root) if c.enabled()]
    assert controls, f"{where}: no enabled control"
    control = next((c for c in controls if c.kind == "slider"), controls[0])
    before = canvas_data_url(root), readout_text(root)
    move = measure_move(page, root, control)
    after = canvas_data_url(root), readout_text(root)
    assert move.canvas_ms is not None and after[0] != before[0], f"{where}: moving {control.label!r} did not redraw the figure"
    assert move.readout_ms is not None and after[1] != before[1], f"{where}: moving {control.label!r} did not change the readout"


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_in_jupyterlab_and_its_dashboards_respond(lab, page, name):
    expected = stored_dashboards(name)
    nb = Notebook(page, lab, name)
    nb.open()
    try:
        # Before any cell runs, no kernel holds the widgets: each dashboard shows its snapshot.
        shots = _wait_for_snapshots(nb, expected)
        assert len(shots) == expected and all(s["image"] and s["shown"] and s["width"] > 0 for s in shots), shots
        nb.run_all()
        assert nb.errors() == []
        roots = nb.dashboards()
        assert len(roots) == expected, f"{len(roots)} of {expected} dashboards rendered"
        # Live widgets hide their snapshot (the CSS rule they carry).
        assert [s["shown"] for s in nb.snapshot_images()] == [False] * expected
        for i, root in enumerate(roots):
            root.scroll_into_view_if_needed()
            where = f"{name} dashboard {i + 1}"
            if _is_trainer(root):
                assert root.locator("canvas").count() > 0 and readout_text(root).strip(), where
                continue
            _check_dashboard_responds(page, root, where)
        assert nb.errors() == []
    finally:
        lab.delete_sessions()


def test_browser_latency_benchmark_runs_on_one_dashboard(lab, page, tmp_path):
    from dashboard_latency_browser import reference_workload_ms, report, run_in_lab

    reference: list[float] = []
    [result] = run_in_lab(lab, page, ["01 signal quantizer"], moves=3, reference=reference)
    assert len(result.moves) == 3 and len(reference) == 1
    assert all(m.canvas_ms is not None and m.readout_ms is not None for m in result.moves), result.moves
    text = report([result], reference + [reference_workload_ms(repeats=1)], 3, ["- machine: test"])
    assert "| 01 signal quantizer | 100 |" in text


def test_presenter_view_shows_the_dashboards_without_code(page):
    with voila("01") as server:
        page.goto(f"{server.url}/?token={server.token}", timeout=180_000)
        page.wait_for_selector(f"{DASHBOARD} {CANVAS}", timeout=180_000)
        page.wait_for_load_state("networkidle")
        assert page.locator(".jp-CodeCell .jp-InputArea, .jp-InputArea-editor").count() == 0, "the presenter view shows code"
        assert "display(dash)" not in page.locator("body").text_content()
        roots = page.locator(DASHBOARD)
        assert roots.count() == stored_dashboards("01_rounding_and_clamping.ipynb")
        assert page.evaluate(ERRORS_JS) == []
        _check_dashboard_responds(page, roots.first, "presenter view of lesson 01")
        # Enlarged: the dashboard is drawn wider than its figure's own width (9 in at 80 dpi).
        assert roots.first.bounding_box()["width"] > 1.2 * 9 * 80
