"""QAT: LSQ parity with torch's learnable fake-quantize ops, the modules, prepare_qat/convert, fit.

References: ``torch._fake_quantize_learnable_per_tensor_affine`` and
``torch._fake_quantize_learnable_per_channel_affine`` (forward bit for bit; gradients for x,
scale and zero-point allclose), ``torch.fake_quantize_per_tensor_affine`` (the STE mask),
and hand-computed values.
"""

from __future__ import annotations

import math
from pathlib import Path

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import assume, given, settings
from strategies import float_tensors, pow2_scales, same_bits
from torch import nn

from qlab.affine import qrange
from qlab.qat import FakeQuant, convert, learnable_fake_quantize, lsq_grad_factor, lsq_init_scale, penalty, prepare_qat
from qlab.train import TrainConfig, fit

MANY = settings(max_examples=400)


def _both(op_torch, op_qlab, x, scale, zp, grad_seed):
    """Forward outputs and (dx, dscale, dzp) of both implementations for the same upstream gradient."""
    out = []
    for op in (op_torch, op_qlab):
        xs, s, z = (t.clone().requires_grad_() for t in (x, scale, zp))
        y = op(xs, s, z)
        y.backward(torch.randn(x.shape, generator=torch.Generator().manual_seed(grad_seed)))
        out.append((y.detach(), xs.grad, s.grad, z.grad))
    return out


