"""qlab.presenter: a lesson's presenter notebook holds its dashboards and exactly what they need."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from qlab.presenter import (
    bound_names, free_names, is_dashboard_cell, needed_cells, presenter_css, presenter_notebook, write_presenter,
)

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def _code(source: str, tags: list[str] | None = None) -> dict:
    return {"cell_type": "code", "metadata": {"tags": tags or []}, "source": source, "outputs": [], "execution_count": None}


def _src(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def test_names_bound_and_read_by_a_cell():
    src = "import torch\nfrom qlab import x as y\nz = f(a) + y\nfor i in range(3):\n    w = i\ndef g():\n    pass\n"
    assert bound_names(src) == {"torch", "y", "z", "i", "w", "g"}
    assert free_names(src) == {"f", "a"}
    assert free_names("%matplotlib inline\nprint(b)") == {"b"}


def test_needed_cells_follow_names_transitively_and_take_the_latest_binding():
    cells = [_code("a = 1"), _code("a = 2\nunused = 0"), _code("b = a + 1"), {"cell_type": "markdown", "source": "b"},
             _code("c = 5"), _code("dash = D(b)", ["nbval-ignore-output"])]
    assert needed_cells(cells, [5]) == [1, 2, 5]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_presenter_notebook_of_each_lesson(path):
    lesson = json.loads(path.read_text())
    dashboards = [_src(c) for c in lesson["cells"] if is_dashboard_cell(c)]
    assert dashboards, f"{path.name}: no dashboard display cell"
    nb = presenter_notebook(lesson)
    code = [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c for c in code if c in dashboards] == dashboards
    # Every other code cell (setup and the dashboards' inputs) runs with its output captured,
    # except the style cell, and together they bind every name the dashboard cells read.
    support = [c for c in code if c not in dashboards]
    assert support[0].startswith("from IPython.display import HTML") and "qlab-dashboard" in support[0]
    assert all(c.startswith("%%capture\n") for c in support[1:])
    assert any("setup(" in c for c in support)
    bound = set().union(*(bound_names(c.removeprefix("%%capture\n")) for c in code)) | set(dir(builtins))
    assert all(free_names(c) <= bound for c in dashboards)
    assert nb["metadata"]["kernelspec"] == lesson["metadata"]["kernelspec"]


def test_write_presenter_keeps_the_lesson_name(tmp_path):
    target = write_presenter(LESSONS[0], tmp_path / "present")
    assert target.name == LESSONS[0].name
    assert json.loads(target.read_text())["cells"][0]["source"].startswith("# ")


def test_bad_zoom_and_lessons_without_dashboards_are_refused():
    with pytest.raises(ValueError, match="zoom"):
        presenter_css(10)
    with pytest.raises(ValueError, match="no dashboard"):
        presenter_notebook({"cells": [_code("x = 1")], "metadata": {"kernelspec": {}}})
