"""Shared machinery of every lesson dashboard.

A dashboard owns ipywidgets controls, a matplotlib ``Figure`` shown through an ipympl
canvas (an ipywidget; the global matplotlib backend is left alone, so ``plt.show()``
keeps producing static inline figures), a readout and an error box. Subclasses build
their artists once and implement five hooks:

- ``build_controls()``: create the widgets and return them in order;
- ``build_figure()``: create every artist once, on ``self.fig``;
- ``compute()``: everything that depends on the controls, returned as one object;
- ``redraw(state)``: update the artists IN PLACE (``set_data``, ``set_segments``...);
- ``readout_lines(state)``: a deterministic plain-text summary.

Dashboards with first-time costs (model loading, calibration) also override ``warm_up()``.
Everything that does not depend on the controls is computed once in ``__init__``.

Layered drawing: text is most of an Agg render (matplotlib lays out and rasterizes every
glyph of every tick label on each draw). ``build_figure`` passes the artists that change
with the controls to :meth:`Dashboard.animate`; the canvas then draws everything else (axes,
tick labels, legends) once per :meth:`Dashboard.background_key` (by default every axes'
limits), keeps that layer as a bitmap and, on each update, restores it and draws only the
animated artists over it. Limits chosen from a short ladder (:func:`nice_limit`) keep the
number of distinct backgrounds small. An axis whose limits follow a control at every step is
animated too, and its picture (ticks, tick labels, label and grid, over the static layer) is
kept per limits (:meth:`Dashboard.draw_animated_axes`), so a limit seen before costs a copy
instead of laying out and rasterizing its tick labels again. A dashboard whose reachable limits
are few renders their layers and pictures at build time (:meth:`Dashboard.keep_pictures`).
The text that is still drawn (a changing title, a new axis) reuses kept glyph layouts and
bitmaps (:mod:`qlab.dashboards.glyph_cache`, pixel for pixel matplotlib's rendering). The
snapshot is saved with every artist static (:meth:`Dashboard.drawn_in_full`).

Sending frames: once a browser shows the canvas, :meth:`Dashboard.update` draws and sends the
new frame itself (:func:`show_now`) instead of ipympl's ``draw_idle``, which asks the browser to
ask back for a draw (one kernel-browser round trip per update), and only then the readout;
frames are unfiltered PNG at the fast zlib level :data:`FRAME_PNG_COMPRESS_LEVEL`
(:func:`frame_png`, :func:`rgba_png`).
"""

from __future__ import annotations

import functools
import html
import importlib
import io
import itertools
import math
import os
import struct
import sys
import traceback
import warnings
import zlib
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import Axis, XAxis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from qlab.dashboards.glyph_cache import use_glyph_cache

READOUT_FONT_PX, READOUT_LINE_HEIGHT = 14, 1.25  # a 14-line readout + figure + controls fit ~600 px
BACKGROUNDS_KEPT = 16  # static layers kept per dashboard (1.2 MB each at 720x432 px)
AXIS_PICTURES_KEPT = 64  # pictures of animated axes kept per dashboard (~0.3 MB each)
LIMIT_LADDER = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
MEMO_ENV = "QLAB_DASHBOARD_MEMO"  # "0": dashboards cache no results of visited settings (benchmarks)
FRAME_PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNG frames sent to the browser (zlib's default is 6). The kernel and the
browser share a machine or a network, so encoding time matters more than bytes: on the lesson
dashboards' frames level 1 encodes 20-40% faster than level 6 for 15-40% more bytes (tens of kB)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nice_limits(low: float, high: float) -> list[float]:
    """Every value :func:`nice_limit` can return for an input in [``low``, ``high``] (both > 0)."""
    limits = [nice_limit(low)]
    while limits[-1] < nice_limit(high):
        limits.append(nice_limit(limits[-1] * (1 + 1e-9)))
    return limits


def nice_limit(value: float) -> float:
    """The smallest ``m * 10**k`` (m in :data:`LIMIT_LADDER`, integer k) that is >= ``value`` > 0.

    Axis limits taken from this ladder change only when the data outgrow a step (and waste at
    most a third of the axis), so the cached static layer of a dashboard is reused.
    """
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"value must be positive and finite, got {value!r}")
    decade = 10.0 ** math.floor(math.log10(value))
    return next(m * decade for m in LIMIT_LADDER if m * decade >= value * (1 - 1e-12))


