"""Presenter notebooks: a lesson's dashboards alone, large, without code, for the projector.

``make present N=05`` writes ``build/present/05_<name>.ipynb`` with :func:`write_presenter`
and serves it with Voilà (``--strip_sources=True``). The presenter notebook holds, in the
lesson's order:

1. a title (the lesson's first heading) and a style cell that enlarges every dashboard
   (CSS ``zoom`` on the root class ``qlab-dashboard``) and hides the Voilà page margins;
2. the code cells the dashboards need, outputs captured (``%%capture``): the lesson's first
   code cell (its ``setup(...)``) and every earlier cell that binds a name a dashboard cell
   uses, found by reading the cells' syntax (transitively);
3. the dashboard display cells: code cells tagged ``nbval-ignore-output`` that import from
   ``qlab.dashboards`` (the lesson convention for displaying a dashboard).

Usage: ``python -m qlab.presenter notebooks/05_per_channel.ipynb --out build/present``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
from pathlib import Path
from typing import Any

from qlab.dashboards._base import DASHBOARD_CLASS

IGNORE_TAG = "nbval-ignore-output"
DEFAULT_ZOOM = 1.3


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _python(source: str) -> ast.Module:
    """The cell's syntax tree (IPython magics turned into plain Python first)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def bound_names(source: str) -> set[str]:
    """Names a cell binds: assignment and loop targets, imports, function and class names."""
    names = set()
    for node in ast.walk(_python(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def free_names(source: str) -> set[str]:
    """Names a cell reads but neither binds itself nor gets from Python's (or IPython's) builtins."""
    read = {n.id for n in ast.walk(_python(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound_names(source) - set(dir(builtins)) - {"get_ipython"}


def is_dashboard_cell(cell: dict[str, Any]) -> bool:
    """A dashboard display cell: a code cell tagged ``nbval-ignore-output`` importing from
    ``qlab.dashboards``."""
    return (cell["cell_type"] == "code" and IGNORE_TAG in cell.get("metadata", {}).get("tags", [])
            and "qlab.dashboards" in _source(cell))


def needed_cells(cells: list[dict[str, Any]], targets: list[int]) -> list[int]:
    """Indices of the code cells that ``targets`` need: for each name a needed cell reads, the
    latest earlier code cell binding it (transitively); the targets included, sorted."""
    needed, todo = set(targets), list(targets)
    while todo:
        i = todo.pop()
        for name in free_names(_source(cells[i])):
            binder = next((j for j in range(i - 1, -1, -1)
                           if cells[j]["cell_type"] == "code" and name in bound_names(_source(cells[j]))), None)
            if binder is not None and binder not in needed:
                needed.add(binder)
                todo.append(binder)
    return sorted(needed)


def presenter_css(zoom: float = DEFAULT_ZOOM) -> str:
    """The style that makes dashboards large: ``zoom`` on every dashboard root."""
    if not 0.5 <= zoom <= 3.0:
        raise ValueError(f"zoom must be between 0.5 and 3.0, got {zoom!r}")
    return (f"<style>.{DASHBOARD_CLASS} {{zoom: {zoom};}} body {{margin: 0;}} "
            ".jp-Cell {padding: 0 !important;} .jp-OutputPrompt {display: none;}</style>")


def _cell(cell_type: str, source: str, cell_id: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def presenter_notebook(lesson: dict[str, Any], zoom: float = DEFAULT_ZOOM) -> dict[str, Any]:
    """The presenter notebook of ``lesson`` (a notebook as JSON; see the module docstring)."""
    cells = lesson["cells"]
    dashboards = [i for i, c in enumerate(cells) if is_dashboard_cell(c)]
    if not dashboards:
        raise ValueError("lesson has no dashboard cell (a code cell tagged nbval-ignore-output importing qlab.dashboards)")
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    heading = next((line for c in cells if c["cell_type"] == "markdown" for line in _source(c).splitlines()
                    if line.startswith("#")), "# Dashboards")
    out = [_cell("markdown", heading.split("\n")[0], "presenter-title"),
           _cell("code", f"from IPython.display import HTML, display\ndisplay(HTML({presenter_css(zoom)!r}))", "presenter-style")]
    for i in needed_cells(cells, sorted({first_code, *dashboards})):
        source = _source(cells[i])
        if i not in dashboards:
            source = "%%capture\n" + source
        out.append(_cell("code", source, f"presenter-{cells[i].get('id', i)}"))
    return {"cells": out, "metadata": {"kernelspec": lesson["metadata"]["kernelspec"]},
            "nbformat": 4, "nbformat_minor": 5}


def write_presenter(lesson_path: Path, out_dir: Path, zoom: float = DEFAULT_ZOOM) -> Path:
    """Write the presenter notebook of ``lesson_path`` into ``out_dir`` (same file name)."""
    lesson = json.loads(Path(lesson_path).read_text())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / Path(lesson_path).name
    target.write_text(json.dumps(presenter_notebook(lesson, zoom), indent=1) + "\n")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a lesson's presenter notebook (its dashboards, no code).")
    parser.add_argument("lesson", type=Path)
    parser.add_argument("--out", type=Path, default=Path("build/present"))
    parser.add_argument("--zoom", type=float, default=DEFAULT_ZOOM)
    args = parser.parse_args(argv)
    print(write_presenter(args.lesson, args.out, args.zoom))


if __name__ == "__main__":
    main()