def _close_sum(a: torch.Tensor, b: torch.Tensor, n: int) -> bool:
    """Sums of n float32 terms agree to float32 accumulation tolerance."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1, n) * max(1.0, float(a.abs().max())))


@st.composite
def _qparams(draw, signed: bool):
    bits = draw(st.integers(2, 8))
    qmin, qmax = qrange(bits, signed)
    scale = draw(st.one_of(pow2_scales(), st.floats(0.0009765625, 10.0, width=32)))
    # zp >= 0: torch's per-tensor backward uses int(zp + 0.5), which truncates a negative zp
    # towards zero (zp = -1 -> 0); the documented deviation below
    zp = draw(st.integers(max(qmin, 0), qmax))
    return bits, qmin, qmax, scale, zp


def _torch_backward_rounds_differently(x: torch.Tensor, scale, zp, axis: int | None = None) -> bool:
    """True if some element's code in torch's backward differs from its forward code.

    torch's forward computes round(x * (1/s)) + zp, its backward (per tensor and per channel)
    round(zp + x * (1/s)) (both round half to even, float32; zp rounded first). The two differ
    exactly at ties x/s = k + 1/2 with an odd zp (e.g. x/s = -12.5, zp = 13: forward -12 + 13 = 1,
    backward round(0.5) = 0), where qlab's backward follows the forward pass; see the
    hand-computed test below. ``axis``: the channel axis of per-channel ``scale``/``zp``.
    """
    s = torch.as_tensor(scale, dtype=torch.float32)
    z = torch.round(torch.as_tensor(zp, dtype=torch.float32))
    if axis is not None:
        shape = [1] * x.dim()
        shape[axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    v = x * (torch.tensor(1.0) / s)
    return bool((torch.round(v) + z != torch.round(v + z)).any())


@MANY
@given(x=float_tensors(max_dims=3), signed=st.booleans(), data=st.data(), g=st.sampled_from([1.0, 0.25, 0.013]))
def test_lsq_per_tensor_matches_torch(x, signed, data, g):
    """Forward bit for bit, gradients allclose, on every generated case except torch's odd-zp
    ties (``_torch_backward_rounds_differently``: torch's backward and forward disagree there;
    ties with an even zp, where they agree, stay in)."""
    _, qmin, qmax, scale, zp = data.draw(_qparams(signed))
    assume(not _torch_backward_rounds_differently(x, scale, zp))
    s, z = torch.tensor([scale]), torch.tensor([float(zp)])
    (y1, dx1, ds1, dz1), (y2, dx2, ds2, dz2) = _both(
        lambda a, b, c: torch._fake_quantize_learnable_per_tensor_affine(a, b, c, qmin, qmax, g),
        lambda a, b, c: learnable_fake_quantize(a, b, c, qmin, qmax, None, g),
        x, s, z, data.draw(st.integers(0, 1000)),
    )
    assert same_bits(y1, y2)
    assert torch.equal(dx1, dx2)
    assert _close_sum(ds1, ds2, x.numel()) and _close_sum(dz1, dz2, x.numel())


@MANY
@given(x=float_tensors(min_dims=2, max_dims=4), signed=st.booleans(), data=st.data())
def test_lsq_per_channel_matches_torch(x, signed, data):
    """As the per-tensor test, per channel, with fractional zero-points (torch's odd-zp ties left out)."""
    axis = data.draw(st.integers(0, x.dim() - 1))
    bits = data.draw(st.integers(2, 8))
    qmin, qmax = qrange(bits, signed)
    c = x.shape[axis]
    scale = torch.tensor(data.draw(st.lists(st.floats(0.0009765625, 10.0, width=32), min_size=c, max_size=c)))
    # fractional zero-points, .5 ties included: both round half to even in forward and backward
    zp = torch.tensor(data.draw(st.lists(st.integers(2 * qmin, 2 * qmax), min_size=c, max_size=c)), dtype=torch.float32) / 2
    g = data.draw(st.sampled_from([1.0, 0.1]))
    assume(not _torch_backward_rounds_differently(x, scale, zp, axis))
    (y1, dx1, ds1, dz1), (y2, dx2, ds2, dz2) = _both(
        lambda a, b, z: torch._fake_quantize_learnable_per_channel_affine(a, b, z, axis, qmin, qmax, g),
        lambda a, b, z: learnable_fake_quantize(a, b, z, qmin, qmax, axis, g),
        x, scale, zp, data.draw(st.integers(0, 1000)),
    )
    assert same_bits(y1, y2)
    assert torch.equal(dx1, dx2)
    n = x.numel() // c
    assert _close_sum(ds1, ds2, n) and _close_sum(dz1, dz2, n)


def test_lsq_ties_and_out_of_range_by_hand():
    """x/s = -2.5 (tie -> -2), 0.5 (tie -> 0), 1.5 (tie -> 2), 9 (above 7), -9 (below -8); 4-bit signed."""
    x = torch.tensor([-2.5, 0.5, 1.5, 9.0, -9.0], requires_grad=True)
    s = torch.tensor([1.0], requires_grad=True)
    z = torch.tensor([0.0], requires_grad=True)
    y = learnable_fake_quantize(x, s, z, -8, 7, None, 1.0)
    assert y.tolist() == [-2.0, 0.0, 2.0, 7.0, -8.0]
    y.backward(torch.ones(5))
    assert x.grad.tolist() == [1, 1, 1, 0, 0]
    # sawtooth round(v) - v inside: 0.5 - 0.5 + 0.5; outside: qmax - zp = 7 and qmin - zp = -8
    assert s.grad.item() == pytest.approx(0.5 - 0.5 + 0.5 + 7 - 8)
    assert z.grad.item() == pytest.approx(-2.0)  # -s for each of the two clipped values


def test_per_tensor_backward_zero_point_rounding_deviation():
    """Documented deviation: torch's per-tensor backward rounds zp = 2.5 up to 3, its forward to 2."""
    x = torch.tensor([-2.9])
    s, z = torch.tensor([1.0]), torch.tensor([2.5])
    xs = x.clone().requires_grad_()
    torch._fake_quantize_learnable_per_tensor_affine(xs, s, z, 0, 15, 1.0).backward(torch.ones(1))
    xq = x.clone().requires_grad_()
    learnable_fake_quantize(xq, s.clone().requires_grad_(), z.clone().requires_grad_(), 0, 15, None, 1.0).backward(torch.ones(1))
    assert xs.grad.item() == 1.0  # torch: round(-2.9) + 3 = 0, inside
    assert xq.grad.item() == 0.0  # qlab (same zp as the forward pass): -3 + 2 = -1, clipped


def test_per_tensor_backward_tie_with_odd_zero_point_deviation():
    """Documented deviation: x/s = -12.5, zp = 13 (4-bit unsigned). Both forwards give code
    round(-12.5) + 13 = 1, i.e. -48; torch's backward re-rounds zp + x/s = 0.5 to 0 (x_fq = -52),
    so its dL/ds = (-52 + 50)/4 = -0.5, while qlab's uses the forward's code: (-48 + 50)/4 = +0.5."""
    x, s, z = torch.tensor([-50.0]), torch.tensor([4.0]), torch.tensor([13.0])
    (y1, dx1, ds1, _), (y2, dx2, ds2, _) = _both(
        lambda a, b, c: torch._fake_quantize_learnable_per_tensor_affine(a, b, c, 0, 15, 1.0),
        lambda a, b, c: learnable_fake_quantize(a, b, c, 0, 15, None, 1.0),
        x, s, z, 0,
    )
    upstream = torch.randn(1, generator=torch.Generator().manual_seed(0)).item()
    assert y1.item() == y2.item() == -48.0 and dx1.item() == dx2.item() == upstream
    assert ds1.item() == pytest.approx(-0.5 * upstream) and ds2.item() == pytest.approx(0.5 * upstream)
    assert _torch_backward_rounds_differently(x, 4.0, 13) and not _torch_backward_rounds_differently(x, 4.0, 12)


def test_lsq_grad_factor_and_init_by_hand():
    assert lsq_grad_factor(100, 7) == pytest.approx(1 / math.sqrt(700))
    w = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    assert torch.allclose(lsq_init_scale(w, 7, 0), torch.tensor([4.0, 1.0]) / math.sqrt(7))
    assert lsq_init_scale(w, 7, None).item() == pytest.approx(2 * 1.25 / math.sqrt(7))


def test_observer_fake_quant_is_ste_with_clip_mask():
    fq = FakeQuant(4, "activation", "observer", init_range=(torch.tensor(0.0), torch.tensor(3.0)))
    fq.eval()
    x = torch.tensor([-1.0, 0.4, 1.0, 2.9, 5.0], requires_grad=True)
    y = fq(x)
    ref_x = x.detach().clone().requires_grad_()
    ref = torch.fake_quantize_per_tensor_affine(ref_x, 0.2, 0, 0, 15)
    assert same_bits(y, ref)
    y.sum().backward()
    ref.sum().backward()
    assert torch.equal(x.grad, ref_x.grad) and x.grad.tolist() == [0, 1, 1, 1, 0]


def test_observer_moving_average_updates_in_train_mode_only():
    fq = FakeQuant(8, "activation", "observer", init_range=(torch.tensor(0.0), torch.tensor(1.0)))
    fq.train()
    fq(torch.tensor([0.0, 2.0]))
    assert fq.max_val.item() == pytest.approx(1.0 + 0.01 * (2.0 - 1.0))
    fq.eval()
    fq(torch.tensor([0.0, 100.0]))
    assert fq.max_val.item() == pytest.approx(1.01)


def _tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 13 * 13, 10)).eval()


