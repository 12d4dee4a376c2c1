"""Every lesson notebook follows notebooks/TEMPLATE.md and is stored in an nbval-stable state."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SECTIONS = ("Learning objectives", "Time estimate", "Prerequisites", "Summary", "Try this")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
TEXT_MIMES = ("text/plain", "text/html", "text/latex", "image/svg+xml")
IMPORT_ROOTS = {"qlab", "torch", "numpy", "matplotlib", "IPython", "math"}
FORMULA_CALLS = {"sqrt", "rsqrt", "log10", "ones", "pow"}  # RMS, standard errors, dB, BN factors: qlab's job


def load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def output_texts(cell: nbformat.NotebookNode) -> list[str]:
    texts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            texts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            texts += [str(o.data[m]) for m in TEXT_MIMES if m in o.data]
        elif o.output_type == "error":
            texts.append(f"{o.ename}: {o.evalue}")
    return texts


def is_ignored(cell: nbformat.NotebookNode) -> bool:
    """nbval ignores the cell's outputs: tagged in the cell metadata, which students do not see."""
    return "nbval-ignore-output" in cell.metadata.get("tags", [])


def test_lessons_exist() -> None:
    assert len(LESSONS) >= 2, f"no lesson notebooks found in {NOTEBOOK_DIR}"


@pytest.fixture(params=LESSONS, ids=[p.name for p in LESSONS])
def nb(request: pytest.FixtureRequest) -> nbformat.NotebookNode:
    return load(request.param)


def test_every_code_cell_executed_with_outputs_stored(nb: nbformat.NotebookNode) -> None:
    cells = code_cells(nb)
    assert all(c.execution_count is not None for c in cells), "re-run `make execute-notebooks NB=...`"
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "cells ran out of order"
    assert sum(bool(c.outputs) for c in cells) >= len(cells) // 2


def test_first_code_cell_calls_setup(nb: nbformat.NotebookNode) -> None:
    first = code_cells(nb)[0].source
    assert "from qlab.notebook import" in first and re.search(r"^setup\(.*\)$", first, re.M)


def test_template_sections_present(nb: nbformat.NotebookNode) -> None:
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert markdown.lstrip().startswith("# "), "a lesson starts with its title"
    for section in SECTIONS:
        assert section.lower() in markdown.lower(), f"missing template section {section!r}"


def test_at_least_two_exercises_check_correct(nb: nbformat.NotebookNode) -> None:
    checks = [c for c in code_cells(nb) if re.search(r"^check_\w+\(", c.source, re.M)]
    assert len(checks) >= 2
    for cell in checks:
        assert not is_ignored(cell) and stdout(cell).startswith("Correct!"), cell.source


def test_dashboard_displayed_then_checked(nb: nbformat.NotebookNode) -> None:
    cells = code_cells(nb)
    pairs = [
        (shown, checked) for shown, checked in zip(cells, cells[1:])
        if is_ignored(shown) and "from qlab.dashboards import" in shown.source and "display(" in shown.source
    ]
    assert pairs, "display a dashboard in a cell tagged 'nbval-ignore-output', followed by a checked cell"
    for _, checked in pairs:
        assert not is_ignored(checked) and not checked.metadata.get("tags"), "the cell after the dashboard must be checked"
        assert re.search(r"\.value = ", checked.source) and ".readout()" in checked.source
        assert stdout(checked).strip(), "the checked cell prints the readout"


def test_no_test_markers_in_sources(nb: nbformat.NotebookNode) -> None:
    """nbval markers live in cell tags (``nbval-ignore-output``...), not in code students read."""
    for cell in code_cells(nb):
        assert "NBVAL_" not in cell.source, f"use a cell tag instead of an nbval comment in:\n{cell.source}"


def test_dashboards_store_a_static_snapshot(nb: nbformat.NotebookNode) -> None:
    """Without a kernel (GitHub, nbviewer, a fresh JupyterLab) a widget view renders nothing:
    every dashboard cell stores the live widget followed by a PNG snapshot of its figure."""
    for cell in code_cells(nb):
        if "qlab.dashboards" not in cell.source:
            continue
        mimes = [set(o.get("data", {})) for o in cell.outputs if o.output_type == "display_data"]
        widget_at = [i for i, m in enumerate(mimes) if "application/vnd.jupyter.widget-view+json" in m]
        assert widget_at, f"no widget displayed by:\n{cell.source}"
        for i in widget_at:
            assert i + 1 < len(mimes) and "image/png" in mimes[i + 1], f"no snapshot after the widget of:\n{cell.source}"


def test_outputs_are_reproducible(nb: nbformat.NotebookNode) -> None:
    for cell in code_cells(nb):
        assert not any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs), cell.source
        assert not any(o.output_type == "error" for o in cell.outputs), cell.source
        if is_ignored(cell):
            continue
        for text in output_texts(cell):
            assert not ADDRESS.search(text), f"memory address in output of:\n{cell.source}"
            assert "Warning" not in text and "it/s]" not in text, f"warning or progress bar in:\n{cell.source}"


def test_no_timing_or_widget_state_stored(nb: nbformat.NotebookNode) -> None:
    assert "widgets" not in nb.metadata, "store_widget_state must be off"
    for cell in nb.cells:
        assert "execution" not in cell.metadata, "record_timing must be off"


def code_tokens(source: str) -> list[tokenize.TokenInfo]:
    """The tokens of a cell's code, strings and comments dropped."""
    skip = (tokenize.STRING, tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    return [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]


def is_exercise(cell: nbformat.NotebookNode) -> bool:
    """An exercise cell holds the learner's own (reference) solution: hand formulas belong there."""
    return bool(re.search(r"^check_\w+\(", cell.source, re.M))


def test_imports_come_from_qlab_or_the_stack(nb: nbformat.NotebookNode) -> None:
    for cell in code_cells(nb):
        for root in re.findall(r"^\s*(?:from|import) (\w+)", cell.source, re.M):
            assert root in IMPORT_ROOTS, f"lesson code comes from qlab; {root!r} imported in:\n{cell.source}"


def test_dashboard_modules_only_give_widgets(nb: nbformat.NotebookNode) -> None:
    """Lesson tensors and computations come from compute modules, never from a dashboard module:
    a dashboard module is imported only in the (output-ignored) cell that displays its widget."""
    for cell in code_cells(nb):
        if "qlab.dashboards" in cell.source:
            assert is_ignored(cell) and "display(" in cell.source, cell.source


def test_exercises_come_from_the_lessons_module(request: pytest.FixtureRequest, nb: nbformat.NotebookNode) -> None:
    lesson = Path(request.node.callspec.id).name[:2]
    modules = {m for c in code_cells(nb) for m in re.findall(r"^from qlab\.exercises(\.\w+)? import", c.source, re.M)}
    assert modules == {f".lesson{lesson}"}


def test_no_helpers_or_inline_formulas_outside_exercises(nb: nbformat.NotebookNode) -> None:
    """Functions and formulas (RMS, standard errors, BN factors, dB) live in qlab, where they are
    tested; a notebook calls them. Exercise cells are exempt: there the learner computes by hand."""
    for cell in code_cells(nb):
        if is_exercise(cell):
            continue
        tokens = code_tokens(cell.source)
        assert not any(t.string == "def" for t in tokens), f"define functions in qlab, not in:\n{cell.source}"
        calls = [a.string for a, b in zip(tokens, tokens[1:]) if a.type == tokenize.NAME and b.string == "(" and a.string in FORMULA_CALLS]
        assert not calls, f"inline formula ({', '.join(calls)}) in:\n{cell.source}"
