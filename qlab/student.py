"""Student copies of the lessons: the reference solutions stripped by nbgrader's rule.

A lesson's exercise cell is an nbgrader *solution* cell (``metadata.nbgrader.solution`` true)
whose reference solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. The
student copy replaces that region, markers included, by ``# YOUR CODE HERE`` (indented like the
``BEGIN`` line), exactly as nbgrader's ``ClearSolutions`` preprocessor does with that code stub;
a solution cell without markers becomes the stub alone (a markdown one becomes
``YOUR ANSWER HERE``). The outputs and execution counts of the solution cells, and of the cells
that grade an answer (a line starting ``check_...(``, such as a prediction's check after its
reveal, whose stored "Correct!" would give the reference answer away), are cleared; every other
cell keeps its outputs, dashboard snapshots included, so a copy still reads well without a kernel.

Why not nbgrader itself (0.9.6, evaluated): it keeps qlab's pins, but for this one rule it adds
notebook 7, SQLAlchemy, alembic, Mako and RapidFuzz to the environment, enables four server
extensions and installs the ``@jupyter/nbgrader`` lab extension (Formgrader, Assignment List and
Courses menus, the Create Assignment toolbar) in every student's JupyterLab unless ``make`` also
disables them; importing ``nbgrader.preprocessors`` loads the grading database stack; and its
``ClearSolutions`` leaves the solution's outputs in place. The rule below is the same, so the
lessons still drop into nbgrader courses unchanged.

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


class ClearSolutions(Preprocessor):
    """nbconvert preprocessor: nbgrader's ClearSolutions rule (code stub ``# YOUR CODE HERE``),
    plus cleared outputs in solution cells and check cells. A solution region outside a solution
    cell is an error (nbgrader's ``enforce_metadata``): it would otherwise reach the student unmarked."""

    def preprocess_cell(self, cell: nbformat.NotebookNode, resources: dict, index: int) -> tuple[nbformat.NotebookNode, dict]:
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        solution = is_solution_cell(cell)
        source, found = strip_solution(cell.source, stub)
        if found and not solution:
            raise ValueError(f"cell {index}: solution markers in a cell without nbgrader solution metadata")
        if solution:
            cell.source = source if found else stub
        if cell.cell_type == "code" and (solution or CHECK_CALL.search(cell.source)):
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