_FIGURE_NUMBERS = itertools.count(1001)  # ipympl wants a figure number; never used by pyplot

DASHBOARD_CLASS = "qlab-dashboard"
"""CSS class of every dashboard's root widget (the browser test and presenter view find it)."""

HIDE_SNAPSHOT_CSS = (
    f"<style>.jp-OutputArea-child:has(.{DASHBOARD_CLASS}) + .jp-OutputArea-child {{display: none;}}</style>"
)
"""Hides the static snapshot output that follows a rendered (live) dashboard."""


def _ipympl_backend() -> Any:
    """Import ipympl's backend module without letting it switch the global backend.

    ``ipympl/__init__.py`` calls ``matplotlib.use("module://ipympl.backend_nbagg")`` when
    matplotlib is already imported. Switching to it and back would unregister IPython's
    inline-figure hooks (later ``plt.show()`` calls would display nothing), so the package
    ``__init__`` (which imports nothing but its version) runs while matplotlib is hidden.
    """
    if "ipympl" not in sys.modules:
        mpl = sys.modules.pop("matplotlib")
        try:
            importlib.import_module("ipympl")
        finally:
            sys.modules["matplotlib"] = mpl
    return importlib.import_module("ipympl.backend_nbagg")


def frame_png(canvas: Any) -> bytes | None:
    """The next frame of a webagg/ipympl ``canvas`` for the browser, as PNG bytes (None: unchanged).

    Same frames as matplotlib's ``FigureCanvasWebAggCore.get_diff_image``, encoded at
    :data:`FRAME_PNG_COMPRESS_LEVEL`: the whole canvas ("full" image mode: first frame, new size,
    or transparent pixels) or only the pixels that changed since the last frame, the others
    transparent ("diff" mode: the browser draws the frame over the previous one).
    """
    if not canvas._png_is_old:
        return None
    pixels = np.asarray(canvas.get_renderer().buffer_rgba())
    buff = pixels.view(np.uint32).squeeze(2)  # one uint32 per pixel: compared in one numpy call
    full = canvas._force_full or buff.shape != canvas._last_buff.shape or bool((pixels[:, :, 3] != 255).any())
    canvas.set_image_mode("full" if full else "diff")
    output = buff if full else np.where(buff != canvas._last_buff, buff, 0)
    canvas._last_buff = buff.copy()
    canvas._force_full = False
    canvas._png_is_old = False
    return rgba_png(output.view(np.uint8).reshape((*output.shape, 4)), FRAME_PNG_COMPRESS_LEVEL)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data (RFC 2083, 3.2)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def rgba_png(pixels: np.ndarray, level: int) -> bytes:
    """``pixels`` (height x width x 4, uint8, RGBA) as PNG bytes: every row with filter type 0
    ("None"), deflated by zlib at ``level``.

    PNG (RFC 2083) lets the encoder pick a filter per row; Pillow tries them all on every row,
    which costs more than the deflate itself on a dashboard frame. The frames are flat colours
    over white or transparent pixels: on lesson 01's frames the unfiltered rows deflate 3-9%
    smaller than Pillow's filtered ones, in 50-65% of its time, and the browser skips un-filtering.
    """
    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 4 * width), np.uint8)  # column 0: each row's filter byte
    rows[:, 1:] = pixels.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits per channel, RGBA
    data = zlib.compress(rows.tobytes(), level)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def show_now(canvas: Any) -> None:
    """Bring the browser's picture of ``canvas`` up to date.

    Once a browser view is connected (its "initialized" message turns ipympl's
    ``syncing_data_url`` off), draw and send the frame right away. ipympl's ``draw_idle`` would
    send a "draw" event, the browser a draw request back, and only then would the kernel draw:
    a round trip per update, and none at all while a long callback keeps the kernel busy. Fast
    drags do not pile up draws: ipywidgets sends a control's next value only once the kernel is
    idle again, merging the values it skipped. Without a browser (plain Python, nbconvert) the
    draw is left to whoever shows the figure, as with ``draw_idle``.
    """
    if canvas.syncing_data_url:
        canvas.draw_idle()
    else:
        canvas.draw()


