"""`compiled_mapping`'s loops against torch's own modules and autograd, and against finite differences."""

import pytest
import torch
from torch import nn
from torch.func import jvp

from qtrain_qiskit.build import build_model
from qtrain_qiskit.compiled_mapping import CentreAndScale, CompiledMLP
from qtrain_qiskit.config import Config, validate
from qtrain_qiskit.mapping import MappingModel, probability_feature


def _torch_rows(column, first, last, start, rows, signed, activation, feature, scale):
    """The same rows as nn modules on the concatenated inputs: the reference."""
    num_bits = first.in_features - 1
    bits = ((torch.arange(start, start + rows)[:, None] >> torch.arange(num_bits)) & 1).to(column.dtype)
    bits = 2 * bits - 1 if signed else bits
    used = column[:rows]
    if feature != "raw":
        used = probability_feature(used, 1, feature, alpha=1.0, beta=1.0, gamma=scale)  # 2^(1-1) gamma = scale
    act = nn.ReLU() if activation == "relu" else nn.Tanh()
    return last(act(first(torch.cat([bits, used[:, None]], dim=1)))).flatten()


CASES = [  # rows, bits, hidden, k, start, signed, activation, feature
    (6676, 13, 20, 1, 0, True, "relu", "scaled"),  # the reference mapping
    (105, 7, 16, 64, 0, True, "relu", "standard"),  # mnist_hardware's
    (1000, 13, 5, 3, 4096 + 2048, False, "tanh", "raw"),  # a chunk that starts at 6144 (a multiple of 1024)
    (3000, 14, 6, 2, 8192, False, "relu", "standard"),  # several tiles, the last one short, bits above them
    (7, 3, 4, 2, 8, True, "tanh", "scaled"),
    (2, 1, 3, 1, 0, True, "relu", "standard"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rows,num_bits,hidden,k,start,signed,activation,feature", CASES)
def test_rows_and_gradients_match_torch_modules(dtype, rows, num_bits, hidden, k, start, signed, activation, feature):
    torch.manual_seed(rows)
    first, last = nn.Linear(num_bits + 1, hidden).to(dtype), nn.Linear(hidden, k).to(dtype)
    column = torch.rand(rows + 3, dtype=dtype) / rows  # the entries beyond ``rows`` must not be read
    column.requires_grad_(True)
    count = rows * k - (k > 1)  # the last row's surplus outputs dropped
    scale = 0.7 * rows
    low = -1.0 if signed else 0.0
    out = CompiledMLP.apply(column, first.weight, first.bias, last.weight, last.bias, start, rows, count, low, 1.0,
                            activation, feature, scale)  # fmt: skip
    expected = _torch_rows(column, first, last, start, rows, signed, activation, feature, scale)[:count]
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 2e-6}
    torch.testing.assert_close(out, expected, **tol)
    cotangent = torch.randn(count, dtype=dtype)
    inputs = [column, first.weight, first.bias, last.weight, last.bias]
    got = torch.autograd.grad((out * cotangent).sum(), inputs)
    want = torch.autograd.grad((expected * cotangent).sum(), inputs)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, w.abs().max().item()))
    assert got[0][rows:].abs().max() == 0


@pytest.mark.parametrize("feature", ["raw", "scaled", "standard"])
def test_gradients_match_finite_differences(feature):
    torch.manual_seed(1)
    first, last = nn.Linear(6, 4).double(), nn.Linear(4, 3).double()
    column = (torch.rand(20, dtype=torch.float64) / 20).requires_grad_(True)
    inputs = (column, first.weight, first.bias, last.weight, last.bias)

    def f(*args):
        return CompiledMLP.apply(*args, 32, 20, 58, -1.0, 1.0, "tanh", feature, 9.0)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


def _graph(node) -> set:
    """The names of every autograd node behind ``node``."""
    nodes, stack = set(), [node]
    while stack:
        node = stack.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            stack += [parent for parent, _ in node.next_functions]
    return {type(node).__name__ for node in nodes}


