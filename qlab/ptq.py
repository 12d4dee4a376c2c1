"""Post-training quantization (PTQ) of whole models, simulated with fake quantization.

``quantize_model`` returns a quantized *copy* of a Sequential model:

1. BatchNorm is folded into the preceding convolution (:mod:`qlab.folding`).
2. Every Conv2d/Linear weight W is replaced by fake_quantize(W): signed integers, symmetric
   (textbook, zero_point = 0) or affine, with one scale per tensor, per output channel or
   per group of ``group_size`` input weights of each output channel.
3. If ``act_bits`` is set, the input of every Conv2d/Linear is fake-quantized on an unsigned
   affine grid (torch's quint8 convention), either
   - statically: one range per layer, set once by a calibrator (:mod:`qlab.calibration`)
     from ``calib_data`` run through the float (folded) model, as torch.ao's
     prepare/convert flow does, or
   - dynamically: min/max of the live batch (``act_granularity="per_tensor"``) or of each
     row (``"per_token"``: each sample of the batch, each token of an LLM).

Biases stay in float (they become int32 with scale s_in * s_w in integer inference, which
is exact enough to ignore here). Model size counts weights at ``weight_bits``, biases at 32
bits, and every stored scale/zero-point at 32 bits (symmetric zero-points are 0 and not stored).

The per-layer report (:class:`LayerReport`) gives weight and activation SQNR, ranges, bits
and size. A :class:`PTQCache` keeps what does not depend on the settings (folded model,
calibration activations, activation ranges per calibrator) so dashboards re-quantize fast.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from qlab import granularity as gran
from qlab._checks import check_bits, check_choice, check_group_size
from qlab.affine import calc_qparams, fake_quantize, fake_quantize_fast, qparams_from_range, qrange
from qlab.calibration import CALIBRATORS, calibrate, depends_on_bits
from qlab.data import calibration_subset
from qlab.evaluation import evaluate
from qlab.folding import fold_batchnorm
from qlab.metrics import sqnr_db
from qlab.models import load_pretrained

GRANULARITIES = ("per_tensor", "per_channel", "per_group")
ACT_MODES = ("static", "dynamic")
ACT_GRANULARITIES = ("per_tensor", "per_token")
WEIGHTED = (nn.Conv2d, nn.Linear)
FLOAT_BITS = 32
REPORT_SAMPLES = 64  # calibration images on which the report measures activation SQNR


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every Conv2d/Linear child of a Sequential model, in order."""
    return [(name, m) for name, m in model.named_children() if isinstance(m, WEIGHTED)]


@dataclass(frozen=True)
class QuantizedWeight:
    """A fake-quantized weight with its parameters (``scale``/``zero_point`` per granularity)."""

    weight: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    granularity: str
    stored_params: int  # number of (scale[, zero_point]) sets kept with the weight


def _weight_rows(w: torch.Tensor) -> torch.Tensor:
    """(C_out, fan_in) view of a weight: each row is one output channel's weights."""
    return gran.channel_rows(w, 0)


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
    """Fake-quantize a weight with min/max parameters on the signed ``bits``-bit grid.

    Per group: groups of ``group_size`` consecutive weights along each output channel's
    flattened fan-in (C_in/groups * kH * kW); a layer whose fan-in is <= group_size gets one
    group per channel (which *is* per channel).
    """
    check_choice(granularity, GRANULARITIES, "granularity")
    qmin, qmax = qrange(bits, signed=True)
    rows = _weight_rows(w.detach())
    group = _effective_group(rows.shape[1], group_size, layer) if granularity == "per_group" else None
    axis = None if granularity == "per_tensor" or group is not None else 0
    scale, zp = calc_qparams(rows, bits, signed=True, symmetric=symmetric, axis=axis, group_size=group)
    fq = fake_quantize(rows, scale, zp, qmin, qmax, axis=axis, group_size=group).reshape(w.shape)
    label = f"per_group({group})" if group else ("per_tensor" if axis is None else "per_channel")
    return QuantizedWeight(fq, scale, zp, label, scale.numel())


