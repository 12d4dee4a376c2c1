"""Lesson 07 dashboard: what the straight-through estimator and LSQ pass back through round().

For x on a dense grid in [-X, X] and a signed symmetric ``bits``-bit grid clipped at +-c
(scale s = c / qmax, zero-point 0, ``qlab.affine.qparams_from_range``):

- top: the staircase Q(x) = fake_quantize(x, s, 0, qmin, qmax) against x, with the identity;
- bottom: dQ/dx under the STE (``qlab.affine.fake_quantize``'s autograd: 1 inside the range,
  0 outside) and LSQ's dQ/ds (``qlab.qat.learnable_fake_quantize``'s autograd, gradient scale
  g = 1: round(x/s) - x/s inside, the "sawtooth", qmin = -Qn below and qmax = Qp above).

Both curves come from running ``backward`` through qlab's own functions, not from a second
copy of the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import torch

from qlab.affine import fake_quantize, qparams_from_range, qrange
from qlab.dashboards._base import Dashboard
from qlab.qat import learnable_fake_quantize

X_LIMIT = 2.0
POINTS = 801


@dataclass(frozen=True)
class GradientState:
    """Curves and numbers for one setting of the controls."""

    bits: int
    clip: float
    scale: float
    qmin: int
    qmax: int
    x: torch.Tensor
    q: torch.Tensor
    dq_dx: torch.Tensor
    dq_ds: torch.Tensor


def ste_and_lsq_gradients(x: torch.Tensor, bits: int, clip: float) -> GradientState:
    """Q(x), dQ/dx (STE) and dQ/ds (LSQ, per element, g = 1) on the symmetric grid clipped at +-clip."""
    qmin, qmax = qrange(bits, signed=True)
    scale, zp = qparams_from_range(-clip, clip, bits, signed=True, symmetric=True)
    xs = x.clone().requires_grad_()
    q = fake_quantize(xs, scale, zp, qmin, qmax)
    q.sum().backward()
    per_element = scale.expand(x.numel()).clone().requires_grad_()  # one scale per element: dQ_i/ds_i
    learnable_fake_quantize(x, per_element, torch.zeros(x.numel()), qmin, qmax, axis=0).sum().backward()
    return GradientState(bits, clip, float(scale), qmin, qmax, x, q.detach(), xs.grad, per_element.grad)


class QATGradientDashboard(Dashboard):
    """Sliders for bits and clipping range; the staircase and the two surrogate gradients."""

    title = "Gradients through round(): STE and LSQ"

    def __init__(self) -> None:
        self.x = torch.linspace(-X_LIMIT, X_LIMIT, POINTS)
        super().__init__()
        # the gradient axis follows the bits: render its static layer for every bit width now (0.1 s)
        bits = range(self.bits_slider.min, self.bits_slider.max + 1)
        self.keep_pictures(self.redraw, [ste_and_lsq_gradients(self.x, b, self.clip_slider.value) for b in bits])

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.bits_slider = widgets.IntSlider(value=3, min=2, max=6, description="bits", style=style)
        self.clip_slider = widgets.FloatSlider(value=1.0, min=0.25, max=1.75, step=0.05, description="clip ±c",
                                               style=style, readout_format=".2f")
        return [self.bits_slider, self.clip_slider]

    def build_figure(self) -> None:
        self.ax_q, self.ax_g = self.fig.subplots(2, 1, sharex=True)
        self.fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.1, hspace=0.25)
        x = self.x.numpy()
        self.ax_q.plot(x, x, color="0.7", lw=1, label="identity")
        (self.line_q,) = self.ax_q.plot(x, x, color="tab:orange", lw=2, label="Q(x)")
        self.ax_q.set_ylabel("Q(x)")
        self.ax_q.set_ylim(-X_LIMIT, X_LIMIT)
        self.ax_q.legend(loc="upper left", frameon=False)
        (self.line_dx,) = self.ax_g.plot(x, x * 0, color="tab:blue", lw=2, label="dQ/dx (STE)")
        (self.line_ds,) = self.ax_g.plot(x, x * 0, color="tab:purple", lw=1.5, label="dQ/ds (LSQ)")
        self.ax_g.axhline(0, color="0.7", lw=0.8)
        self.ax_g.set_xlabel("x")
        self.ax_g.set_ylabel("gradient")
        self.ax_g.set_xlim(-X_LIMIT, X_LIMIT)
        self.ax_g.legend(loc="upper left", frameon=False)
        self.clip_lines = [ax.axvline(0, color="tab:red", ls="--", lw=1) for ax in (self.ax_q, self.ax_g) for _ in (0, 1)]
        self.suptitle = self.fig.suptitle("")
        self.animate(self.line_q, self.line_dx, self.line_ds, *self.clip_lines, self.suptitle)

    def compute(self) -> GradientState:
        return ste_and_lsq_gradients(self.x, self.bits_slider.value, self.clip_slider.value)

    def redraw(self, s: GradientState) -> None:
        self.line_q.set_ydata(s.q.numpy())
        self.line_dx.set_ydata(s.dq_dx.numpy())
        self.line_ds.set_ydata(s.dq_ds.numpy())
        lo, hi = s.qmin * s.scale, s.qmax * s.scale
        for line, at in zip(self.clip_lines, (lo, hi, lo, hi)):
            line.set_xdata([at, at])
        self.ax_g.set_ylim(s.qmin - 0.8, s.qmax + 0.8)
        self.suptitle.set_text(f"{s.bits} bits, clip ±{s.clip:.2f}: step s = {s.scale:.4f}")

    def readout_lines(self, s: GradientState) -> list[str]:
        inside = int((s.dq_dx == 1).sum())
        return [
            f"bits = {s.bits}, codes [{s.qmin}, {s.qmax}], s = clip / qmax = {s.scale:.4f}",
            f"representable range [{s.qmin * s.scale:.4f}, {s.qmax * s.scale:.4f}]",
            f"STE: dQ/dx = 1 for {inside} of {s.x.numel()} points (inside the range), 0 outside",
            f"LSQ: dQ/ds in [{float(s.dq_ds.min()):.3f}, {float(s.dq_ds.max()):.3f}]: "
            f"{s.qmin} below the range, {s.qmax} above, round(x/s) - x/s in between",
        ]
