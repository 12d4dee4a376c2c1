"""Post-training quantization (PTQ) of whole models: pure transforms, simulated on integer codes.

``quantize_model`` returns a quantized *copy* of any ``nn.Module``:

1. BatchNorm is folded into the convolution before it inside every ``nn.Sequential``
   (:mod:`qlab.folding`; only there does registration order equal data flow).
2. Every Conv1d/Conv2d/Linear, wherever it sits, is replaced by a :class:`QuantizedLayer`
   whose weight is quantized on the full signed ``bits``-bit grid (PTQ weights use the full
   range [-2^(b-1), 2^(b-1) - 1] with symmetric scale amax / (2^(b-1) - 1), so the code
   -2^(b-1) stays unused; see :func:`qlab.affine.qparams_from_range`), symmetric
   (zero_point 0) or affine, one scale per tensor, per output channel or per group.
3. If ``act_bits`` is set, the input of every quantized layer is quantized on an unsigned
   affine grid (torch's quint8 convention), either
   - statically: one range per layer, set once by a calibrator (:mod:`qlab.calibration`)
     from ``calib_data`` (required) run through the float (folded) model, or
   - dynamically, recomputed every forward: one range per sample (``"per_sample"``, the
     default: a prediction does not depend on which other images share its batch), per
     token (``"per_token"``: each vector along the last axis, e.g. each of the B*T tokens
     of a (B, T, F) input) or per batch (``"per_batch"``: torch's ``quantize_dynamic``).

Arithmetic (what makes logits bit-identical across CPUs and thread counts): with activation
codes a = q_a - z_a and weight codes w = q_w - z_w, the layer computes
``acc = conv(a, w)`` on the integers held in float32, then ``y = acc * (s_a * s_w[c])``,
then ``y + bias``. Every product and partial sum is an exact integer as long as
``max|a| * max_c sum|w_c| < 2^24``, so the order in which a kernel sums cannot change
``acc``; a layer over that bound, or with per-group weights (several scales inside one dot
product), computes in float64 instead. Weight-only layers (float activations) run the float
layer with the fake-quantized weight.

Unsupported layers with weights (ConvTranspose, Embedding, a module's own nn.Parameter) stay
in float with a warning; the report (:mod:`qlab.report`) lists every float parameter.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from qlab import granularity as gran
from qlab._checks import check_bits, check_choice, check_group_size
from qlab.affine import calc_qparams, fake_quantize, qparams_from_range, qrange, quantize
from qlab.calibration import CALIBRATORS, calibrate, depends_on_bits
from qlab.folding import fold_batchnorm
from qlab.report import FloatParameter, LayerReport, PTQReport, layer_report

GRANULARITIES = ("per_tensor", "per_channel", "per_group")
ACT_MODES = ("static", "dynamic")
ACT_GRANULARITIES = ("per_sample", "per_token", "per_batch")
SUPPORTED = (nn.Conv1d, nn.Conv2d, nn.Linear)
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
EXACT_FLOAT32 = 2**24  # integers up to 2^24 are exact in float32
CALIB_BATCH = 256


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, layer) of every Conv1d/Conv2d/Linear anywhere in ``model``, in order
    (layers already wrapped in a :class:`QuantizedLayer` excluded)."""
    wrapped = {id(m.layer) for m in model.modules() if isinstance(m, QuantizedLayer)}
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SUPPORTED) and id(m) not in wrapped]


def float_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter not owned by a Conv1d/Conv2d/Linear or QuantizedLayer."""
    owned = {id(p) for m in model.modules() if isinstance(m, SUPPORTED) or isinstance(m, QuantizedLayer) for p in m.parameters()}
    return [(name, p) for name, p in model.named_parameters() if id(p) not in owned]


def model_report(qmodel: nn.Module, rows: list[LayerReport]) -> PTQReport:
    """The report of a quantized model: its layers' ``rows`` plus every parameter left in float."""
    floats = [FloatParameter(n, tuple(p.shape), p.numel() * p.element_size()) for n, p in float_parameters(qmodel)]
    return PTQReport(rows, floats)


def _unsupported_owners(model: nn.Module) -> list[str]:
    """Modules holding float parameters that are not normalization layers (those stay float by design)."""
    owners = []
    for name, m in model.named_modules():
        if isinstance(m, SUPPORTED) or isinstance(m, (QuantizedLayer, *NORMS)):
            continue
        own = [p for p, _ in m.named_parameters(recurse=False)]
        if own:
            owners.append(f"{name or '<model>'} ({type(m).__name__}: {', '.join(own)})")
    return owners