def make_canvas(fig: Figure) -> widgets.DOMWidget:
    """Attach an ipympl canvas (an ipywidget) to ``fig`` and return it.

    Works in a kernel and in plain Python (tests, benchmarks). Interactive mode is turned
    off while the manager is created, so ipympl does not queue the figure for display.
    Its frames are encoded by :func:`frame_png`.
    """
    nbagg = _ipympl_backend()
    was_interactive = matplotlib.is_interactive()
    matplotlib.interactive(False)
    try:
        with warnings.catch_warnings():  # ipympl 0.10's toolbar trips a traitlets DeprecationWarning
            warnings.simplefilter("ignore", DeprecationWarning)
            canvas = nbagg.new_figure_manager_given_figure(next(_FIGURE_NUMBERS), fig).canvas
    finally:
        matplotlib.interactive(was_interactive)
    canvas.header_visible = False
    canvas.footer_visible = False
    canvas.resizable = False
    canvas.toolbar_position = "right"
    canvas.get_diff_image = functools.partial(frame_png, canvas)
    return canvas


def dashboard_box(children: list[widgets.Widget]) -> widgets.VBox:
    """The root widget of a dashboard: ``children`` stacked, tagged with :data:`DASHBOARD_CLASS`
    and carrying :data:`HIDE_SNAPSHOT_CSS` (so a live dashboard hides its static snapshot)."""
    box = widgets.VBox([*children, widgets.HTML(HIDE_SNAPSHOT_CSS)])
    box.add_class(DASHBOARD_CLASS)
    return box


