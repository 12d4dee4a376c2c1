"""PTQ on the shipped models and Fashion-MNIST: the session that dashboards, lessons and benchmarks share.

:mod:`qlab.ptq` holds the pure transforms and needs its calibration data passed in; this
module supplies the course's defaults (the pretrained models, :func:`calibration_data` = 512
training images) and caches everything a dashboard control change does not alter.

A full test-set evaluation takes 0.3-3 s on 2 cores, longer than a whole-model dashboard's
latency budget, and a lesson's settings are too many to evaluate while a dashboard is built or
a lesson runs. So the test accuracies of the dashboards' settings and of the settings the
lessons' cells and checks ask for (including :meth:`PTQSession.sensitivity`'s one-layer runs)
are measured once, by ``benchmarks/dashboard_accuracy.py``, into :data:`ACCURACY_TABLE` (with
each model's fingerprint); :meth:`PTQSession.run` and :meth:`PTQSession.sensitivity` take a
setting's accuracies from there when the model's fingerprint matches and evaluate them
otherwise. The report (per-layer SQNR, sizes) is always computed live. The table also holds
each model's calibrated activation ranges for the dashboard's calibrators and bit widths
(the mse/entropy/histogram searches take up to about a second per model and bit width), which
:meth:`PTQSession.cache` preloads under the same fingerprint check, so a first visit to a
setting calibrates nothing.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qlab.calibration import CALIBRATORS, depends_on_bits
from qlab.data import calibration_subset
from qlab.evaluation import evaluate
from qlab.models import load_pretrained
from qlab.ptq import PTQCache, model_fingerprint, quantize_model, weighted_layers
from qlab.report import PTQReport

CALIBRATION_IMAGES = 512
ACCURACY_TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "dashboard_accuracy.json"
"""Measured test accuracies by model and setting (``benchmarks/dashboard_accuracy.py``)."""


FP32_LABEL = "fp32"
SETTING_DEFAULTS: dict[str, object] = {
    name: parameter.default for name, parameter in inspect.signature(quantize_model).parameters.items()
    if name in ("weight_bits", "act_bits", "granularity", "symmetric_weights", "calibrator", "group_size",
                "act_mode", "act_granularity")
}
"""The ``quantize_model`` arguments that make up a setting, with their defaults."""


def canonical_config(config: dict) -> dict:
    """``config`` with every setting ``quantize_model`` defaults spelled out and the settings it
    ignores left out (the activation mode, calibrator and granularity while activations are float,
    the calibrator unless they are static, the activation granularity unless they are dynamic), so
    two spellings of one ``quantize_model`` call have one canonical form."""
    full = {**SETTING_DEFAULTS, **config}
    if full["act_bits"] is None:
        ignored = {"act_mode", "calibrator", "act_granularity"}
    else:
        ignored = {"act_granularity"} if full["act_mode"] == "static" else {"calibrator"}
    return {k: v for k, v in full.items() if k not in ignored}


def config_label(config: dict) -> str:
    """A setting as the accuracy table's key: the items of :func:`canonical_config`, sorted, as JSON."""
    return json.dumps(dict(sorted(canonical_config(config).items())))


def load_accuracy_table(path: Path = ACCURACY_TABLE) -> dict[str, dict]:
    """``{model: {"fingerprint": sha256, "accuracy": {config_label: accuracy},
    "sensitivity": {config_label: {layer: accuracy}},
    "act_ranges": {range_label: {layer: [min_val, max_val]}}}}``; empty if the file is missing."""
    return json.loads(path.read_text())["models"] if path.exists() else {}


def range_label(calibrator: str, bits: int) -> str:
    """The table's key of a calibrator's activation ranges: ``"mse/8"``, or ``"minmax"`` for a
    calibrator whose range does not depend on the bit width."""
    return f"{calibrator}/{bits}" if depends_on_bits(calibrator) else calibrator


def parse_range_label(label: str) -> tuple[str, int | None]:
    """Inverse of :func:`range_label`: ``(calibrator, bits)``, bits None for a calibrator whose
    range does not depend on the bit width (the key ``PTQCache.ranges`` uses)."""
    calibrator, _, bits = label.partition("/")
    return calibrator, int(bits) if bits else None