def test_mapping_model_takes_the_loops_where_they_apply_and_agrees_with_its_modules():
    for kwargs in [
        {"num_qubits": 13, "num_weights": 6676},
        {"num_qubits": 7, "num_weights": 6676, "weights_per_state": 64, "hidden": (16,), "features": "standard"},
        {"num_qubits": 10, "num_weights": 1000, "chunk": 256, "features": "standard"},  # chunks: feature outside
        {"num_qubits": 6, "num_weights": 100, "weights_per_state": 3, "hidden": (5,), "activation": "tanh"},
    ]:
        mapping = MappingModel(**kwargs).double()
        assert mapping.loops_cover
        probs = torch.rand(2 ** kwargs["num_qubits"], dtype=torch.float64)
        probs = (probs / probs.sum()).requires_grad_(True)
        cotangent = torch.randn(kwargs["num_weights"], dtype=torch.float64)
        results = []
        for compiled in (True, False):
            mapping.fast_paths = compiled
            out = mapping(probs)
            results.append((out, torch.autograd.grad((out * cotangent).sum(), [probs, *mapping.parameters()])))
            assert ("CompiledMLPBackward" in _graph(out.grad_fn)) == compiled
        (out, grads), (want, want_grads) = results
        torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)
        for g, w in zip(grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12 * max(1.0, w.abs().max().item()))


def test_mappings_the_loops_do_not_cover_keep_torch():
    for kwargs in [{"hidden": (8, 8)}, {"activation": "gelu"}, {"head_bits": 2}, {"probability_input": False}]:
        assert not MappingModel(6, 50, **kwargs).loops_cover


def _model(**model):
    config = validate(Config())
    config.circuit.blocks = 2
    for key, value in model.items():
        setattr(config.model, key, value)
    return build_model(config, torch.device("cpu")).double()


@pytest.mark.parametrize("weight_scale", ["target_init", "none"])
def test_centre_and_scale_matches_the_torch_operations(weight_scale):
    model = _model(weight_scale=weight_scale)
    model.generate_weights()  # the first forward sets the gains (torch operations)
    probs = model.quantum().detach().requires_grad_(True)
    cotangent = torch.randn(model.num_target_weights, dtype=torch.float64)
    results = []
    for compiled in (True, False):
        model.fast_paths = compiled
        theta = model.weights_from_probabilities(probs)
        assert (type(theta.grad_fn).__name__ == "CentreAndScaleBackward") == compiled
        grads = torch.autograd.grad((theta * cotangent).sum(), [probs, *model.classical_parameters()])
        results.append((theta, grads))
    (theta, grads), (want, want_grads) = results
    torch.testing.assert_close(theta, want, rtol=1e-10, atol=1e-12)
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10 * max(1.0, w.abs().max().item()))


def test_centre_and_scale_is_linear_and_its_gradient_is_its_transpose():
    bounds = torch.tensor([0, 3, 4, 9]).numpy()
    gains = torch.tensor([2.0, 0.5, -1.5], dtype=torch.float64)
    x = torch.randn(9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: CentreAndScale.apply(t, bounds, gains), (x,))
    y = CentreAndScale.apply(x, bounds, gains)
    for lo, hi, gain in zip(bounds[:-1], bounds[1:], gains, strict=True):
        torch.testing.assert_close(y[lo:hi], gain * (x[lo:hi] - x[lo:hi].mean()))


def test_learned_scales_and_global_centring_keep_torch():
    for model in (_model(weight_scale="learned"), _model(center="global")):
        model.generate_weights()
        assert model._fixed_gains(model.mapping(model.quantum())) is None


def test_forward_mode_runs_with_the_fast_paths_switched_off():
    """What `subspace` does: forward-mode AD through the generator, which the hand-written reverse passes
    cannot run; the directional derivative it gives must match the fast paths' reverse mode."""
    model = _model()
    model.generate_weights()
    model.fast_paths = model.mapping.fast_paths = False
    probs = model.quantum().detach()
    direction = torch.randn_like(probs)
    _, tangent = jvp(model.weights_from_probabilities, (probs,), (direction,))
    model.fast_paths = model.mapping.fast_paths = True
    cotangent = torch.randn(model.num_target_weights, dtype=torch.float64)
    probs.requires_grad_(True)
    (vjp,) = torch.autograd.grad((model.weights_from_probabilities(probs) * cotangent).sum(), probs)
    torch.testing.assert_close(vjp @ direction, cotangent @ tangent, rtol=1e-8, atol=1e-10)