class ActivationFakeQuant(nn.Module):
    """Fake-quantizes a layer's input on the unsigned ``bits``-bit affine grid.

    Static: fixed (scale, zero_point) from a calibrated range. Dynamic: min/max of the
    current batch (per tensor) or of each sample (per token), recomputed every forward.
    """

    def __init__(self, bits: int, mode: str, act_range: tuple[torch.Tensor, torch.Tensor] | None = None,
                 act_granularity: str = "per_tensor") -> None:
        super().__init__()
        self.bits, self.mode, self.act_granularity = bits, mode, act_granularity
        self.quant_min, self.quant_max = qrange(bits, signed=False)
        self.act_range = act_range
        if mode == "static":
            self.scale, self.zero_point = qparams_from_range(*act_range, bits=bits, signed=False)

    def qparams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """(scale, zero_point, axis) for input ``x``."""
        if self.mode == "static":
            return self.scale, self.zero_point, None
        axis = 0 if self.act_granularity == "per_token" else None
        scale, zp = qparams_from_range(*gran.minmax(x, axis), bits=self.bits, signed=False)
        return scale, zp, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zp, axis = self.qparams(x)
        s, z = (gran.broadcast_param(p, x, axis, None) for p in (scale, zp))
        return fake_quantize_fast(x, s, z, self.quant_min, self.quant_max)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, mode={self.mode}, granularity={self.act_granularity}"


class QuantizedLayer(nn.Module):
    """A Conv2d/Linear with a fake-quantized weight, preceded by an optional input quantizer."""

    def __init__(self, layer: nn.Module, qweight: QuantizedWeight, act: ActivationFakeQuant | None) -> None:
        super().__init__()
        self.layer = copy.deepcopy(layer)
        self.layer.weight = nn.Parameter(qweight.weight.clone(), requires_grad=False)
        self.qweight = qweight
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x if self.act is None else self.act(x))


@dataclass(frozen=True)
class LayerReport:
    """One row of the per-layer report (sizes in bytes, SQNR in dB)."""

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    weight_bits: int
    granularity: str
    weight_range: tuple[float, float]
    weight_sqnr_db: float
    act_bits: int | None
    act_mode: str | None
    act_range: tuple[float, float] | None
    act_sqnr_db: float | None
    float_bytes: int
    quant_bytes: int