@pytest.mark.parametrize("method", ["ste", "lsq", "penalty"])
def test_convert_computes_what_the_qat_model_computes(method):
    calib = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    qat = prepare_qat(_tiny_model(), 4, 4, method, calib_data=calib, penalty_fake_quant=True)
    qat.eval()
    q = convert(qat, calib_data=calib)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # same grids; the converted layers sum integer codes exactly, QAT's in float
        torch.testing.assert_close(q(x), qat(x), rtol=1e-5, atol=1e-6)
    assert [r.name for r in q.report] == ["0", "4"] and all(r.weight_bits == 4 for r in q.report)


def test_lsq_plus_learns_the_zero_point():
    calib = torch.randn(32, 1, 28, 28)
    qat = prepare_qat(_tiny_model(), 4, 4, "lsq", calib_data=calib, learn_zero_point=True)
    names = {n for n, p in qat.named_parameters() if p.requires_grad}
    assert "0.act_fq.zero_point" in names and "0.weight_fq.zero_point" not in names
    qat(calib).sum().backward()
    assert qat[0].act_fq.zero_point.grad is not None and qat[0].act_fq.scale.grad is not None


def test_calibrator_init_by_hand():
    """calibrator="minmax": weight step = amax / Qp per channel, activation range = calibrated range."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -3.5], [0.5, 0.25]]))
    calib = torch.tensor([[0.0, 2.0], [1.0, 4.0]])
    qat = prepare_qat(model, 4, 4, "lsq", calib_data=calib, calibrator="minmax")
    assert torch.allclose(qat[0].weight_fq.scale, torch.tensor([3.5, 0.5]) / 7)  # 4-bit signed: Qp = 7
    assert qat[0].act_fq.min_val.item() == 0.0 and qat[0].act_fq.max_val.item() == 4.0
    assert torch.allclose(qat[0].act_fq.scale, torch.tensor([4.0 / 15]))
    paper = prepare_qat(model, 4, 4, "lsq", calib_data=calib)
    assert torch.allclose(paper[0].weight_fq.scale, torch.tensor([2.25, 0.375]) * 2 / math.sqrt(7))
    with pytest.raises(ValueError, match="calibrator"):
        prepare_qat(model, 4, 4, "lsq", calib_data=calib, calibrator="median")


def test_validation_split_is_disjoint_and_keeps_the_calibration_images():
    from qlab.data import calibration_subset, load_fashion_mnist
    from qlab.qat_train import validation_split

    (train_x, train_y), (val_x, val_y) = validation_split(100)
    images, _ = load_fashion_mnist("train")
    assert len(train_x) == len(train_y) == len(images) - 100 and len(val_x) == len(val_y) == 100
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    assert torch.equal(val_x, images[order[-100:]])
    assert torch.equal(calibration_subset(), images[order[:512]])
    assert torch.equal(train_x, images[order[:-100].sort().values])
    with pytest.raises(ValueError, match="n must be"):
        validation_split(len(images))


def test_penalty_by_hand():
    model = nn.Sequential(nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.3]]))
    qat = prepare_qat(model, 2, None, "penalty", lam=0.5, calib_data=torch.zeros(4, 2))
    # 2-bit signed symmetric, amax 1: scale 1/1 = 1, grid {-2,-1,0,1}: Q(1) = 1, Q(0.3) = 0
    assert penalty(qat).item() == pytest.approx(0.5 * 0.3**2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "adaround"}, "method"),
        ({"weight_bits": 1}, "weight_bits"),
        ({"act_bits": 17}, "act_bits"),
        ({"granularity": "per_group"}, "granularity"),
        ({"method": "penalty", "lam": -1.0}, "lam"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_qat(_tiny_model(), **{"weight_bits": 4, "act_bits": 4, **kwargs})


def test_model_without_quantizable_layer():
    with pytest.raises(ValueError, match="no Conv2d/Linear"):
        prepare_qat(nn.Sequential(nn.ReLU()), 4, 4)
    with pytest.raises(ValueError, match="QATLayer"):
        penalty(nn.Sequential(nn.ReLU()))


def test_fit_is_deterministic_and_stops_at_max_steps():
    seen = []
    results = []
    for _ in range(2):
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        with torch.no_grad():
            model[1].weight.zero_()
            model[1].bias.zero_()
        stats = fit(model, TrainConfig(epochs=1, lr=1e-2), max_steps=3, num_threads=1,
                    callback=lambda step, loss, acc: seen.append(step))
        results.append(model[1].weight.detach().clone())
        assert stats["steps"] == 3 and not model.training
    assert seen == [1, 2, 3, 1, 2, 3]
    assert torch.equal(results[0], results[1])


def test_fit_progress_bar_counts_the_epochs_it_runs(capsys):
    """A 3-step run of a 3-epoch config runs one epoch: the bar says "epoch 1/1", not "1/3";
    progress=False shows no bar at all."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    fit(model, TrainConfig(epochs=3, lr=1e-2), max_steps=3, num_threads=1, desc="tiny")
    err = capsys.readouterr().err
    assert "tiny epoch 1/1" in err and "1/3" not in err
    fit(model, TrainConfig(epochs=3, lr=1e-2), max_steps=3, num_threads=1, desc="tiny", progress=False)
    assert capsys.readouterr().err == ""


