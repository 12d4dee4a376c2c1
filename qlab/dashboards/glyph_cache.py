"""Glyph layouts and bitmaps kept across the frames of a dashboard (Agg text without re-rasterizing).

Matplotlib's Agg renderer rasterizes every glyph of every text with FreeType on each draw:
on a dashboard frame, its changing title and a newly laid out axis, that is most of the draw
(~40 us per glyph). A glyph's bitmap depends on the font, size, dpi, glyph, rotation and the
*fractional* part of its pen position (1/64 pixel in FreeType's 26.6 fixed point): moving the
outline by whole pixels moves the bitmap by whole pixels and leaves it otherwise unchanged.
:func:`use_glyph_cache` makes a renderer rasterize each glyph at its fractional offset once and
blit the kept bitmap at the whole-pixel offset afterwards, so every frame is pixel for pixel the
one matplotlib would draw (``tests/test_dashboards.py`` checks this).

The glyph layout of a string (FreeType/libraqm shaping, ~1.5 ms for a title) is kept per
(string, font properties, dpi) as well: tick labels recur whenever an axis is laid out again.

It replaces the renderer's ``draw_text`` and ``_draw_text_glyphs_and_boxes`` (the latter a
private method of matplotlib's ``backend_agg``; matplotlib is pinned in ``pyproject.toml``, and
the bodies they mirror are those of matplotlib 3.11).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import RendererAgg, get_hinting_flag
from matplotlib.ft2font import RenderMode

GLYPHS_KEPT = 20_000  # ~2 MB of small bitmaps; the cache is emptied when it grows beyond


def use_glyph_cache(renderer: RendererAgg, cache: dict[Any, Any]) -> None:
    """Make ``renderer`` draw plain text through ``cache`` (no-op if it already does): the glyph
    layout of each string (tick labels recur) and each glyph's bitmap are kept."""
    if getattr(renderer, "_qlab_glyph_cache", None) is not cache:
        renderer._qlab_glyph_cache = cache
        renderer._draw_text_glyphs_and_boxes = functools.partial(_draw_glyphs, renderer, cache)
        renderer.draw_text = functools.partial(_draw_text, renderer, cache)


def _draw_text(renderer: RendererAgg, cache: dict[Any, Any], gc: Any, x: float, y: float, s: str, prop: Any,
               angle: float, ismath: bool | str = False, mtext: Any = None) -> None:
    """``RendererAgg.draw_text`` with the glyph layout of each (string, font) taken from ``cache``."""
    if ismath:
        return renderer.draw_mathtext(gc, x, y, s, prop, angle)
    features = mtext.get_fontfeatures() if mtext is not None else None
    language = mtext.get_language() if mtext is not None else None
    flags = get_hinting_flag()
    key = ("layout", prop, renderer.dpi, s, flags, features, language,
           mpl.rcParams["text.hinting_factor"], mpl.rcParams["text.kerning_factor"])
    items = cache.get(key)
    if items is None:
        font = renderer._prepare_font(prop)
        layout = font._layout(s, flags=flags, features=features, language=language)
        items = cache[key] = [(item.ft_object, item.glyph_index, item.x, item.y) for item in layout]
    size = prop.get_size_in_points()
    renderer._draw_text_glyphs_and_boxes(gc, x, y, angle, ((font, size, index, 0, 1, dx, dy) for font, index, dx, dy in items), [])


def _draw_glyphs(renderer: RendererAgg, cache: dict[Any, Any], gc: Any, x: float, y: float, angle: float,
                 glyphs: Any, boxes: Any) -> None:
    """``RendererAgg._draw_text_glyphs_and_boxes`` with each glyph's bitmap taken from ``cache``."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    flags = get_hinting_flag()
    mode = RenderMode.NORMAL if gc.get_antialiased() else RenderMode.MONO
    height = renderer.height
    if len(cache) > GLYPHS_KEPT:
        cache.clear()
    # FreeType's 16.16 transform and its bytes (part of the key), by (slant, extend)
    matrices: dict[tuple[float, float], tuple[np.ndarray, bytes]] = {}
    for font, size, glyph_index, slant, extend, dx, dy in glyphs:  # dy is upwards
        if (slant, extend) not in matrices:
            rotation = np.array([[cos, -sin], [sin, cos]])
            matrix = (0x10000 * rotation @ [[extend, extend * slant], [0, 1]]).round().astype(int)
            matrices[slant, extend] = matrix, matrix.tobytes()
        matrix, matrix_bytes = matrices[slant, extend]
        pen_x, frac_x = divmod(round(0x40 * (x + dx * cos - dy * sin)), 0x40)
        pen_y, frac_y = divmod(round(0x40 * (height - y + dx * sin + dy * cos)), 0x40)  # FreeType's y is upwards
        key = (font, size, renderer.dpi, glyph_index, matrix_bytes, frac_x, frac_y, flags, mode)
        kept = cache.get(key)
        if kept is None:
            font.set_size(size, renderer.dpi)
            font._set_transform(matrix, [frac_x, frac_y])
            bitmap = font._render_glyph(glyph_index, flags, mode)
            buffer = np.array(bitmap.buffer)
            if mode is RenderMode.MONO:
                buffer *= 0xFF
            kept = cache[key] = (buffer, bitmap.left, bitmap.top)
        buffer, left, top = kept
        # draw_text_image's y is downwards & the bitmap bottom side
        renderer._renderer.draw_text_image(buffer, left + pen_x, int(height) - (top + pen_y) + buffer.shape[0], 0, gc)
    if boxes:
        RendererAgg._draw_text_glyphs_and_boxes(renderer, gc, x, y, angle, (), boxes)
