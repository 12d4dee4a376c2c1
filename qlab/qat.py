"""Quantization-aware training (QAT): fake quantization in the training graph.

The forward pass of every quantizer is qlab's own ``fake_quantize``
(y = (clamp(zp + round(x / s), qmin, qmax) - zp) * s); what differs between the methods is
where the gradient goes and how the range is set:

- ``"ste"`` (observer + straight-through estimator, torch's ``FakeQuantize``): the range is
  observed -- min/max of the current weight per output channel; a moving average of the batch
  min/max for activations (``y += c * (batch - y)``, c = 0.01, frozen in eval mode). The
  gradient is dy/dx = 1 inside the range and 0 outside (the clip mask); s and zp get none.
- ``"lsq"`` (learned step size, Esser et al. 2020): s is an ``nn.Parameter``. Inside the range
  dy/ds = round(x/s) - x/s (the "sawtooth"), below it qmin - zp, above it qmax - zp; the
  gradient is multiplied by g = 1 / sqrt(N * Qp) (N elements per scale: a weight row, or one
  sample's features for activations; Qp = qmax - zp). Weight scales start at the paper's
  2 * mean|w| / sqrt(Qp) per channel, activation scales at the calibrated min/max range;
  with ``calibrator="mse"`` (any ``qlab.calibration`` calibrator) both start from that
  calibrator's range at the target bits instead.
  Before each forward pass s is clamped to >= 2^-23 in place (as torch.ao's
  ``_LearnableFakeQuantize`` does), since an optimizer step can push it to or below zero.
  With ``learn_zero_point=True`` (LSQ+, Bhalgat et al. 2020) the activations' zp is learned
  too: dy/dzp = 0 inside, -s outside (times g); the forward pass uses round-half-even(zp)
  clamped to [qmin, qmax].
- ``"penalty"``: the weights stay float in the forward pass (``penalty_fake_quant=False``) or
  are fake-quantized as in "ste" (True); the task loss gets ``lam * sum (w - Q(w))^2`` over
  all weights (Q = min/max per-channel grid, held constant in the gradient), pulling each
  weight toward its nearest grid point. Activations are quantized as in "ste".

The LSQ forward equals ``torch._fake_quantize_learnable_per_tensor_affine`` /
``..._per_channel_affine`` bit for bit and its gradients match them at float32 tolerance.
Documented deviation: torch's per-tensor *backward* takes the zero-point as int(zp + 0.5) --
half up for a fractional zp, and truncated towards zero for a negative one (zp = -1 -> 0) --
while its forward rounds half to even; qlab uses the forward's zero-point in both passes.
Second deviation, in torch's per-tensor and per-channel backward: it rounds zp + x/s while its forward adds zp to
round(x/s); at a tie x/s = k + 1/2 with an odd zp the two codes differ by one (x/s = -12.5,
zp = 13: forward code 1, backward code 0), and qlab's backward uses the forward's code.

BatchNorm: folded into the preceding convolution *before* QAT (qlab.folding), so training
sees exactly the weights the integer kernel will use; BN statistics are not updated any more
(the "fold, then fine-tune" choice; Krishnamoorthi 2018 §3.2 keeps BN and folds with running
statistics instead, which matters when training from scratch, not for a 3-epoch fine-tune).

Weights: signed symmetric (zp = 0, textbook grid, as PTQ), per channel or per tensor.
Activations (the input of every Conv2d/Linear): unsigned affine, per tensor. Every weighted
layer -- first and last included -- uses the requested bits (no 8-bit exception), as PTQ does.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qlab._checks import check_bits, check_choice
from qlab.calibration import CALIBRATORS, calibrate
from qlab.affine import EPS, calc_qparams, fake_quantize, qparams_from_range, qrange, quantize
from qlab.data import calibration_subset
from qlab.folding import fold_batchnorm
from qlab.report import layer_report
from qlab.ptq import (
    ActivationFakeQuant,
    QuantizedLayer,
    QuantizedWeight,
    collect_layer_inputs,
    model_report,
    weighted_layers,
)

METHODS = ("ste", "lsq", "penalty")
GRANULARITIES = ("per_tensor", "per_channel")
MOVING_AVERAGE = 0.01  # torch.ao MovingAverageMinMaxObserver's default averaging constant


def lsq_grad_factor(n: int, quant_max: int) -> float:
    """LSQ's gradient scale g = 1 / sqrt(N * Qp) for N elements sharing one scale."""
    return 1.0 / math.sqrt(n * quant_max)


