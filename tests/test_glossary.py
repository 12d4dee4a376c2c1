"""docs/glossary.md: every row names an existing lesson and has both languages; the README and
every lesson's top link it."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "docs" / "glossary.md"
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HEADER = ["English", "简体中文", "lesson", "meaning"]
REQUIRED_ZH = ["量化", "标定", "校准", "缩放因子", "零点", "截断", "舍入", "定点", "逐通道", "量化感知训练", "混合精度"]
CJK = re.compile(r"[\u4e00-\u9fff]")
LESSON_LINK = "](../docs/glossary.md)"  # the line: Glossary (English / 简体中文): [docs/glossary.md](../docs/glossary.md)


def rows() -> list[list[str]]:
    """The body rows of every table: lines starting with `|`, minus headers and separators."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in GLOSSARY.read_text().splitlines()
             if line.startswith("|")]
    return [r for r in cells if r != HEADER and not all(set(c) <= set("-:") for c in r)]


def test_every_table_has_the_four_columns():
    headers = [line for line in GLOSSARY.read_text().splitlines() if line.startswith("| English")]
    assert headers and all([c.strip() for c in h.strip("|").split("|")] == HEADER for h in headers)
    assert all(len(r) == len(HEADER) for r in rows()), [r for r in rows() if len(r) != len(HEADER)]


def test_every_row_names_existing_lessons_and_both_languages():
    existing = {p.name[:2] for p in LESSONS}
    assert len(rows()) >= 50
    for english, chinese, lesson, meaning in rows():
        assert english and meaning and CJK.search(chinese), (english, chinese)
        assert re.fullmatch(r"\d\d(, \d\d)*", lesson), f"{english}: lesson {lesson!r} is not like '04' or '01, 04'"
        assert set(lesson.split(", ")) <= existing, f"{english}: no lesson {lesson}"


def test_terms_are_unique_and_the_core_terms_are_there():
    english = [r[0].lower() for r in rows()]
    assert len(set(english)) == len(english), sorted({t for t in english if english.count(t) > 1})
    chinese = " ".join(r[1] for r in rows())
    assert [t for t in REQUIRED_ZH if t not in chinese] == []


def test_readme_links_the_glossary():
    assert "](docs/glossary.md)" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_every_lesson_links_the_glossary_at_its_top(path):
    """The link works from notebooks/ and from the student copies in lessons/ (same depth)."""
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    assert LESSON_LINK in first.source
    assert (path.parent / "../docs/glossary.md").resolve() == GLOSSARY
