"""Student copies of the lessons: the reference solutions stripped by nbgrader's rule.

A lesson's exercise cell is an nbgrader *solution* cell (``metadata.nbgrader.solution`` true)
whose reference solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. The
student copy replaces that region, markers included, by ``# YOUR CODE HERE`` (indented like the
``BEGIN`` line), exactly as nbgrader's ``ClearSolutions`` preprocessor does with that code stub;
a solution cell without markers becomes the stub alone (a markdown one becomes
``YOUR ANSWER HERE``).

Outputs that would give an answer away are cleared (outputs and execution count) from these code cells:

- every solution cell (its stored "Correct!" follows the reference answer);
- every cell that grades an answer: a line starting ``check_...(``;
- every code cell of a *prediction's reveal*: a prediction is a solution cell whose blank answer
  (``name = None`` before the markers) is checked in a later cell, after cells that show the
  outcome (a sweep, a table, a figure) which the student must predict before running them. All code
  cells from the prediction up to and including the first later cell that calls ``check_...(`` on
  its answer are cleared (a solution cell whose answer no ``check_...(`` call mentions, graded
  elsewhere as in an nbgrader course, is cleared alone).

Every other cell keeps its outputs, dashboard snapshots and the figures that teach before a
prediction included, so a copy still reads well without a kernel. (An exercise's answer must
therefore not be printed outside these cells: that is the lesson's job, checked by its tests.)

Why not nbgrader itself (0.9.6, evaluated): it keeps qlab's pins, but for this one rule it adds
notebook 7, SQLAlchemy, alembic, Mako and RapidFuzz to the environment, enables four server
extensions and installs the ``@jupyter/nbgrader`` lab extension (Formgrader, Assignment List and
Courses menus, the Create Assignment toolbar) in every student's JupyterLab unless ``make`` also
disables them; importing ``nbgrader.preprocessors`` loads the grading database stack; and its
``ClearSolutions`` leaves the solution's outputs in place. The stripping rule below is the same, so
the lessons still drop into nbgrader courses unchanged.

``python -m qlab.student [SRC [DST]]`` (``make student``) writes ``DST/NN_*.ipynb`` (default
``lessons/``) for every lesson of ``SRC`` (default ``notebooks/``) that has no copy there yet:
a student's own file is never overwritten.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE"
TEXT_STUB = "YOUR ANSWER HERE"
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
CHECK_CALL = re.compile(r"^check_\w+\(", re.M)
CHECK_ARGS = re.compile(r"^check_\w+\((.*)\)", re.M)
BLANK_ANSWER = re.compile(r"^(\w+(?:, \w+)*) = None(?:, None)*$", re.M)


def is_solution_cell(cell: nbformat.NotebookNode) -> bool:
    """nbgrader's test: ``cell.metadata.nbgrader.solution`` is true."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def strip_solution(source: str, stub: str = CODE_STUB) -> tuple[str, bool]:
    """Replace every ``BEGIN``..``END`` region (markers included) by ``stub``, indented like ``BEGIN``.

    Returns the new source and whether a region was found. A marker is recognised anywhere in a
    line (nbgrader's rule); nested or unterminated regions raise ValueError."""
    lines, in_solution, found = [], False, False
    for line in source.split("\n"):
        if BEGIN in line:
            if in_solution:
                raise ValueError(f"source: nested {BEGIN!r} in\n{source}")
            in_solution = found = True
            indent = re.match(r"\s*", line).group(0)
            lines += [indent + s for s in stub.split("\n")]
        elif END in line:
            if not in_solution:
                raise ValueError(f"source: {END!r} without {BEGIN!r} in\n{source}")
            in_solution = False
        elif not in_solution:
            lines.append(line)
    if in_solution:
        raise ValueError(f"source: {BEGIN!r} without {END!r} in\n{source}")
    return "\n".join(lines), found


def answer_names(source: str) -> set[str]:
    """The names a solution cell leaves blank for the student: ``a = None`` or ``a, b = None, None``
    lines before its ``BEGIN`` marker."""
    head = source.split(BEGIN)[0]
    return {name for m in BLANK_ANSWER.finditer(head) for name in m.group(1).split(", ")}


def checks(source: str, names: set[str]) -> bool:
    """Whether ``source`` has a ``check_...(`` line whose arguments mention every one of ``names``."""
    return any(names <= set(re.findall(r"\w+", args)) for args in CHECK_ARGS.findall(source))


def answer_spans(cells: list[nbformat.NotebookNode]) -> list[tuple[int, int]]:
    """(first, last) cell index of every code solution cell's answer: the cell alone when it checks its
    own answer (an exercise) or no ``check_...(`` call mentions it (graded elsewhere, as in an nbgrader
    course), else up to its check in a later cell (a prediction and its reveal)."""
    spans = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or not is_solution_cell(cell):
            continue
        names = answer_names(cell.source)
        later = (j for j in range(i + 1, len(cells)) if cells[j].cell_type == "code" and checks(cells[j].source, names))
        own = not names or checks(cell.source, names)
        spans.append((i, i if own else next(later, i)))
    return spans


class ClearSolutions(Preprocessor):
    """nbconvert preprocessor: nbgrader's ClearSolutions rule (code stub ``# YOUR CODE HERE``),
    plus cleared outputs in solution cells, check cells and predictions' reveals (module doc). A
    solution region outside a solution cell is an error (nbgrader's ``enforce_metadata``): it would
    otherwise reach the student unmarked."""

    _reveals: frozenset[int] = frozenset()  # indices of the cells in answer spans, set by preprocess

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
        self._reveals = frozenset(k for first, last in answer_spans(nb.cells) for k in range(first, last + 1))
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell: nbformat.NotebookNode, resources: dict, index: int) -> tuple[nbformat.NotebookNode, dict]:
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        solution = is_solution_cell(cell)
        source, found = strip_solution(cell.source, stub)
        if found and not solution:
            raise ValueError(f"cell {index}: solution markers in a cell without nbgrader solution metadata")
        if solution:
            cell.source = source if found else stub
        if cell.cell_type == "code" and (solution or index in self._reveals or CHECK_CALL.search(cell.source)):
            cell.outputs, cell.execution_count = [], None
        return cell, resources


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the solutions stripped (``nb`` itself is left unchanged)."""
    copy = nbformat.from_dict(nb)
    copy, _ = ClearSolutions().preprocess(copy, {})
    return copy


def write_student_copies(src: Path, dst: Path) -> list[Path]:
    """Write ``dst/NAME`` for every lesson ``src/NAME`` that has no copy yet; return the new files."""
    lessons = sorted(Path(src).glob(LESSON_GLOB))
    if not lessons:
        raise ValueError(f"src: no lesson notebooks ({LESSON_GLOB}) in {src}")
    Path(dst).mkdir(parents=True, exist_ok=True)
    written = []
    for path in lessons:
        target = Path(dst) / path.name
        if target.exists():
            continue
        nbformat.write(student_copy(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def main(argv: list[str]) -> None:
    """``python -m qlab.student [SRC [DST]]``: print the student copies written."""
    if len(argv) > 2:
        raise SystemExit("usage: python -m qlab.student [SRC [DST]]")
    src, dst = (list(argv) + ["notebooks", "lessons"][len(argv):])
    written = write_student_copies(Path(src), Path(dst))
    print(f"{len(written)} student cop{'y' if len(written) == 1 else 'ies'} written to {dst}/ (existing copies kept)"
          + "".join(f"\n  {p.name}" for p in written))


if __name__ == "__main__":
    main(sys.argv[1:])
