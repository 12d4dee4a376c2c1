"""Student copies (`make student`, qlab.student): nbgrader's solution rule, no reference solution
left in any lesson's copy, every exercise cell well formed, and a copy that runs top to bottom."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbconvert.preprocessors import ExecutePreprocessor

from qlab import student

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob(student.LESSON_GLOB))
RUN_LESSON = "08_integer_only_inference.ipynb"  # the student copy executed here; the browser test runs the others
NBGRADER_KEYS = {"grade", "solution", "locked", "grade_id", "schema_version"}


def cell(source: str, solution: bool = True, cell_type: str = "code") -> nbformat.NotebookNode:
    make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    c = make(source)
    if solution:
        c.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "x", "schema_version": 3}
    return c


def solution_lines(source: str) -> list[str]:
    """The lines strictly between the markers."""
    inside = re.search(rf"^{student.BEGIN}\n(.*?)^{student.END}$", source, re.M | re.S)
    return inside.group(1).splitlines() if inside else []


# --- the rule (nbgrader's ClearSolutions with code stub "# YOUR CODE HERE") -----------------

def test_region_replaced_by_indented_stub_and_rest_kept():
    source = "# Exercise 1: x\nx = None\nif True:\n    ### BEGIN SOLUTION\n    x = 42\n    ### END SOLUTION\ncheck_x(x)"
    assert student.strip_solution(source) == ("# Exercise 1: x\nx = None\nif True:\n    # YOUR CODE HERE\ncheck_x(x)", True)


def test_no_markers_leaves_source_alone():
    assert student.strip_solution("x = 1") == ("x = 1", False)


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
    "x = 1\n### END SOLUTION",
])
def test_malformed_regions_raise(source):
    with pytest.raises(ValueError, match="source"):
        student.strip_solution(source)


def test_solution_cell_outputs_cleared_other_outputs_kept():
    nb = nbformat.v4.new_notebook()
    shown = cell("print('figure')", solution=False)
    shown.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "fig"})]
    shown.execution_count = 1
    exercise = cell("x = None\n### BEGIN SOLUTION\nx = 42\n### END SOLUTION\ncheck_x(x)")
    exercise.outputs = [nbformat.v4.new_output("stream", text="Correct!\n")]
    exercise.execution_count = 2
    feedback = cell("check_x_prediction(x)", solution=False)
    feedback.outputs = [nbformat.v4.new_output("stream", text="Correct! It is 42.\n")]
    feedback.execution_count = 3
    nb.cells = [shown, exercise, cell("the answer is 42", cell_type="markdown"), cell("y = 2"), feedback]
    copy = student.student_copy(nb)
    assert copy.cells[0] == shown
    assert copy.cells[1].source == "x = None\n# YOUR CODE HERE\ncheck_x(x)"
    assert copy.cells[1].outputs == [] and copy.cells[1].execution_count is None
    assert copy.cells[2].source == student.TEXT_STUB and copy.cells[3].source == student.CODE_STUB
    assert copy.cells[4].source == feedback.source and copy.cells[4].outputs == [], "a check's stored feedback gives the answer away"
    assert nb.cells[1].source.count("x = 42") == 1 and nb.cells[1].outputs, "the source notebook is left unchanged"


def output_cell(source: str, text: str) -> nbformat.NotebookNode:
    c = cell(source, solution=False)
    c.outputs = [nbformat.v4.new_output("stream", text=text)]
    c.execution_count = 1
    return c


def test_a_predictions_reveal_is_cleared_up_to_its_check():
    """Regression: the sweep and the table between a prediction and its check kept their outputs, so
    the answer was on the page before the student committed to a guess."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        output_cell("plot_histogram(w)", "a figure that teaches"),
        cell("# Prediction: higher or lower?\nmy_prediction = None\n### BEGIN SOLUTION\nmy_prediction = 'higher'\n### END SOLUTION"),
        output_cell("curves = sweep()", "the figure that answers"),
        cell("What the table shows", solution=False, cell_type="markdown"),
        output_cell("print_table(rows)", "40.00 against 38.79"),
        output_cell("check_activations_prediction(my_prediction)", "Correct!"),
        output_cell("print(curves)", "after the check"),
        cell("# Exercise 1: x\nmy_x = None\n### BEGIN SOLUTION\nmy_x = 1\n### END SOLUTION\ncheck_x(my_x)"),
        output_cell("print(2)", "after an exercise"),
    ]
    assert student.answer_spans(nb.cells) == [(1, 5), (7, 7)]
    copy = student.student_copy(nb)
    kept = [i for i, c in enumerate(copy.cells) if c.cell_type == "code" and c.outputs]
    assert kept == [0, 6, 8]
    assert all(copy.cells[i].execution_count is None for i in (1, 2, 4, 5, 7))
    assert copy.cells[3] == nb.cells[3]