def channel_amax(w: torch.Tensor) -> torch.Tensor:
    """max |w| of each output channel (row c of the (C_out, fan_in) view): shape (C_out,)."""
    return gran.channel_rows(w.detach(), 0).abs().amax(dim=1)


def erased_channels(channel_scales: torch.Tensor, tensor_scale: float, bits: int) -> int:
    """Channels whose every weight rounds to 0 on the per-tensor grid of ``tensor_scale``.

    Channel c's largest weight is max|w_c| = s_c * qmax (its per-channel symmetric scale
    s_c times qmax = 2^(b-1) - 1); it rounds to 0 when max|w_c| < tensor_scale / 2.
    """
    return int((channel_scales * qrange(bits, signed=True)[1] < tensor_scale / 2).sum())


@dataclass(frozen=True)
class QuantizedWeight:
    """A quantized weight: fake-quantized values, integer codes (q - z) and parameters.

    ``weight = codes * scale`` (broadcast per granularity), exactly as ``fake_quantize``.
    """

    weight: torch.Tensor
    codes: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    granularity: str
    stored_params: int  # number of (scale[, zero_point]) sets kept with the weight


def _effective_group(fan_in: int, group_size: int, layer: str) -> int | None:
    """The group size used for one layer: None (per channel) if the fan-in is not larger."""
    if fan_in <= group_size:
        return None
    try:
        return check_group_size(group_size, fan_in)
    except ValueError:
        raise ValueError(
            f"group_size={group_size} does not divide the fan-in {fan_in} of layer {layer!r}; "
            f"choose a divisor of {fan_in} (layers whose fan-in is <= group_size use per-channel)"
        ) from None


def quantize_weight(
    w: torch.Tensor,
    bits: int,
    granularity: str = "per_channel",
    symmetric: bool = True,
    group_size: int | None = None,
    layer: str = "weight",
) -> QuantizedWeight:
    """Quantize a weight with min/max parameters on the full signed ``bits``-bit grid.

    Per group: groups of ``group_size`` consecutive weights along each output channel's
    flattened fan-in (C_in/groups * kH * kW); a layer whose fan-in is <= group_size gets one
    group per channel (which *is* per channel).
    """
    check_choice(granularity, GRANULARITIES, "granularity")
    qmin, qmax = qrange(bits, signed=True)
    rows = gran.channel_rows(w.detach(), 0)
    group = _effective_group(rows.shape[1], group_size, layer) if granularity == "per_group" else None
    axis = None if granularity == "per_tensor" or group is not None else 0
    scale, zp = calc_qparams(rows, bits, signed=True, symmetric=symmetric, axis=axis, group_size=group)
    fq = fake_quantize(rows, scale, zp, qmin, qmax, axis=axis, group_size=group).reshape(w.shape)
    q = quantize(rows, scale, zp, qmin, qmax, axis=axis, group_size=group)
    z = gran.broadcast_param(zp, gran.group_view(q, group) if group else q, axis, group)
    codes = ((gran.group_view(q, group) if group else q) - z).to(torch.float32).reshape(w.shape)
    label = f"per_group({group})" if group else ("per_tensor" if axis is None else "per_channel")
    return QuantizedWeight(fq, codes, scale, zp, label, scale.numel())


class ActivationFakeQuant(nn.Module):
    """Quantizes a layer's input on the unsigned ``bits``-bit affine grid.

    Static: fixed (scale, zero_point) from a calibrated range. Dynamic: min/max of each sample
    (``per_sample``), of each vector along the last axis (``per_token``) or of the whole batch
    (``per_batch``), recomputed every forward. :meth:`codes` gives a = q - z and the scale;
    ``forward`` gives the fake-quantized values a * scale.
    """

    def __init__(self, bits: int, mode: str, act_range: tuple[torch.Tensor, torch.Tensor] | None = None,
                 act_granularity: str | None = None) -> None:
        super().__init__()
        self.bits, self.mode = bits, mode
        self.act_granularity = "per_tensor" if mode == "static" else act_granularity or "per_sample"
        self.quant_min, self.quant_max = qrange(bits, signed=False)
        self.act_range = act_range
        if mode == "static":
            self.scale, self.zero_point = qparams_from_range(*act_range, bits=bits, signed=False)

    def max_code(self) -> int:
        """Largest |q - z| this quantizer can produce (static: from its zero-point)."""
        if self.mode == "static":
            z = int(self.zero_point)
            return max(self.quant_max - z, z - self.quant_min)
        return self.quant_max - self.quant_min

    def qparams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero_point) for input ``x``, shaped to broadcast against ``x``."""
        if self.mode == "static":
            return self.scale, self.zero_point
        if self.act_granularity == "per_batch":
            lo, hi = torch.aminmax(x)
            shape: tuple[int, ...] = ()
        elif self.act_granularity == "per_sample":  # amin + amax: much faster than aminmax along a dim
            rows = x.reshape(x.shape[0], -1)
            lo, hi = rows.amin(dim=1), rows.amax(dim=1)
            shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        else:
            lo, hi = x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)
            shape = lo.shape
        scale, zp = qparams_from_range(lo, hi, bits=self.bits, signed=False)
        return scale.reshape(shape), zp.reshape(shape)

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, scale): a = clamp(round(x / scale), qmin - z, qmax - z) = q - z as float32 integers."""
        scale, zp = self.qparams(x)
        r = torch.round(x * torch.reciprocal(scale))
        if zp.dim() == 0:
            return r.clamp_(self.quant_min - int(zp), self.quant_max - int(zp)), scale
        # two one-sided clamps: several times faster than clamp_ with tensor bounds
        return r.clamp_min_(self.quant_min - zp).clamp_max_(self.quant_max - zp), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, scale = self.codes(x)
        return a.mul_(scale)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, mode={self.mode}, granularity={self.act_granularity}"