def test_shipped_qat_checkpoints_match_their_checksums():
    from qlab.data import sha256_file
    from qlab.qat_train import QAT_CHECKPOINT_DIR, QAT_CHECKPOINT_SHA256, checkpoint_path

    listed = dict(line.split()[::-1] for line in (QAT_CHECKPOINT_DIR / "SHA256SUMS").read_text().splitlines())
    assert QAT_CHECKPOINT_SHA256, "no QAT checkpoint recorded"
    for name, digest in QAT_CHECKPOINT_SHA256.items():
        path = checkpoint_path(name)
        assert listed[path.name] == digest == sha256_file(path)


def test_load_qat_rebuilds_the_stored_accuracy():
    from qlab.evaluation import evaluate
    from qlab.qat_train import checkpoint_path, load_qat

    model = load_qat("mlp")
    meta = torch.load(checkpoint_path("mlp"), weights_only=True)["meta"]
    assert abs(evaluate(convert(model)) - meta["test_accuracy"]) <= 2e-4  # two images: kernel-dependent ties


def test_load_qat_refuses_a_damaged_file(tmp_path):
    from qlab.data import DataIntegrityError
    from qlab.qat_train import checkpoint_path, load_qat

    data = bytearray(checkpoint_path("mlp").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "mlp_w4a4_lsq.pt").write_bytes(bytes(data))
    (tmp_path / "SHA256SUMS").write_text((checkpoint_path("mlp").parent / "SHA256SUMS").read_text())
    with pytest.raises(DataIntegrityError):
        load_qat("mlp", root=tmp_path)


