"""Screenshots of real dashboards for the README tour (``make screenshots``).

For each lesson in ``LESSONS`` the script writes the lesson's presenter notebook
(``qlab.presenter``: the dashboard cells and what they need, zoom 1) into a temporary folder,
runs it in JupyterLab (``make lab``) in headless Chromium, and saves a PNG of the lesson's first
dashboard, in its default state, as ``docs/img/lessonNN_dashboard.png``.

Usage (from the repository root)::

    .venv/bin/python tools/screenshots.py             # lessons 01, 04, 06
    .venv/bin/python tools/screenshots.py 02 05 --out /tmp/img
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qlab.presenter import write_presenter  # noqa: E402
from tools.jupyterlab_browser import LESSONS, Notebook, chromium_page, jupyterlab  # noqa: E402

TOUR = ("01", "04", "06")
OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def take(lessons: list[str], out: Path) -> list[Path]:
    """Screenshot the first dashboard of each lesson (``"01"``...) into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="qlab-shots-") as tmp, jupyterlab(Path(tmp)) as lab, \
            chromium_page(width=1366, height=1000) as page:
        for lesson in lessons:
            [source] = LESSONS.glob(f"{lesson}_*.ipynb")
            notebook = write_presenter(source, Path(tmp), zoom=1.0)
            nb = Notebook(page, lab, notebook.name)
            nb.open()
            nb.run_all()
            if errors := nb.errors():
                raise RuntimeError(f"lesson {lesson}: {errors}")
            root = nb.dashboards()[0]
            root.scroll_into_view_if_needed()
            page.wait_for_timeout(500)  # last canvas paint
            target = out / f"lesson{lesson}_dashboard.png"
            root.screenshot(path=str(target))
            written.append(target)
            lab.delete_sessions()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lessons", nargs="*", default=list(TOUR), help="lesson numbers (default: 01 04 06)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for path in take(args.lessons, args.out):
        print(path)


if __name__ == "__main__":
    main()