def test_answer_names_and_checks():
    source = "# Exercise\nmy_clip, my_round = None, None\n### BEGIN SOLUTION\nmy_clip = 1\n### END SOLUTION\ncheck_split(my_clip, my_round)"
    assert student.answer_names(source) == {"my_clip", "my_round"}
    assert student.checks(source, {"my_clip", "my_round"})
    assert not student.checks("check_split(my_clip)", {"my_clip", "my_round"})
    assert not student.checks("print(check_split(my_clip, my_round))", {"my_clip"}), "a check is a line of its own"


def test_an_answer_no_check_mentions_is_cleared_alone():
    """A solution cell graded elsewhere (an nbgrader test cell, no ``check_`` call): only that cell is cleared."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell("my_answer = None\n### BEGIN SOLUTION\nmy_answer = 'a'\n### END SOLUTION"),
                output_cell("print(my_answer)", "a"), output_cell("check_other(other)", "x")]
    assert student.answer_spans(nb.cells) == [(0, 0)]
    assert student.student_copy(nb).cells[1].outputs == nb.cells[1].outputs


def test_markers_outside_a_solution_cell_raise():
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", solution=False)]
    with pytest.raises(ValueError, match="cell 0"):
        student.student_copy(nb)


def test_existing_copies_are_never_overwritten(tmp_path):
    src, dst = tmp_path / "notebooks", tmp_path / "lessons"
    src.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [cell("x = None\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\ncheck(x)")]
        nbformat.write(nb, src / name)
    dst.mkdir()
    (dst / "01_a.ipynb").write_text("a student's work")
    assert student.write_student_copies(src, dst) == [dst / "02_b.ipynb"]
    assert (dst / "01_a.ipynb").read_text() == "a student's work"
    assert "x = 1" not in (dst / "02_b.ipynb").read_text()
    assert student.write_student_copies(src, dst) == []


def test_no_lessons_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="src"):
        student.write_student_copies(tmp_path, tmp_path / "lessons")


# --- the lessons ----------------------------------------------------------------------------

@pytest.fixture(params=LESSONS, ids=[p.name for p in LESSONS])
def lesson(request: pytest.FixtureRequest) -> nbformat.NotebookNode:
    return nbformat.read(request.param, as_version=4)


def exercise_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if student.is_solution_cell(c) or student.BEGIN in c.source]


def test_every_exercise_cell_is_a_well_formed_solution_cell(lesson):
    """nbgrader metadata, one pair of markers around a non-empty solution, a comment line
    saying what to do, a blank ``name = None`` line before the markers, and a ``check_*`` call on
    that name after them: in the same cell, or (a prediction) in a later cell, after the reveal."""
    cells = exercise_cells(lesson)
    assert cells, "a lesson has exercises in nbgrader solution cells"
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in cells]
    assert len(set(ids)) == len(ids), f"grade_id repeated: {ids}"
    for c in cells:
        meta = c.metadata.get("nbgrader", {})
        assert c.cell_type == "code" and set(meta) == NBGRADER_KEYS, c.source
        assert meta["solution"] is True and meta["grade"] is False and meta["locked"] is False and meta["schema_version"] == 3
        assert re.fullmatch(r"lesson\d\d_\w+", meta["grade_id"]), meta["grade_id"]
        lines = c.source.split("\n")
        assert lines.count(student.BEGIN) == 1 and lines.count(student.END) == 1, c.source
        begin, end = lines.index(student.BEGIN), lines.index(student.END)
        assert begin + 1 < end, f"an empty solution in:\n{c.source}"
        assert any(line.startswith("# ") for line in lines[:begin]), f"a comment before the solution says what to do:\n{c.source}"
        blanks = [re.fullmatch(r"(\w+(?:, \w+)*) = None(?:, None)*", line) for line in lines[:begin]]
        names = [name for m in blanks if m for name in m.group(1).split(", ")]
        assert names, f"no blank `name = None` line before the solution:\n{c.source}"
        later = "\n".join(["\n".join(lines[end + 1:])] + [d.source for d in lesson.cells[lesson.cells.index(c) + 1:]])
        calls = re.findall(r"^check_\w+\((.*)\)", later, re.M)
        assert any(set(names) <= set(re.findall(r"\w+", args)) for args in calls), f"no check call on {names}:\n{c.source}"


def test_student_copy_has_no_solution_code(lesson):
    copy = student.student_copy(lesson)
    text = nbformat.writes(copy)
    assert student.BEGIN not in text and student.END not in text
    others = {line.strip() for c in lesson.cells if not student.is_solution_cell(c) for line in c.source.splitlines()}
    distinctive = [line.strip() for c in exercise_cells(lesson) for line in solution_lines(c.source)
                   if re.search(r"\w{3}", line) and line.strip() not in others]
    assert distinctive, "the reference solutions have lines of their own"
    sources = "\n".join(c.source for c in copy.cells)
    for line in distinctive:
        assert line not in sources, f"reference solution line left in the student copy: {line!r}"
    reveals = {k for first, last in student.answer_spans(lesson.cells) for k in range(first, last + 1)}
    for index, (original, stripped) in enumerate(zip(lesson.cells, copy.cells)):
        if student.is_solution_cell(original):
            assert stripped.outputs == [] and student.CODE_STUB in stripped.source
        elif student.CHECK_CALL.search(original.source):
            assert stripped.source == original.source and stripped.outputs == [], "no stored feedback on the reference answer"
        elif index in reveals and original.cell_type == "code":
            assert stripped.source == original.source and stripped.outputs == [], "no stored reveal before the prediction"
        else:
            assert stripped == original, "other cells are copied unchanged, outputs (dashboard snapshots) included"


def test_every_lesson_has_a_prediction_whose_reveal_is_cleared(lesson):
    """Each lesson's prediction is checked after its reveal: every code cell from the prediction to
    its check has no stored output in the copy, and the cells before it keep theirs."""
    spans = student.answer_spans(lesson.cells)
    predictions = [(first, last) for first, last in spans if last > first]
    assert predictions, "a lesson has at least one prediction, checked after its reveal"
    copy = student.student_copy(lesson)
    for first, last in predictions:
        revealed = [c for c in copy.cells[first:last + 1] if c.cell_type == "code"]
        assert len(revealed) >= 3 and all(c.outputs == [] for c in revealed), "prediction, reveal(s) and check"
    outputs_before = [c.outputs for c in copy.cells[:predictions[0][0]] if c.cell_type == "code"]
    assert any(outputs_before), "cells before the first prediction keep their outputs"


@pytest.mark.parametrize(("name", "answers"), [
    ("03_bit_width.ipynb", ["SQNR at 8 bits", "model at 8 bits"]),  # the table that answers "higher"
    ("04_range_choice.ipynb", ["calibrator           range"]),  # the calibrator table that answers "minmax"
])
def test_prediction_answers_are_not_in_the_copy(name, answers):
    """Regression: the sweep and tables that answer lessons 03 and 04's predictions were stored in the copy."""
    source = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    original, copied = (nbformat.writes(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(outputs=c.outputs) for c in nb.cells if c.cell_type == "code"]))
        for nb in (source, student.student_copy(source)))
    for text in answers:
        assert text in original and text not in copied, text


@pytest.mark.slow
def test_a_student_copy_runs_top_to_bottom():
    """The blank copy runs without an error and every check says "Not answered yet"."""
    copy = student.student_copy(nbformat.read(ROOT / "notebooks" / RUN_LESSON, as_version=4))
    ExecutePreprocessor(timeout=600).preprocess(copy, {"metadata": {"path": str(ROOT / "notebooks")}})
    checked = [c for c in copy.cells if c.cell_type == "code" and re.search(r"^check_\w+\(", c.source, re.M)]
    assert checked
    for c in checked:
        text = "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
        assert text.startswith("Not answered yet"), f"{c.source}\n->\n{text}"
