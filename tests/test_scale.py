"""Large targets on one machine (chunked mapping, mlp targets, the scaling benchmark) and GPUs."""

import json
import math

import pytest
import torch

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz, qubits_for
from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.mapping import MappingModel, basis_bits
from qtrain_qiskit.stepper import Stepper
from qtrain_qiskit.targets import MNISTMLP, build_target, count_parameters, mlp_for_qubits

from .conftest import run_script_inprocess

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def twin_mappings(num_qubits, num_weights, chunk, features="scaled"):
    """An unchunked float64 mapping and a chunked copy with the same weights."""
    torch.manual_seed(0)
    plain = MappingModel(num_qubits, num_weights, hidden=[7, 5], features=features).double()
    chunked = MappingModel(num_qubits, num_weights, hidden=[7, 5], features=features, chunk=chunk).double()
    chunked.load_state_dict(plain.state_dict())
    return plain, chunked


@pytest.mark.parametrize(("chunk", "features"), [(256, "scaled"), (1024, "raw"), (4096, "scaled")])
def test_chunked_mapping_gives_the_same_weights_and_gradients(chunk, features):
    num_qubits, num_weights = 13, 6676  # 6676 is no multiple of any chunk: a short last chunk
    plain, chunked = twin_mappings(num_qubits, num_weights, chunk, features)
    probs = torch.rand(2**num_qubits, dtype=torch.float64)
    probs /= probs.sum()
    inputs = [probs.clone().requires_grad_(True) for _ in range(2)]
    outputs = [model(p) for model, p in zip((plain, chunked), inputs, strict=True)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-13, atol=1e-13)
    upstream = torch.randn(num_weights, dtype=torch.float64)
    for out in outputs:
        (out @ upstream).backward()
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad, rtol=1e-11, atol=1e-13)
    assert inputs[0].grad.abs().max() > 0
    for a, b in zip(plain.parameters(), chunked.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-11, atol=1e-12)


def test_chunks_are_respected_and_carry_the_bits_of_their_rows():
    num_qubits, num_weights, chunk = 12, 3000, 512
    _, chunked = twin_mappings(num_qubits, num_weights, chunk)
    seen = []
    chunked.mlp[0].register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    chunked(torch.rand(2**num_qubits, dtype=torch.float64, requires_grad=True)).sum().backward()
    forward = seen[: math.ceil(num_weights / chunk)]  # backward recomputes each chunk once more
    assert len(seen) == 2 * len(forward)
    assert [len(rows) for rows in forward] == [512] * 5 + [3000 - 5 * 512]
    bits = torch.cat([rows[:, :num_qubits] for rows in forward])
    assert torch.equal(bits, basis_bits(num_weights, num_qubits, signed=True).double())
    stored = sum(buffer.numel() for buffer in chunked.buffers())
    assert stored == chunk * 9  # a (512, 9) table of low bits, not the (3000, 12) matrix