def lsq_init_scale(w: torch.Tensor, quant_max: int, axis: int | None) -> torch.Tensor:
    """LSQ's initial step size 2 * mean|w| / sqrt(Qp), per tensor or per channel ``axis``."""
    a = w.detach().abs()
    mean = a.mean() if axis is None else a.movedim(axis, 0).reshape(a.shape[axis], -1).mean(dim=1)
    return torch.clamp(2 * mean / math.sqrt(quant_max), min=torch.finfo(torch.float32).eps)


def _shaped(p: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None:
        return p.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return p.reshape(shape)


class _LearnableFakeQuantize(torch.autograd.Function):
    """fake_quantize(x, s, round(zp)) with LSQ gradients for x, s and zp (see module docstring)."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max, axis, grad_factor):  # type: ignore[override]
        zp = torch.clamp(torch.round(zero_point.detach()), quant_min, quant_max)
        y = fake_quantize(x.detach(), scale.detach().reshape(-1) if axis is not None else scale.detach().reshape(()),
                          zp.reshape(-1) if axis is not None else zp.reshape(()), quant_min, quant_max, axis=axis)
        ctx.save_for_backward(x, scale, zp)
        ctx.params = (quant_min, quant_max, axis, grad_factor)
        return y

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        x, scale, zp = ctx.saved_tensors
        quant_min, quant_max, axis, g = ctx.params
        s, z = _shaped(scale.detach(), x, axis), _shaped(zp, x, axis)
        v = x * torch.reciprocal(s)
        q = torch.round(v) + z
        below, above = q < quant_min, q > quant_max
        inside = ~(below | above)
        dx = grad_y * inside
        ds_elem = torch.where(below, quant_min - z, torch.where(above, quant_max - z, torch.round(v) - v))
        dz_elem = torch.where(inside, torch.zeros_like(s), -s)
        dims = [d for d in range(x.dim()) if d != axis]
        ds = (grad_y * ds_elem * g).sum(dim=dims) if dims else grad_y * ds_elem * g
        dz = (grad_y * dz_elem * g).sum(dim=dims) if dims else grad_y * dz_elem * g
        return dx, ds.reshape(scale.shape), dz.reshape(zp.shape), None, None, None, None


def learnable_fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    quant_min: int,
    quant_max: int,
    axis: int | None = None,
    grad_factor: float = 1.0,
) -> torch.Tensor:
    """LSQ fake quantization: forward ``fake_quantize(x, s, clamp(round(zp)))``, learnable s and zp.

    Same arguments as ``torch._fake_quantize_learnable_per_tensor_affine`` (``axis=None``;
    scale and zero_point of shape (1,)) and ``..._per_channel_affine`` (shape (C,)).
    """
    if not (isinstance(scale, torch.Tensor) and isinstance(zero_point, torch.Tensor)):
        raise TypeError("scale and zero_point must be float tensors")
    if not bool((scale > 0).all()):
        raise ValueError("scale must be > 0 everywhere")
    return _LearnableFakeQuantize.apply(x, scale, zero_point.to(torch.float32), quant_min, quant_max, axis, grad_factor)


class FakeQuant(nn.Module):
    """Fake-quantizes a weight (signed symmetric) or an activation (unsigned affine) during training.

    Args:
        bits: 2..16.
        kind: "weight" or "activation".
        method: "observer" (straight-through estimator, observed range) or "lsq" (learned scale).
        per_channel: weights only: one scale per output channel (axis 0).
        learn_zero_point: activations with method "lsq" only (LSQ+).
        init_range: activations: the calibrated (min, max) the range starts from.
    """

    def __init__(self, bits: int, kind: str, method: str, per_channel: bool = False,
                 learn_zero_point: bool = False, init_range: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.kind = check_choice(kind, ("weight", "activation"), "kind")
        self.method = check_choice(method, ("observer", "lsq"), "method")
        if learn_zero_point and (kind != "activation" or method != "lsq"):
            raise ValueError("learn_zero_point (LSQ+) applies to activations with method='lsq' only")
        self.learn_zero_point = learn_zero_point
        self.axis = 0 if per_channel and kind == "weight" else None
        self.quant_min, self.quant_max = qrange(bits, signed=kind == "weight")
        if kind == "activation":
            if init_range is None:
                raise ValueError("an activation FakeQuant needs init_range=(min, max) from calibration")
            self.register_buffer("min_val", torch.as_tensor(init_range[0], dtype=torch.float32).clone())
            self.register_buffer("max_val", torch.as_tensor(init_range[1], dtype=torch.float32).clone())
            scale, zp = qparams_from_range(self.min_val, self.max_val, bits, signed=False)
        else:
            scale, zp = torch.ones(()), torch.zeros((), dtype=torch.int32)
        if method == "lsq":
            self.scale = nn.Parameter(scale.reshape(1).clone())
            zp_f = zp.to(torch.float32).reshape(1)
            self.zero_point = nn.Parameter(zp_f) if learn_zero_point else nn.Parameter(zp_f, requires_grad=False)

    def init_weight_scale(self, w: torch.Tensor, calibrator: str | None = None, **options: Any) -> None:
        """LSQ weights: set the scale to 2 * mean|w| / sqrt(Qp) (per channel if configured), or,
        with ``calibrator``, to amax / Qp of that calibrator's symmetric range at these bits
        (``options`` go to ``qlab.calibration.calibrate``)."""
        with torch.no_grad():
            if calibrator is None:
                scale = lsq_init_scale(w, self.quant_max, self.axis)
            else:
                mn, mx = calibrate(w.detach(), calibrator, self.bits, signed=True, axis=self.axis, **options)
                scale, _ = qparams_from_range(mn, mx, self.bits, signed=True, symmetric=True)
            self.scale = nn.Parameter(scale.reshape(-1).clone())
            self.zero_point = nn.Parameter(torch.zeros_like(self.scale), requires_grad=False)

    def qparams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Current (scale, zero_point): float32 scale, int32 zero-point, per tensor (0-dim) or (C,)."""
        if self.method == "lsq":
            zp = torch.clamp(torch.round(self.zero_point.detach()), self.quant_min, self.quant_max)
            s = self.scale.detach()
            return (s.reshape(()), zp.reshape(()).to(torch.int32)) if self.axis is None else (s, zp.to(torch.int32))
        if self.kind == "weight":
            return calc_qparams(x.detach(), self.bits, signed=True, symmetric=True, axis=self.axis)
        return qparams_from_range(self.min_val, self.max_val, self.bits, signed=False)

    def _observe(self, x: torch.Tensor) -> None:
        """Moving-average min/max update of an activation range (training mode only)."""
        with torch.no_grad():
            mn, mx = torch.aminmax(x.detach())
            self.min_val += MOVING_AVERAGE * (mn - self.min_val)
            self.max_val += MOVING_AVERAGE * (mx - self.max_val)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "lsq":
            with torch.no_grad():  # an optimizer step may push s below zero (torch.ao clamps the same way)
                self.scale.clamp_(min=EPS)
            n = x[0].numel() if self.kind == "activation" else (x.numel() // x.shape[0] if self.axis == 0 else x.numel())
            qp = self.quant_max - (0 if self.kind == "weight" else int(self.zero_point.detach().round().clamp(self.quant_min, self.quant_max)))
            g = lsq_grad_factor(n, max(qp, 1))
            return learnable_fake_quantize(x, self.scale, self.zero_point, self.quant_min, self.quant_max, self.axis, g)
        if self.kind == "activation" and self.training:
            self._observe(x)
        scale, zp = self.qparams(x)
        return fake_quantize(x, scale, zp, self.quant_min, self.quant_max, axis=self.axis)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, kind={self.kind}, method={self.method}, axis={self.axis}"


class QATLayer(nn.Module):
    """A Conv2d/Linear whose input and weight go through :class:`FakeQuant` in the forward pass."""

    def __init__(self, layer: nn.Module, weight_fq: FakeQuant | None, act_fq: FakeQuant | None) -> None:
        super().__init__()
        self.layer = copy.deepcopy(layer)
        self.weight_fq = weight_fq
        self.act_fq = act_fq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_fq is not None:
            x = self.act_fq(x)
        w = self.layer.weight if self.weight_fq is None else self.weight_fq(self.layer.weight)
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return F.linear(x, w, self.layer.bias)


def _check_qat_args(weight_bits: int, act_bits: int | None, method: str, granularity: str, lam: float) -> None:
    check_bits(weight_bits, "weight_bits")
    if act_bits is not None:
        check_bits(act_bits, "act_bits")
    check_choice(method, METHODS, "method")
    check_choice(granularity, GRANULARITIES, "granularity")
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam (the penalty weight λ) must be a finite number >= 0, got {lam!r}")


def prepare_qat(
    model: nn.Module,
    weight_bits: int = 4,
    act_bits: int | None = 4,
    method: str = "lsq",
    granularity: str = "per_channel",
    *,
    learn_zero_point: bool = False,
    lam: float = 1e-2,
    penalty_fake_quant: bool = False,
    calib_data: torch.Tensor | None = None,
    calibrator: str | None = None,
    calibrator_options: dict[str, Any] | None = None,
) -> nn.Sequential:
    """A trainable fake-quantized copy of a Sequential ``model`` (the original is untouched).

    BatchNorm is folded first; every Conv2d/Linear becomes a :class:`QATLayer`. Activation
    ranges start from min/max over ``calib_data`` (default ``qlab.data.calibration_subset()``,
    the images PTQ calibrates on) or, with ``calibrator`` (a ``qlab.calibration`` name such as
    "mse"), from that calibrator at ``act_bits``; with method "lsq" the weight step sizes then
    start from it too (instead of LSQ's 2 * mean|w| / sqrt(Qp)); ``calibrator_options`` go to
    ``qlab.calibration.calibrate`` (e.g. ``{"num_bins": 256, "start_bin": 16}``). ``method`` is "ste", "lsq" or "penalty" (see the module
    docstring); ``lam`` is the penalty weight λ and ``penalty_fake_quant`` whether the penalty
    method also fake-quantizes weights in the forward pass. The copy is in train mode; the
    settings are kept in its ``qat_config`` attribute.
    """
    _check_qat_args(weight_bits, act_bits, method, granularity, lam)
    if calibrator is not None:
        check_choice(calibrator, tuple(CALIBRATORS), "calibrator")
    elif calibrator_options:
        raise ValueError("calibrator_options given without a calibrator")
    options = calibrator_options or {}
    if not isinstance(model, nn.Sequential) or not weighted_layers(model):
        raise ValueError("model has no Conv2d/Linear children to quantize (expected an nn.Sequential)")
    folded = fold_batchnorm(model)
    images = calibration_subset() if calib_data is None else calib_data
    inputs = collect_layer_inputs(folded, images)
    per_channel = granularity == "per_channel"
    fq_method = "lsq" if method == "lsq" else "observer"
    qat = copy.deepcopy(folded)
    for name, layer in weighted_layers(folded):
        weight_fq = None
        if method != "penalty" or penalty_fake_quant:
            weight_fq = FakeQuant(weight_bits, "weight", fq_method, per_channel)
            if fq_method == "lsq":
                weight_fq.init_weight_scale(layer.weight, calibrator, **options)
        act_fq = None
        if act_bits is not None:
            x = inputs[name]
            init_range = (x.min(), x.max()) if calibrator is None else calibrate(x, calibrator, act_bits, signed=False, **options)
            act_fq = FakeQuant(act_bits, "activation", fq_method, learn_zero_point=learn_zero_point,
                               init_range=init_range)
        setattr(qat, name, QATLayer(layer, weight_fq, act_fq))
    qat.qat_config = {"weight_bits": weight_bits, "act_bits": act_bits, "method": method, "granularity": granularity,
                      "learn_zero_point": learn_zero_point, "lam": lam, "penalty_fake_quant": penalty_fake_quant,
                      "calibrator": calibrator, "calibrator_options": options}
    return qat.train()


def _qat_layers(model: nn.Module) -> list[tuple[str, QATLayer]]:
    layers = [(name, m) for name, m in model.named_children() if isinstance(m, QATLayer)]
    if not layers:
        raise ValueError("model has no QATLayer; build it with qlab.qat.prepare_qat")
    return layers


def weight_qparams(qlayer: QATLayer, bits: int, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero_point) of a QAT layer's weight: learned (LSQ) or min/max (observer, penalty)."""
    w = qlayer.layer.weight.detach()
    if qlayer.weight_fq is not None:
        return qlayer.weight_fq.qparams(w)
    return calc_qparams(w, bits, signed=True, symmetric=True, axis=0 if per_channel else None)


def weight_codes(qlayer: QATLayer) -> torch.Tensor:
    """Integer codes (int32) of a QAT layer's current weight on its current grid."""
    if qlayer.weight_fq is None:
        raise ValueError("this QATLayer has no weight quantizer (penalty method without fake quantization)")
    w = qlayer.layer.weight.detach()
    scale, zp = qlayer.weight_fq.qparams(w)
    return quantize(w, scale, zp, qlayer.weight_fq.quant_min, qlayer.weight_fq.quant_max,
                    axis=None if scale.dim() == 0 else 0)


def oscillations(codes: torch.Tensor, window: int = 100) -> torch.Tensor:
    """Which weights oscillate (Nagel et al. 2022) in the last ``window`` recorded steps.

    ``codes`` has shape (steps, *weight_shape). A weight oscillates if, within the window,
    its code changed at least twice (it went and came back) while visiting only two
    neighbouring codes (max - min = 1). Returns a bool tensor of the weight's shape.
    """
    c = codes[-window:]
    changes = (c[1:] != c[:-1]).sum(dim=0)
    return (changes >= 2) & (c.amax(dim=0) - c.amin(dim=0) == 1)


def near_boundary_fraction(codes_real: torch.Tensor, tol: float = 0.05) -> float:
    """Fraction of values v = w / s within ``tol`` steps of a rounding decision boundary (v mod 1 = 0.5).

    Uniformly spread weights give 2 * tol; QAT weights that oscillate sit close to a boundary.
    """
    frac = torch.remainder(codes_real, 1.0)
    return float(((frac - 0.5).abs() <= tol).float().mean())


def scaled_weight(qlayer: QATLayer, w: torch.Tensor | None = None) -> torch.Tensor:
    """A weight in units of the layer's current step, w / s (per-channel scales along axis 0).

    ``w`` defaults to the layer's own weight; pass another (e.g. the FP32 weight before QAT)
    to see it on the same grid.
    """
    w = qlayer.layer.weight.detach() if w is None else w.detach()
    scale, _ = qlayer.weight_fq.qparams(qlayer.layer.weight.detach())
    return w / (scale if scale.dim() == 0 else scale.reshape([-1] + [1] * (w.dim() - 1)))


def step_sizes(model: nn.Module) -> list[tuple[str, float, float]]:
    """(layer, mean weight step of the QAT model, mean min/max step of the same weights) per layer."""
    cfg = model.qat_config
    rows = []
    for name, ql in _qat_layers(model):
        scale, _ = weight_qparams(ql, cfg["weight_bits"], cfg["granularity"] == "per_channel")
        minmax, _ = calc_qparams(ql.layer.weight.detach(), cfg["weight_bits"], signed=True, symmetric=True,
                                 axis=None if scale.dim() == 0 else 0)
        rows.append((name, float(scale.mean()), float(minmax.mean())))
    return rows


def penalty(model: nn.Module) -> torch.Tensor:
    """λ · Σ (w − Q(w))² over the weights of every QATLayer (Q(w) held constant).

    Q is the layer's weight grid (learned or min/max scale, see :func:`weight_qparams`);
    λ is ``model.qat_config["lam"]``. Pass as ``regularizer=`` to :func:`qlab.train.fit`.
    """
    layers = _qat_layers(model)
    cfg = model.qat_config
    total = torch.zeros(())
    for _, ql in layers:
        w = ql.layer.weight
        scale, zp = weight_qparams(ql, cfg["weight_bits"], cfg["granularity"] == "per_channel")
        qmin, qmax = qrange(cfg["weight_bits"], signed=True)
        target = fake_quantize(w.detach(), scale, zp, qmin, qmax, axis=None if scale.dim() == 0 else 0)
        total = total + ((w - target) ** 2).sum()
    return cfg["lam"] * total


def convert(model: nn.Module, calib_data: torch.Tensor | None = None) -> nn.Sequential:
    """The trained QAT model in PTQ's quantized form (eval mode, with a ``report``).

    Each QATLayer becomes a ``qlab.ptq.QuantizedLayer`` holding the fake-quantized weight
    and a static ``ActivationFakeQuant`` with the QAT scale and zero-point, so the converted
    model computes what the QAT model computes in eval mode (up to float rounding: the
    converted layers sum integer codes exactly, the QAT layers sum floats) and the PTQ report and
    size accounting apply unchanged.
    """
    cfg = model.qat_config
    per_channel = cfg["granularity"] == "per_channel"
    qmin, qmax = qrange(cfg["weight_bits"], signed=True)
    out = copy.deepcopy(model).eval()
    plain = copy.deepcopy(out)
    for name, ql in _qat_layers(out):
        setattr(plain, name, ql.layer)
    inputs = collect_layer_inputs(plain, calibration_subset() if calib_data is None else calib_data)
    report = []
    for name, ql in _qat_layers(out):
        w = ql.layer.weight.detach()
        scale, zp = weight_qparams(ql, cfg["weight_bits"], per_channel)
        axis = None if scale.dim() == 0 else 0
        z = zp if axis is None else zp.reshape(-1, *[1] * (w.dim() - 1))
        codes = (quantize(w, scale, zp, qmin, qmax, axis=axis) - z).to(torch.float32)
        qw = QuantizedWeight(fake_quantize(w, scale, zp, qmin, qmax, axis=axis), codes, scale, zp,
                             "per_tensor" if axis is None else "per_channel", scale.numel())
        act = None
        if ql.act_fq is not None:
            a_scale, a_zp = ql.act_fq.qparams(w)
            lo, hi = ql.act_fq.quant_min, ql.act_fq.quant_max
            act = ActivationFakeQuant(ql.act_fq.bits, "static", ((lo - a_zp) * a_scale, (hi - a_zp) * a_scale))
            act.scale, act.zero_point = a_scale, a_zp
        setattr(out, name, QuantizedLayer(ql.layer, qw, act))
        report.append(layer_report(name, ql.layer, qw, cfg["weight_bits"], True, act, inputs[name]))
    out.report = model_report(out, report)
    out.__dict__.pop("qat_config", None)
    return out.eval()