def ranges_to_json(ranges: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list]:
    """``PTQCache.act_ranges`` output as ``{layer: [min_val, max_val]}`` (float32 values, exact as JSON floats)."""
    return {layer: [lo.tolist(), hi.tolist()] for layer, (lo, hi) in ranges.items()}


def ranges_from_json(stored: dict[str, list]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Inverse of :func:`ranges_to_json`: float32 tensors, bit for bit the ones stored."""
    return {layer: (torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32))
            for layer, (lo, hi) in stored.items()}


def calibration_data(n: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """The course's calibration set: ``qlab.data.calibration_subset(n)`` (training images only)."""
    return calibration_subset(n)


def build_cache(model: nn.Module, fold_bn: bool = True) -> PTQCache:
    """``PTQCache.build(model, calibration_data(), fold_bn)``."""
    return PTQCache.build(model, calibration_data(), fold_bn)


@dataclass(frozen=True)
class PTQResult:
    """Test accuracy (full 10,000-image test set) and report of one PTQ configuration."""

    accuracy: float
    report: PTQReport


class PTQSession:
    """The reference models, their :class:`PTQCache` and FP32 accuracy, each built on first use.

    :meth:`run` quantizes and evaluates one configuration; with ``memoize=True`` the result
    of an already visited configuration is returned without recomputing it (dashboards use
    this; benchmarks turn it off to measure unvisited configurations).
    """

    def __init__(self, table: Path | None = ACCURACY_TABLE) -> None:
        """``table``: measured accuracies to use for matching models (None: always evaluate)."""
        self._models: dict[str, nn.Module] = {}
        self._caches: dict[str, PTQCache] = {}
        self._fp32: dict[str, float] = {}
        self._results: dict[tuple, PTQResult] = {}
        self._sensitivity: dict[tuple, dict[str, float]] = {}
        self._table = {} if table is None else load_accuracy_table(table)
        self._stored: dict[str, dict] = {}

    def model(self, name: str) -> nn.Module:
        """The pretrained model ``name`` (a key of ``qlab.models.MODEL_NAMES``)."""
        if name not in self._models:
            self._models[name] = load_pretrained(name)
        return self._models[name]

    def cache(self, name: str) -> PTQCache:
        """The PTQCache of model ``name`` (folded model, calibration inputs, ranges), with the
        table's activation ranges preloaded if the model's fingerprint matches."""
        if name not in self._caches:
            cache = build_cache(self.model(name))
            for label, stored in self.stored_act_ranges(name).items():
                restored = ranges_from_json(stored)  # in the model's layer order (the table's keys are sorted)
                cache.ranges[parse_range_label(label)] = {layer: restored[layer] for layer in cache.layer_inputs}
            self._caches[name] = cache
        return self._caches[name]

    def fp32_accuracy(self, name: str) -> float:
        """Test accuracy of the float model ``name`` (from the table under the label ``"fp32"``, if there)."""
        if name not in self._fp32:
            stored = self.stored_accuracies(name).get(FP32_LABEL)
            self._fp32[name] = evaluate(self.model(name)) if stored is None else stored
        return self._fp32[name]

    @staticmethod
    def result_key(name: str, config: dict) -> tuple:
        """The memo key of a configuration: the items of :func:`canonical_config`, so a dashboard's
        inert controls and a default spelled out or left implicit never trigger a new evaluation."""
        return name, tuple(sorted(canonical_config(config).items()))

    def _stored_entry(self, name: str) -> dict:
        """The table's entry of model ``name`` if its fingerprint matches the loaded model, else {}."""
        if name not in self._stored:
            entry = self._table.get(name, {})
            matches = entry.get("fingerprint") == model_fingerprint(self.model(name)) if entry else False
            self._stored[name] = entry if matches else {}
        return self._stored[name]

    def stored_accuracies(self, name: str) -> dict[str, float]:
        """The table's accuracies of model ``name`` by :func:`config_label`, if its fingerprint matches."""
        return self._stored_entry(name).get("accuracy", {})

    def stored_sensitivity(self, name: str) -> dict[str, dict[str, float]]:
        """The table's :meth:`sensitivity` results of model ``name`` by :func:`config_label`, if its fingerprint matches."""
        return self._stored_entry(name).get("sensitivity", {})

    def stored_act_ranges(self, name: str) -> dict[str, dict[str, list]]:
        """The table's activation ranges of model ``name`` by :func:`range_label`, if its fingerprint matches."""
        return self._stored_entry(name).get("act_ranges", {})

    def run(self, name: str, memoize: bool = True, **config) -> PTQResult:
        """Accuracy and report of ``quantize_model(model, **config)`` on the test set (the
        accuracy from the table when it holds this setting of this very model)."""
        key = self.result_key(name, config)
        if memoize and key in self._results:
            return self._results[key]
        qmodel = quantize_model(self.model(name), cache=self.cache(name), **config)
        stored = self.stored_accuracies(name).get(config_label(config))
        result = PTQResult(evaluate(qmodel) if stored is None else stored, qmodel.report)
        if memoize:
            self._results[key] = result
        return result

    def sensitivity(self, name: str, **config) -> dict[str, float]:
        """Test accuracy with ONE layer quantized at a time, the others float: {layer: accuracy}.

        For each weighted layer L of model ``name``: the folded float model with only L replaced
        by its quantized version from ``quantize_model(model, **config)`` (same weight grid, same
        calibrated input range), evaluated on the test set. The layer whose accuracy falls
        furthest below FP32 is the one that breaks the configuration; unlike a layer's SQNR, this
        measures its effect on the decisions. Memoized under :meth:`result_key`, like :meth:`run`;
        taken from the table when it holds this setting of this very model.
        """
        key = self.result_key(name, config)
        if key not in self._sensitivity:
            folded = self.cache(name).folded
            stored = self.stored_sensitivity(name).get(config_label(config))
            if stored is None:
                qmodel = quantize_model(self.model(name), cache=self.cache(name), **config)
                self._sensitivity[key] = {
                    layer: evaluate(one_layer_quantized(folded, qmodel, layer)) for layer, _ in weighted_layers(folded)
                }
            else:  # in the model's layer order (the table's keys are sorted)
                self._sensitivity[key] = {layer: stored[layer] for layer, _ in weighted_layers(folded)}
        return self._sensitivity[key]

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
        for calibrator in calibrators:
            start = time.perf_counter()
            for bits in act_bits:
                self.cache(name).act_ranges(calibrator, bits)
            costs[f"{name}: {calibrator} calibration ({', '.join(map(str, act_bits))} bits)"] = time.perf_counter() - start
        return costs


@functools.cache
def shared_session() -> PTQSession:
    """One PTQSession per process: a lesson and its exercise checks share models, caches and runs."""
    return PTQSession()


def one_layer_quantized(folded: nn.Module, qmodel: nn.Module, layer: str) -> nn.Module:
    """A copy of the float ``folded`` model whose ``layer`` is the quantized layer of ``qmodel``.

    ``qmodel`` must come from ``quantize_model`` on the model ``folded`` was folded from (same
    layer names); the quantized layer is shared, not copied (evaluation does not change it).
    """
    names = [n for n, _ in weighted_layers(folded)]
    if layer not in names:
        raise ValueError(f"layer must be one of the model's weighted layers {names}, got {layer!r}")
    if not layer:
        return qmodel
    single = copy.deepcopy(folded)
    parent, _, leaf = layer.rpartition(".")
    setattr(single.get_submodule(parent), leaf, qmodel.get_submodule(layer))
    return single


def accuracy_by_calibrator(
    model: nn.Module, cache: PTQCache, act_bits_list: Sequence[int], calibrators: Sequence[str] = tuple(CALIBRATORS),
    weight_bits: int = 8,
) -> dict[int, dict[str, float]]:
    """Test accuracy of ``model`` with static activations at each act_bits and calibrator.

    Weights: ``weight_bits`` per-channel symmetric; ``cache`` (built with calibration data)
    shares BN folding, calibration activations and calibrated ranges across all runs.
    """
    return {
        bits: {
            c: evaluate(quantize_model(model, weight_bits, bits, "per_channel", True, c, cache=cache))
            for c in calibrators
        }
        for bits in act_bits_list
    }