def saved_floats_per_row(model, num_weights):
    """Bytes autograd keeps for backward during one mapping forward, per generated weight, in floats."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    probs = torch.rand(2**model.num_qubits, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(probs)
    out.sum().backward()
    return sum(sizes) / (4 * num_weights)


def test_chunking_bounds_what_backward_keeps():
    num_weights = 2**15 - 100
    plain = MappingModel(15, num_weights, hidden=[32])
    chunked = MappingModel(15, num_weights, hidden=[32], chunk=4096)
    assert saved_floats_per_row(plain, num_weights) <= 4  # compiled loops: no activations kept, chunked or not
    for model in (plain, chunked):
        model.fast_paths = False  # torch's modules
    assert saved_floats_per_row(plain, num_weights) > 64  # activations of every row: 2 x 32 and more
    assert saved_floats_per_row(chunked, num_weights) <= 4  # the feature and a few vectors of M


def test_mapping_chunk_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        MappingModel(12, 3000, chunk=1000)
    with pytest.raises(ConfigError, match="mapping_chunk must be a power of two"):
        validate(apply(Config(), {"mapping_chunk": 1000}, "test"))
    assert validate(apply(Config(), {"mapping_chunk": 0}, "test")).model.mapping_chunk == 0


# The widest 784-h-10 MLP (784h + h + 10h + 10 = 795h + 10 weights) with at most 2^N weights, worked
# out by hand: h = floor((2^N - 10) / 795), e.g. N = 20: floor(1,048,566 / 795) = 1318.
@pytest.mark.parametrize(
    ("num_qubits", "name", "weights"),
    [(10, "mlp_1", 805), (13, "mlp_10", 7960), (17, "mlp_164", 130_390), (20, "mlp_1318", 1_047_820),
     (24, "mlp_21103", 16_776_895)],
)  # fmt: skip
def test_mlp_targets_fill_their_register(num_qubits, name, weights):
    assert mlp_for_qubits(num_qubits) == name
    target = build_target(name)
    assert isinstance(target, MNISTMLP) and count_parameters(target) == weights
    assert qubits_for(weights) == num_qubits


@pytest.mark.parametrize("name", ["mlp_0", "mlp_x", "mlp_", "cnn"])
def test_unknown_targets_are_one_config_error(name):
    with pytest.raises(ConfigError, match=f"target: unknown target '{name}'"):
        validate(apply(Config(), {"target": name}, "test"))


def test_a_17_qubit_training_step_runs():
    config = apply(
        Config(),
        {"backend": "torch_statevector", "target": mlp_for_qubits(17), "blocks": 2, "mapping_chunk": 8192},
        "test",
    )
    torch.manual_seed(0)
    model = build_model(validate(config), torch.device("cpu"))
    assert model.mapping.num_qubits == 17 and model.num_target_weights > 2**16
    stepper = Stepper(model, 0.01, 10.0, torch.device("cpu"))
    before = [p.detach().clone() for p in stepper.params]
    loss_sum, _, norms = stepper.backward(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    stepper.update(norms)
    assert math.isfinite(loss_sum.item()) and all(norm > 0 for norm in norms.values())
    # The mapping's output bias shifts every weight of a tensor alike, which per-tensor centring
    # removes: its gradient is zero up to rounding (float64 centring), so Adam may leave it be.
    # Every other parameter must move.
    offset = model.mapping.mlp[-1].bias
    assert offset.grad.abs().max() <= 1e-6 * max(p.grad.abs().max() for p in stepper.params if p is not offset)
    moved = [
        not torch.equal(a, b) for a, b, p in zip(before, stepper.params, stepper.params, strict=True) if p is not offset
    ]
    assert all(moved) and len(moved) == len(stepper.params) - 1


def test_scaling_benchmark_reports_time_and_peak_memory_per_qubit_count():
    status, out, err = run_script_inprocess(
        "benchmark.py", "--backend", "torch_statevector", "--blocks", "2", "--scaling", "10,11", "--steps", "2"
    )
    assert status == 0, err
    points = json.loads(out)
    assert [p["num_qubits"] for p in points] == [10, 11]
    # Timings and memory are the benchmark's figures, not checks (their order holds by construction).
    assert [p["target"] for p in points] == ["mlp_1", "mlp_2"]
    assert [p["target_params"] for p in points] == [795 + 10, 2 * 795 + 10]


@pytest.mark.parametrize("text", ["9,10", "x", "12-", "10-12-14"])
def test_scaling_benchmark_refuses_bad_qubit_lists(text):
    status, _, err = run_script_inprocess("benchmark.py", "--scaling", text)
    assert status == 2 and err.startswith("error: --scaling") and err.count("\n") == 1


@pytest.mark.skipif("GPU" in backends.aer.AerSimulator().available_devices(), reason="Aer has a GPU here")
def test_aer_gpu_without_gpu_support_is_one_error_line():
    with pytest.raises(backends.BackendError, match="aer_device GPU: this qiskit-aer build simulates on CPU only"):
        backends.get_backend("aer_statevector", aer_device="GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_a_device_is_one_config_error():
    with pytest.raises(ConfigError, match="device: cuda asked for, but torch sees no CUDA device"):
        validate(apply(Config(), {"device": "cuda"}, "test"))


@needs_cuda
def test_training_step_on_cuda_matches_cpu():
    config = validate(apply(Config(), {"backend": "torch_statevector", "blocks": 2, "precision": "float64"}, "test"))
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    losses = []
    for device in (torch.device("cpu"), torch.device("cuda")):
        torch.manual_seed(0)
        model = build_model(config, device)
        stepper = Stepper(model, 0.01, 10.0, device)
        loss_sum, _, norms = stepper.backward(x.to(device), y.to(device))
        assert all(p.device.type == device.type for p in model.parameters())
        losses.append((loss_sum.item(), {k: v.item() for k, v in norms.items()}))
    assert losses[1][0] == pytest.approx(losses[0][0], rel=1e-4)
    for part in ("quantum", "mapping"):
        assert losses[1][1][part] == pytest.approx(losses[0][1][part], rel=1e-3)


@needs_cuda
@pytest.mark.skipif("GPU" not in backends.aer.AerSimulator().available_devices(), reason="no Aer GPU build")
def test_aer_gpu_matches_cpu():
    ansatz = build_ansatz(10, 2)
    values = torch.rand(1, ansatz.num_parameters).numpy()
    gpu = backends.get_backend("aer_statevector", aer_device="GPU").probabilities(ansatz, values)
    cpu = backends.get_backend("aer_statevector").probabilities(ansatz, values)
    torch.testing.assert_close(torch.as_tensor(gpu), torch.as_tensor(cpu))