def test_oscillations_and_boundary_by_hand():
    from qlab.qat import near_boundary_fraction, oscillations

    codes = torch.tensor([[0, 0, 0, 1], [1, 0, 2, 1], [0, 0, 0, 1], [1, 0, 1, 1]])  # steps x weights
    # weight 0 flips 0-1-0-1 (oscillates); 1 never moves; 2 jumps two codes; 3 constant
    assert oscillations(codes).tolist() == [True, False, False, False]
    assert near_boundary_fraction(torch.tensor([0.5, -1.5, 0.2, 2.96])) == 0.5


def test_live_fine_tune_runs_and_reports():
    from qlab.dashboards.qat_finetune import LiveFineTune

    live = LiveFineTune(model="mlp", bits=2, steps=50)
    result = live.run()
    assert result.steps == 50 and result.tracked_weights == 256 * 128
    assert result.qat_accuracy > result.ptq_accuracy + 0.2
    assert "PTQ (min/max)" in live.readout() and len(live.loss_line.get_xdata()) == 50


def test_lsq_scale_pushed_below_zero_is_clamped():
    """Regression: an optimizer step that makes a learned scale negative used to raise in forward."""
    fq = FakeQuant(4, "weight", "lsq", per_channel=True)
    w = torch.randn(3, 5)
    fq.init_weight_scale(w)
    with torch.no_grad():
        fq.scale[1] = -0.01
    y = fq(w)
    assert torch.isfinite(y).all() and float(fq.scale.detach()[1]) == torch.finfo(torch.float32).eps


def test_choose_lr_keeps_the_default_unless_another_rate_leads_by_one_standard_error():
    from qlab.qat_train import choose_lr

    # one standard error at p = 0.90 on 5,000 images is 0.42 points
    assert choose_lr({1e-4: 0.8918, 3e-4: 0.8986, 1e-3: 0.9006}) == 1e-3
    assert choose_lr({1e-4: 0.9530, 3e-4: 0.9542, 1e-3: 0.9498}) == 1e-4  # a 0.12-point lead is noise
    assert choose_lr({1e-4: 0.90, 1e-3: 0.89}) == 1e-4
    with pytest.raises(ValueError, match="default lr"):
        choose_lr({3e-4: 0.9, 1e-3: 0.91})


def test_recipe_uses_the_per_model_learning_rate_and_the_validation_table_agrees():
    from qlab.qat_train import QAT_LR, lr_text, recipe

    assert {name: recipe(name).lr for name in QAT_LR} == QAT_LR
    assert [lr_text(v) for v in (1e-4, 3e-4, 1e-3)] == ["1e-4", "3e-4", "1e-3"]
    table = (Path(__file__).parents[1] / "benchmarks" / "results" / "qat_accuracy_validation.md").read_text()
    assert "Chosen: " + ", ".join(f"{name} {lr_text(lr)}" for name, lr in QAT_LR.items()) in table