def snapshot_png(fig: Figure) -> bytes:
    """``fig`` as it stands now, as PNG bytes (Agg; no ``Software`` entry, so the bytes depend
    only on the figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def display_with_snapshot(root: widgets.Widget, fig: Figure, title: str, readout: str) -> None:
    """Show the live widget ``root``, then a static snapshot: ``fig`` as PNG, ``readout`` as text.

    The snapshot is what GitHub, nbviewer and a JupyterLab without a running kernel show (they
    cannot render a widget view). Next to a live widget it is hidden by the CSS rule the widget
    carries (:func:`dashboard_box`), so a learner with a kernel sees the dashboard once. The
    widget's plain-text fallback names the dashboard instead of the ``VBox(children=...)`` repr.
    """
    from IPython.display import display

    bundle = root._repr_mimebundle_()
    bundle["text/plain"] = f"[live dashboard: {title}; run the notebook to use it]"
    display(bundle, raw=True)
    display({"image/png": snapshot_png(fig), "text/plain": readout}, raw=True)


def _keep(cache: dict[Hashable, Any], key: Hashable, value: Any, size: int) -> None:
    """Store ``value`` as the most recently used entry of ``cache``, dropping the oldest beyond ``size``."""
    cache[key] = value
    while len(cache) > size:
        del cache[next(iter(cache))]


class Dashboard:
    """Base class: controls + ipympl figure + readout + error box, wired together.

    Attributes:
        controls: the widgets whose ``value`` changes trigger :meth:`update`.
        fig, canvas: the Figure and its ipympl canvas widget.
        readout_box: ``ipywidgets.HTML`` showing :meth:`readout`.
        error_box: ``ipywidgets.HTML`` that shows an exception raised during an update.
        widget: the ``VBox`` to display.
        budget_ms: latency budget of one update + render (see benchmarks/).
        threads: torch threads the dashboard is meant (and benchmarked) to run with:
            1 for tensor-level dashboards, 2 for whole-model ones (full test-set evaluation).
        dynamic: the animated artists (:meth:`animate`), redrawn over the cached static layer.
        background_misses: how many renders found no cached static layer and drew it in full.
        axis_misses: how many times a group of animated axes was drawn, not copied from a picture.
        memoize: dashboards that cache results of visited configurations honour this flag;
            the latency benchmarks turn it off so every update is measured uncached (the browser
            one through the environment variable :data:`MEMO_ENV` of the lessons' kernels).
    """

    title: str = "dashboard"
    budget_ms: float = 50.0
    threads: int = 1
    memoize: bool = os.environ.get(MEMO_ENV) != "0"
    figsize: tuple[float, float] = (9.0, 5.4)
    dpi: float = 80.0

    def __init__(self) -> None:
        self.fig = Figure(figsize=self.figsize, dpi=self.dpi)
        self.canvas = make_canvas(self.fig)
        self.readout_box = widgets.HTML()
        self.error_box = widgets.HTML()
        self.last_error: str | None = None
        self.state: Any = None
        self.controls: list[widgets.ValueWidget] = self.build_controls()
        self.dynamic: list[Artist] = []
        self._backgrounds: dict[Hashable, Any] = {}
        self.background_misses = 0
        self._axis_pictures: dict[Hashable, tuple[Any, Bbox]] = {}
        self._axis_groups: list[tuple[Axis, ...]] | None = None
        self._glyphs: dict[Any, Any] = {}  # glyph bitmaps (glyph_cache)
        self._holding = False
        self.axis_misses = 0
        self.build_figure()
        if self.dynamic:
            self.canvas.draw = self.draw_layers  # ipympl's draw requests and the benchmark call this
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self.widget = dashboard_box(
            [widgets.HBox(self.controls, layout=widgets.Layout(flex_flow="row wrap")), self.canvas, self.readout_box, self.error_box]
        )
        self.update()

    # hooks -----------------------------------------------------------------------------
    def build_controls(self) -> list[widgets.ValueWidget]:
        raise NotImplementedError

    def build_figure(self) -> None:
        raise NotImplementedError

    def compute(self) -> Any:
        raise NotImplementedError

    def redraw(self, state: Any) -> None:
        raise NotImplementedError

    def readout_lines(self, state: Any) -> list[str]:
        raise NotImplementedError

    def background_key(self) -> Hashable:
        """What the static (non-animated) artists depend on: every axes' limits by default,
        except those of an axis (ticks, tick labels, grid) that is itself animated.

        A dashboard whose limit follows a control at every step animates that axis
        (``self.animate(ax.yaxis)``): a few tick labels are redrawn on each update instead of
        the whole static layer. A dashboard that changes a static artist otherwise (tick labels,
        a static title) adds what it depends on to this key.
        """
        return tuple(
            (None if ax.xaxis.get_animated() else ax.get_xlim(), None if ax.yaxis.get_animated() else ax.get_ylim())
            for ax in self.fig.axes
        )

    def warm_up(self) -> dict[str, float]:
        """Do every first-time cost (model loading, calibration caches) now.

        Returns the seconds spent, by item, so benchmarks can report them apart from the
        per-update latency. The default dashboard has nothing to warm.
        """
        return {}

    # layered drawing ---------------------------------------------------------------------
    def animate(self, *artists: Artist | tuple[Artist, ...]) -> None:
        """Mark ``artists`` (or containers of them, e.g. a ``BarContainer``) as redrawn on every update."""
        for artist in artists:
            for a in artist if isinstance(artist, tuple) else (artist,):
                a.set_animated(True)
                self.dynamic.append(a)
        self.dynamic.sort(key=lambda a: a.get_zorder())

    def render_static_layer(self) -> Hashable:
        """Put the static layer of the current :meth:`background_key` into the canvas's renderer:
        from the cache, or drawn in full and cached (a build can call this for every limit set a
        control reaches, so that no move redraws it later). Sends nothing to the browser.
        Returns the layer's key."""
        use_glyph_cache(self.canvas.get_renderer(), self._glyphs)
        key = (self.fig.dpi, tuple(self.fig.bbox.size), self.background_key())
        background = self._backgrounds.pop(key, None)
        if background is None:
            self.background_misses += 1
            FigureCanvasAgg.draw(self.canvas)  # animated artists are skipped while not saving
            background = self.canvas.get_renderer().copy_from_bbox(self.fig.bbox)
        else:
            self.canvas.get_renderer().restore_region(background)
        _keep(self._backgrounds, key, background, BACKGROUNDS_KEPT)
        return key

    def keep_pictures(self, set_limits: Callable[[Any], None], settings: Iterable[Any]) -> None:
        """At build time, render and keep the static layer and the animated axes' pictures of every
        setting a control can reach, so that no first visit draws them.

        ``set_limits(setting)`` sets the axes' limits of one setting: a function of the limits
        themselves, or :meth:`redraw` with a precomputed state. Sends nothing; the current state
        is drawn again afterwards. Raises if the caches cannot hold everything rendered.
        """
        static_keys, misses = set(), self.axis_misses
        for setting in settings:
            set_limits(setting)
            static_keys.add(key := self.render_static_layer())
            self.draw_animated_axes(key)
        if len(static_keys) > BACKGROUNDS_KEPT or self.axis_misses - misses > AXIS_PICTURES_KEPT:
            raise ValueError(f"{len(static_keys)} static layers and {self.axis_misses - misses} axis pictures rendered, "
                             f"more than the {BACKGROUNDS_KEPT} and {AXIS_PICTURES_KEPT} kept")
        if self.state is not None:
            self.redraw(self.state)

    def forget_layers(self) -> None:
        """Drop every cached static layer and axis picture (the next render draws them afresh).
        A dashboard that restyles an animated axis after build (locator, formatter, tick
        parameters, colours) calls this: the pictures are keyed by limits and labels only."""
        self._backgrounds.clear()
        self._axis_pictures.clear()

    def draw_animated_axes(self, static_key: Hashable) -> None:
        """Draw the animated axes (:class:`~matplotlib.axis.Axis`) over the static layer ``static_key``,
        before any other animated artist.

        The axes are taken in groups (at first one per ``Axes``: its x and y axis share the plot
        area their grid lines cross). A group's picture is the rectangle that holds its ``Axes``,
        tick marks, tick labels, axis labels and offset texts; it is kept per (static layer, the
        group's view intervals and labels) and copied back when they recur. The picture of a
        group holds only the static layer and that group, so groups whose rectangles overlap
        are merged into one (their pictures are then taken together).
        """
        renderer = self.canvas.get_renderer()
        groups = self._axis_groups if self._axis_groups is not None else self._initial_axis_groups()
        regions: list[Bbox] = []
        for group in groups:
            key = (static_key, group, tuple(self._axis_key(axis) for axis in group))
            kept = self._axis_pictures.pop(key, None)
            if kept is None:
                self.axis_misses += 1
                for axis in group:
                    if axis.get_visible():
                        self.fig.draw_artist(axis)
                region = self._axis_region(group, renderer)
                kept = (renderer.copy_from_bbox(region), region)
            else:
                renderer.restore_region(kept[0])
            if any(kept[1].overlaps(other) for other in regions):  # this frame may be wrong there:
                self._merge_axis_groups()  # draw it again with one group
                self.draw_animated_axes(self.render_static_layer())
                return
            regions.append(kept[1])
            _keep(self._axis_pictures, key, kept, AXIS_PICTURES_KEPT)

    @staticmethod
    def _axis_key(axis: Axis) -> Hashable:
        """What an animated axis's picture depends on besides the static layer."""
        return tuple(axis.get_view_interval()), axis.axes.bbox.bounds, axis.label.get_text(), axis.get_visible()

    def _initial_axis_groups(self) -> list[tuple[Axis, ...]]:
        """One group per ``Axes`` holding animated axes (x and y share its plot area)."""
        by_axes: dict[Axes, list[Axis]] = {}
        for artist in self.dynamic:
            if isinstance(artist, Axis):
                by_axes.setdefault(artist.axes, []).append(artist)
        self._axis_groups = [tuple(group) for group in by_axes.values()]
        return self._axis_groups

    def _merge_axis_groups(self) -> None:
        """Two groups' rectangles overlap: from now on all animated axes form one group."""
        self._axis_groups = [tuple(axis for group in self._axis_groups or [] for axis in group)]
        self._axis_pictures.clear()

    def _axis_region(self, group: tuple[Axis, ...], renderer: Any) -> Bbox:
        """The rectangle (display pixels) that holds everything ``group`` draws: the plot area its
        grid lines cross, the tick marks outside it (along the axis's normal) and the texts, each
        with a 2-pixel margin for antialiasing."""
        boxes = []
        for axis in group:
            out = axis.get_tick_padding() * self.fig.dpi / 72
            dx, dy = (0.0, out) if isinstance(axis, XAxis) else (out, 0.0)
            boxes.append(Bbox.from_extents(*(axis.axes.bbox.extents + np.array([-dx, -dy, dx, dy]))).padded(2))
            if (texts := axis.get_tightbbox(renderer)) is not None:
                boxes.append(texts.padded(2))
        return Bbox.intersection(Bbox.union(boxes), self.fig.bbox) or self.fig.bbox

    def draw_layers(self) -> None:
        """:meth:`render_layers`, then send the changed pixels (this replaces the ipympl canvas's
        ``draw``, which ends the same way)."""
        self.render_layers()
        self.canvas._png_is_old = True
        self.canvas.manager.refresh_all()

    def render_layers(self) -> None:
        """Render into the canvas's renderer: the static layer (cached by :meth:`background_key`),
        the animated axes (kept pictures, :meth:`draw_animated_axes`), then the other animated
        artists by z-order."""
        self.draw_animated_axes(self.render_static_layer())
        for artist in self.dynamic:
            if artist.get_visible() and not isinstance(artist, Axis):
                self.fig.draw_artist(artist)

    # wiring ----------------------------------------------------------------------------
    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._holding:
            self.update()

    @contextmanager
    def holding_updates(self) -> Iterator[None]:
        """Within this block control changes do not update the dashboard (for a callback that
        adjusts several controls at once, e.g. slider ranges that follow a dropdown: one update
        follows, not one per clamped value)."""
        holding, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = holding

    def update(self) -> None:
        """Recompute from the controls, update the artists in place, show the figure
        (:func:`show_now`), then the readout.

        An exception is shown in ``error_box`` (and in :meth:`readout`) instead of
        vanishing into the log console; the figure keeps its last good state.
        """
        try:
            state = self.compute()
            self.redraw(state)
        except Exception as exc:  # noqa: BLE001 -- shown to the learner, not swallowed
            self._show_error(exc)
            return
        self.state = state
        self.last_error = None
        show_now(self.canvas)  # the frame first: the readout's message would make the browser
        self.error_box.value = ""  # re-lay out the page while the kernel draws
        self.readout_box.value = f'<pre style="font-size:{READOUT_FONT_PX}px; line-height:{READOUT_LINE_HEIGHT}">{html.escape(self.readout())}</pre>'

    def _show_error(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        where = traceback.extract_tb(exc.__traceback__)[-1]
        self.error_box.value = (
            f'<pre style="color:#b00020; font-size:15px">{html.escape(self.last_error)}\n'
            f"(raised in {html.escape(where.name)}, line {where.lineno} of {html.escape(where.filename)})</pre>"
        )

    def readout(self) -> str:
        """Deterministic plain-text summary of the current state (plus the last error, if any)."""
        lines = [self.title] + ([] if self.state is None else self.readout_lines(self.state))
        if self.last_error is not None:
            lines.append(f"ERROR: {self.last_error}")
        return "\n".join(lines)

    @contextmanager
    def drawn_in_full(self) -> Iterator[None]:
        """Within this block every artist is static (matplotlib leaves figure-level animated
        artists out of saved figures too), so a saved figure shows the whole dashboard."""
        for artist in self.dynamic:
            artist.set_animated(False)
        try:
            yield
        finally:
            for artist in self.dynamic:
                artist.set_animated(True)

    def _ipython_display_(self) -> None:
        with self.drawn_in_full():
            display_with_snapshot(self.widget, self.fig, self.title, self.readout())