@dataclass
class PTQCache:
    """Everything PTQ needs that does not depend on bits, granularity or calibrator.

    Build it once per model (``PTQCache.build``); pass it to :func:`quantize_model` as
    ``cache=`` to skip BN folding and re-running the calibration data.
    """

    folded: nn.Sequential
    layer_inputs: dict[str, torch.Tensor]
    ranges: dict[tuple[str, int | None], dict[str, tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    @classmethod
    def build(cls, model: nn.Module, calib_data: torch.Tensor | None = None, fold_bn: bool = True) -> PTQCache:
        folded = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
        return cls(folded, collect_layer_inputs(folded, _calib_images(calib_data)))

    def act_ranges(self, method: str, bits: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Calibrated input range of every weighted layer (computed once per method, and per
        bit width only for the calibrators whose range depends on it)."""
        key = (method, bits if depends_on_bits(method) else None)
        if key not in self.ranges:
            self.ranges[key] = {
                name: calibrate(_batches(x, method), method, bits=bits, signed=False)
                for name, x in self.layer_inputs.items()
            }
        return self.ranges[key]


def _calib_images(calib_data: torch.Tensor | None) -> torch.Tensor:
    """``calib_data`` or, by default, qlab.data.calibration_subset() (512 training images)."""
    if calib_data is not None:
        return calib_data
    return calibration_subset()


def _batches(x: torch.Tensor, method: str, batch_size: int = 64) -> torch.Tensor | list[torch.Tensor]:
    """Moving-average calibration sees the data batch by batch; the others all at once."""
    return list(x.split(batch_size)) if method == "moving_average" else x


def collect_layer_inputs(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Inputs of every weighted layer of ``model`` on ``images`` (float, eval mode)."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name, _ in weighted_layers(model)}
    hooks = [
        layer.register_forward_pre_hook(lambda _m, args, name=name: seen[name].append(args[0].detach()))
        for name, layer in weighted_layers(model)
    ]
    try:
        with torch.inference_mode():
            model.eval()
            for batch in images.split(batch_size):
                model(batch)
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.cat(parts) for name, parts in seen.items()}


def _check_config(weight_bits, act_bits, granularity, calibration, act_mode, act_granularity, group_size) -> None:
    check_bits(weight_bits, "weight_bits")
    if act_bits is not None:
        check_bits(act_bits, "act_bits")
    check_choice(granularity, GRANULARITIES, "granularity")
    check_choice(calibration, tuple(CALIBRATORS), "calibration")
    check_choice(act_mode, ACT_MODES, "act_mode")
    check_choice(act_granularity, ACT_GRANULARITIES, "act_granularity")
    if (granularity == "per_group") != (group_size is not None):
        raise ValueError('group_size is needed for granularity="per_group" and only for it')
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")


def quantize_model(
    model: nn.Module,
    weight_bits: int = 8,
    act_bits: int | None = None,
    granularity: str = "per_channel",
    symmetric_weights: bool = True,
    calibration: str = "minmax",
    calib_data: torch.Tensor | None = None,
    *,
    group_size: int | None = None,
    act_mode: str = "static",
    act_granularity: str = "per_tensor",
    fold_bn: bool = True,
    cache: PTQCache | None = None,
) -> nn.Sequential:
    """A fake-quantized copy of a Sequential ``model`` (the original is left untouched).

    Args:
        weight_bits: 2..16, signed grid for every Conv2d/Linear weight.
        act_bits: 2..16 for layer inputs (unsigned affine), or None to keep them in float.
        granularity: "per_tensor", "per_channel" (per output channel) or "per_group".
        symmetric_weights: textbook symmetric (zero_point 0, scale amax/qmax) or affine.
        calibration: a key of ``qlab.calibration.CALIBRATORS`` (static activations only).
        calib_data: images for static calibration; default ``qlab.data.calibration_subset()``.
        group_size: weights per group (per_group only); must divide each layer's fan-in
            unless the fan-in is <= group_size (then that layer is per channel).
        act_mode: "static" (calibrated ranges) or "dynamic" (ranges of each live batch).
        act_granularity: dynamic only: "per_tensor" or "per_token" (one range per sample).
        fold_bn: fold BatchNorm into the previous conv first (what deployment does).
        cache: a :class:`PTQCache` of this model, to reuse folding and calibration work.

    Returns:
        An ``nn.Sequential`` in eval mode whose weighted layers are :class:`QuantizedLayer`
        and with a ``report`` attribute: a list of :class:`LayerReport` (see :func:`model_size`).
    """
    _check_config(weight_bits, act_bits, granularity, calibration, act_mode, act_granularity, group_size)
    if not weighted_layers(model):
        raise ValueError("model has no Conv2d/Linear children to quantize (expected an nn.Sequential)")
    cache = cache or PTQCache.build(model, calib_data, fold_bn)
    ranges = cache.act_ranges(calibration, act_bits) if act_bits is not None and act_mode == "static" else {}
    qmodel = copy.deepcopy(cache.folded)
    report = []
    for name, layer in weighted_layers(cache.folded):
        qw = quantize_weight(layer.weight, weight_bits, granularity, symmetric_weights, group_size, name)
        act = None
        if act_bits is not None:
            act = ActivationFakeQuant(act_bits, act_mode, ranges.get(name), act_granularity)
        setattr(qmodel, name, QuantizedLayer(layer, qw, act))
        report.append(_layer_report(name, layer, qw, weight_bits, symmetric_weights, act, cache.layer_inputs[name]))
    qmodel.report = report
    return qmodel.eval()


def _act_stats(act: ActivationFakeQuant, x: torch.Tensor) -> tuple[tuple[float, float] | None, float]:
    """(range, SQNR) of the activation quantizer on the first REPORT_SAMPLES calibration inputs."""
    x = x[:REPORT_SAMPLES]
    with torch.inference_mode():
        sqnr = sqnr_db(x, act(x))
    if act.mode == "static":
        return (float(act.act_range[0]), float(act.act_range[1])), sqnr
    return None, sqnr


def _layer_report(name, layer, qw: QuantizedWeight, bits, symmetric, act, x) -> LayerReport:
    w = layer.weight.detach()
    n_bias = 0 if layer.bias is None else layer.bias.numel()
    param_bytes = qw.stored_params * (4 if symmetric else 8)
    act_bytes = 8 if act is not None and act.mode == "static" else 0
    act_range, act_sqnr = _act_stats(act, x) if act is not None else (None, None)
    return LayerReport(
        name=name,
        kind=type(layer).__name__,
        weight_shape=tuple(w.shape),
        weight_bits=bits,
        granularity=qw.granularity,
        weight_range=(float(w.min()), float(w.max())),
        weight_sqnr_db=sqnr_db(w, qw.weight),
        act_bits=None if act is None else act.bits,
        act_mode=None if act is None else act.mode,
        act_range=act_range,
        act_sqnr_db=act_sqnr,
        float_bytes=(w.numel() + n_bias) * FLOAT_BITS // 8,
        quant_bytes=-(-w.numel() * bits // 8) + n_bias * FLOAT_BITS // 8 + param_bytes + act_bytes,
    )


def model_size(report: list[LayerReport]) -> tuple[int, int]:
    """(float32 bytes, quantized bytes) of the weighted layers, scales and zero-points included."""
    return sum(r.float_bytes for r in report), sum(r.quant_bytes for r in report)


def format_report(report: list[LayerReport]) -> str:
    """The per-layer report as a fixed-width text table (deterministic, for notebooks)."""
    head = f"{'layer':<16}{'kind':<8}{'W bits':>7}  {'granularity':<16}{'W SQNR':>8}{'A bits':>7}{'A SQNR':>8}{'bytes':>9}"
    lines = [head, "-" * len(head)]
    for r in report:
        a_bits = "-" if r.act_bits is None else str(r.act_bits)
        a_sqnr = "-" if r.act_sqnr_db is None else f"{r.act_sqnr_db:.1f}"
        lines.append(
            f"{r.name:<16}{r.kind:<8}{r.weight_bits:>7}  {r.granularity:<16}{r.weight_sqnr_db:>8.1f}"
            f"{a_bits:>7}{a_sqnr:>8}{r.quant_bytes:>9}"
        )
    fp, q = model_size(report)
    lines.append(f"total: {q} bytes quantized vs {fp} bytes float32 ({fp / q:.2f}x smaller)")
    return "\n".join(lines)


def valid_group_sizes(model: nn.Module, candidates: tuple[int, ...] = (8, 16, 24, 32, 64, 128)) -> list[int]:
    """The ``candidates`` usable as ``group_size`` for every weighted layer of ``model``.

    A group size works for a layer if it divides the layer's fan-in or is not smaller than it
    (that layer then falls back to per channel); see :func:`quantize_weight`.
    """
    fan_ins = [_weight_rows(layer.weight).shape[1] for _, layer in weighted_layers(model)]
    return [g for g in candidates if all(f <= g or f % g == 0 for f in fan_ins)]


@dataclass(frozen=True)
class PTQResult:
    """Test accuracy (full 10,000-image test set) and per-layer report of one PTQ configuration."""

    accuracy: float
    report: list[LayerReport]


class PTQSession:
    """The reference models, their :class:`PTQCache` and FP32 accuracy, each built on first use.

    :meth:`run` quantizes and evaluates one configuration; with ``memoize=True`` the result
    of an already visited configuration is returned without recomputing it (dashboards use
    this; benchmarks turn it off to measure unvisited configurations).
    """

    def __init__(self) -> None:
        self._models: dict[str, nn.Module] = {}
        self._caches: dict[str, PTQCache] = {}
        self._fp32: dict[str, float] = {}
        self._results: dict[tuple, PTQResult] = {}

    def model(self, name: str) -> nn.Module:
        """The pretrained model ``name`` (a key of ``qlab.models.MODEL_NAMES``)."""
        if name not in self._models:
            self._models[name] = load_pretrained(name)
        return self._models[name]

    def cache(self, name: str) -> PTQCache:
        """The PTQCache of model ``name`` (folded model, calibration inputs, ranges)."""
        if name not in self._caches:
            self._caches[name] = PTQCache.build(self.model(name))
        return self._caches[name]

    def fp32_accuracy(self, name: str) -> float:
        """Test accuracy of the float model ``name``."""
        if name not in self._fp32:
            self._fp32[name] = evaluate(self.model(name))
        return self._fp32[name]

    def run(self, name: str, memoize: bool = True, **config) -> PTQResult:
        """Accuracy and report of ``quantize_model(model, **config)`` on the test set."""
        key = (name, tuple(sorted(config.items())))
        if memoize and key in self._results:
            return self._results[key]
        qmodel = quantize_model(self.model(name), cache=self.cache(name), **config)
        result = PTQResult(evaluate(qmodel), qmodel.report)
        if memoize:
            self._results[key] = result
        return result

    def warm_up(self, name: str, calibrators: list[str], act_bits: list[int]) -> dict[str, float]:
        """Do the first-time work for model ``name``; return its cost in seconds, by item.

        Items: building the PTQCache (BN folding + calibration activations) plus the FP32
        evaluation, then each calibrator over all ``act_bits``.
        """
        costs = {}
        start = time.perf_counter()
        self.cache(name)
        self.fp32_accuracy(name)
        costs[f"{name}: PTQ cache + FP32 accuracy"] = time.perf_counter() - start
        for method in calibrators:
            start = time.perf_counter()
            for bits in act_bits:
                self.cache(name).act_ranges(method, bits)
            costs[f"{name}: {method} calibration ({', '.join(map(str, act_bits))} bits)"] = time.perf_counter() - start
        return costs