class QuantizedLayer(nn.Module):
    """A Conv1d/Conv2d/Linear computed on integer codes (see the module docstring)."""

    def __init__(self, layer: nn.Module, qweight: QuantizedWeight, act: ActivationFakeQuant | None) -> None:
        super().__init__()
        self.layer = copy.deepcopy(layer)
        self.layer.weight = nn.Parameter(qweight.weight.clone(), requires_grad=False)
        self.qweight = qweight
        self.act = act
        per_group = qweight.granularity.startswith("per_group")
        self.exact = act is not None and not per_group and act.max_code() * self._max_row_sum() < EXACT_FLOAT32
        self.register_buffer("codes", qweight.codes if not per_group else qweight.weight, persistent=False)
        self.register_buffer("w_scale", self._output_shaped(qweight.scale) if not per_group else torch.ones(()), persistent=False)
        bias = None if self.layer.bias is None else self._output_shaped(self.layer.bias.detach())
        self.register_buffer("bias", bias, persistent=False)

    def _max_row_sum(self) -> float:
        return float(gran.channel_rows(self.qweight.codes, 0).abs().sum(dim=1).max())

    def _output_shaped(self, s: torch.Tensor) -> torch.Tensor:
        """Weight scale broadcast against the output: channels on dim 1 (conv) or last (linear)."""
        if s.dim() == 0:
            return s
        return s.reshape(-1, *([1] * (self.layer.weight.dim() - 2))) if isinstance(self.layer, nn.modules.conv._ConvNd) else s

    def _op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The layer's conv/linear without bias."""
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w)
        return self.layer._conv_forward(x, w, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is None:
            return self.layer(x)
        a, s_a = self.act.codes(x)
        if self.exact:
            y = self._op(a, self.codes).mul_(s_a * self.w_scale)
        else:
            y = self._op(a.double(), self.codes.double()).mul_(s_a.double() * self.w_scale.double()).float()
        return y if self.bias is None else y.add_(self.bias)


@dataclass
class PTQCache:
    """Everything PTQ needs that does not depend on bits, granularity or calibrator.

    Build it once per model (``PTQCache.build``) and pass it to :func:`quantize_model` as
    ``cache=``: it holds the folded model, each weighted layer's input on ``calib_data``
    (none if built without data: weight-only and dynamic PTQ only) and the calibrated
    ranges. ``fingerprint`` identifies the model it was built for.
    """

    folded: nn.Module
    layer_inputs: dict[str, torch.Tensor]
    fingerprint: str
    fold_bn: bool
    ranges: dict[tuple[str, int | None], dict[str, tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    @classmethod
    def build(cls, model: nn.Module, calib_data: torch.Tensor | None = None, fold_bn: bool = True) -> PTQCache:
        """Check and fold ``model``, and record its layer inputs on ``calib_data`` (if given)."""
        check_model(model)
        if not isinstance(fold_bn, bool):
            raise TypeError(f"fold_bn must be True or False, got {fold_bn!r}")
        folded = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
        inputs = {} if calib_data is None else collect_layer_inputs(folded, _check_calib_data(calib_data))
        return cls(folded, inputs, model_fingerprint(model), fold_bn)

    def act_ranges(self, calibrator: str, bits: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Calibrated input range of every weighted layer (computed once per calibrator, and per
        bit width only for the calibrators whose range depends on it)."""
        if not self.layer_inputs:
            raise ValueError("static activations need calibration data: build the PTQCache with calib_data=...")
        key = (calibrator, bits if depends_on_bits(calibrator) else None)
        if key not in self.ranges:
            self.ranges[key] = {
                name: calibrate(_batches(x, calibrator), calibrator, bits=bits, signed=False)
                for name, x in self.layer_inputs.items()
            }
        return self.ranges[key]


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's structure (module names and types) and of every parameter and buffer."""
    digest = hashlib.sha256()
    for name, m in model.named_modules():
        digest.update(f"{name}:{type(m).__name__};".encode())
    for name, t in model.state_dict().items():
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_model(model: nn.Module) -> None:
    """A float32 nn.Module with at least one supported layer and no NaN/inf in any layer's weights."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, t in model.state_dict().items():
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ValueError(f"model must be float32, but {name!r} is {t.dtype}; convert it first with model.float()")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"layer {name.rpartition('.')[0] or name!r}: {name!r} holds NaN or inf values")
    if not weighted_layers(model):
        raise ValueError("model has no Conv1d/Conv2d/Linear layer to quantize")


def _check_calib_data(calib_data: torch.Tensor) -> torch.Tensor:
    if not isinstance(calib_data, torch.Tensor):
        raise TypeError(f"calib_data must be a torch.Tensor of model inputs, got {type(calib_data).__name__}")
    if calib_data.is_floating_point() and calib_data.dtype != torch.float32:
        raise TypeError(f"calib_data must be float32 like the model (or integer, e.g. token ids), got {calib_data.dtype}")
    if calib_data.dim() == 0 or len(calib_data) == 0:
        raise ValueError(f"calib_data must hold at least one sample, got shape {tuple(calib_data.shape)}")
    return calib_data


def _batches(x: torch.Tensor, calibrator: str, batch_size: int = 64) -> torch.Tensor | list[torch.Tensor]:
    """Moving-average calibration sees the data batch by batch; the others all at once."""
    return list(x.split(batch_size)) if calibrator == "moving_average" else x


def collect_layer_inputs(model: nn.Module, images: torch.Tensor, batch_size: int = CALIB_BATCH) -> dict[str, torch.Tensor]:
    """Input of every weighted layer of ``model`` on ``images``, computed in float64, returned as float32.

    Float64 makes the recorded inputs independent of the CPU's kernels (last-bit differences
    of float32 sums vanish when rounding to float32). A layer never called raises ValueError.
    """
    model64 = copy.deepcopy(model).double().eval()
    layers = weighted_layers(model64)
    seen: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    hooks = [
        layer.register_forward_pre_hook(lambda _m, args, name=name: seen[name].append(args[0].detach().float()))
        for name, layer in layers
    ]
    try:
        with torch.inference_mode():
            for batch in images.split(batch_size):
                model64(batch.double() if batch.is_floating_point() else batch)
    finally:
        for h in hooks:
            h.remove()
    unused = [name for name, parts in seen.items() if not parts]
    if unused:
        raise ValueError(f"layer(s) {', '.join(map(repr, unused))} are never called in the model's forward; "
                         "remove them or call them (PTQ cannot calibrate or check an unused layer)")
    return {name: torch.cat(parts) for name, parts in seen.items()}


def _check_config(weight_bits, act_bits, granularity, symmetric, calibrator, act_mode, act_granularity,
                  group_size) -> None:
    check_bits(weight_bits, "weight_bits")
    if not isinstance(symmetric, bool):
        raise TypeError(f"symmetric_weights must be True or False, got {symmetric!r}")
    if act_bits is not None:
        check_bits(act_bits, "act_bits")
    check_choice(granularity, GRANULARITIES, "granularity")
    check_choice(calibrator, tuple(CALIBRATORS), "calibrator")
    check_choice(act_mode, ACT_MODES, "act_mode")
    if act_granularity is not None:
        check_choice(act_granularity, ACT_GRANULARITIES, "act_granularity")
        if act_mode != "dynamic":
            raise ValueError('act_granularity applies to act_mode="dynamic" only (static ranges are per tensor)')
    if (granularity == "per_group") != (group_size is not None):
        raise ValueError('group_size is needed for granularity="per_group" and only for it')
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")


def _resolve_cache(model: nn.Module, cache: PTQCache | None, calib_data: torch.Tensor | None,
                   fold_bn: bool | None) -> PTQCache:
    """``cache`` checked against ``model`` and the other arguments, or a new one."""
    if cache is None:
        return PTQCache.build(model, calib_data, True if fold_bn is None else fold_bn)
    if calib_data is not None:
        raise ValueError("pass calib_data or cache, not both (the cache already holds its calibration inputs)")
    if fold_bn is not None and fold_bn is not cache.fold_bn:
        raise ValueError(f"fold_bn={fold_bn} but the cache was built with fold_bn={cache.fold_bn}")
    check_model(model)
    if model_fingerprint(model) != cache.fingerprint:
        raise ValueError("cache was built for a different model (or the model changed since); "
                         "build a new one with PTQCache.build(model, calib_data)")
    return cache


def quantize_model(
    model: nn.Module,
    weight_bits: int = 8,
    act_bits: int | None = None,
    granularity: str = "per_channel",
    symmetric_weights: bool = True,
    calibrator: str = "minmax",
    calib_data: torch.Tensor | None = None,
    *,
    group_size: int | None = None,
    act_mode: str = "static",
    act_granularity: str | None = None,
    fold_bn: bool | None = None,
    cache: PTQCache | None = None,
) -> nn.Module:
    """A quantized copy of ``model`` (the original is left untouched).

    Args:
        weight_bits: 2..16, signed grid for every Conv1d/Conv2d/Linear weight.
        act_bits: 2..16 for layer inputs (unsigned affine), or None to keep them in float.
        granularity: "per_tensor", "per_channel" (per output channel) or "per_group".
        symmetric_weights: textbook symmetric (zero_point 0, scale amax/qmax) or affine.
        calibrator: a key of ``qlab.calibration.CALIBRATORS`` (static activations only).
        calib_data: samples for static calibration (required for static activations unless
            ``cache`` has them); with them, every layer is also checked to be called.
        group_size: weights per group (per_group only); must divide each layer's fan-in
            unless the fan-in is <= group_size (then that layer is per channel).
        act_mode: "static" (calibrated ranges) or "dynamic" (ranges of the live input).
        act_granularity: dynamic only: "per_sample" (default), "per_token" or "per_batch".
        fold_bn: fold BatchNorm into the previous conv first (default True); with ``cache``
            it must be None or the cache's value.
        cache: a :class:`PTQCache` built for this very model (checked by fingerprint).

    Returns:
        A copy in eval mode whose weighted layers are :class:`QuantizedLayer`, with a
        ``report`` attribute (:class:`qlab.report.PTQReport`). Layers with weights that
        cannot be quantized stay float with a warning naming them.
    """
    _check_config(weight_bits, act_bits, granularity, symmetric_weights, calibrator, act_mode, act_granularity, group_size)
    cache = _resolve_cache(model, cache, calib_data, fold_bn)
    static = act_bits is not None and act_mode == "static"
    if static and not cache.layer_inputs:
        raise ValueError("static activation quantization needs calibration data: pass calib_data= "
                         "(e.g. qlab.session.calibration_data()) or use act_mode='dynamic' or act_bits=None")
    ranges = cache.act_ranges(calibrator, act_bits) if static else {}
    qmodel = copy.deepcopy(cache.folded)
    rows = []
    for name, layer in weighted_layers(cache.folded):
        qw = quantize_weight(layer.weight, weight_bits, granularity, symmetric_weights, group_size, name)
        act = None if act_bits is None else ActivationFakeQuant(act_bits, act_mode, ranges.get(name), act_granularity)
        if act is not None and act.act_granularity == "per_token" and not isinstance(layer, nn.Linear):
            raise ValueError(f'act_granularity="per_token" needs Linear layers (one range per vector along the '
                             f'last axis); layer {name!r} is {type(layer).__name__}: use "per_sample"')
        qlayer = QuantizedLayer(layer, qw, act)
        if not name:
            qmodel = qlayer
        else:
            parent, _, leaf = name.rpartition(".")
            setattr(qmodel.get_submodule(parent), leaf, qlayer)
        rows.append(layer_report(name, layer, qw, weight_bits, symmetric_weights, act, cache.layer_inputs.get(name)))
    owners = _unsupported_owners(qmodel)
    if owners:
        warnings.warn(f"left in float (not quantizable by quantize_model): {'; '.join(owners)}", stacklevel=2)
    qmodel.report = model_report(qmodel, rows)
    return qmodel.eval()


def valid_group_sizes(model: nn.Module, candidates: tuple[int, ...] = (8, 16, 24, 32, 64, 128)) -> list[int]:
    """The ``candidates`` usable as ``group_size`` for every weighted layer of ``model``.

    A group size works for a layer if it divides the layer's fan-in or is not smaller than it
    (that layer then falls back to per channel); see :func:`quantize_weight`.
    """
    fan_ins = [gran.channel_rows(layer.weight, 0).shape[1] for _, layer in weighted_layers(model)]
    return [g for g in candidates if all(f <= g or f % g == 0 for f in fan_ins)]
