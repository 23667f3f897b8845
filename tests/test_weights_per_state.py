"""k weights per basis state (``weights_per_state``): mapping, qubit count, validation, and a run end to end."""

import json

import pytest
import torch

from qtrain_qiskit.ansatz import build_ansatz, qubits_for, states_for
from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.mapping import MappingModel, basis_bits
from qtrain_qiskit.rundir import EXPORT_FILE, METRICS_FILE, SUMMARY_FILE

from .conftest import run_probabilities, run_script_inprocess, sampling_tvd_quantiles


@pytest.mark.parametrize(
    ("weights", "k", "states", "qubits"), [(6676, 1, 6676, 13), (6676, 64, 105, 7), (6676, 6676, 1, 1)]
)
def test_qubits_follow_ceil_log2_ceil_m_over_k(weights, k, states, qubits):
    assert states_for(weights, k) == states
    assert qubits_for(weights, k) == qubits
    assert build_ansatz(qubits, 1, num_weights=weights, weights_per_state=k).num_qubits == qubits
    if qubits > 1:
        with pytest.raises(ValueError, match=f"use at least {qubits} qubits"):
            build_ansatz(qubits - 1, 1, num_weights=weights, weights_per_state=k)


def test_k_outputs_per_row_are_weights_ik_to_ik_plus_k():
    # Independent reference: run the MLP row by row and lay its k outputs end to end, cut at M.
    torch.manual_seed(0)
    num_weights, k = 23, 4  # 6 states, the last one uses 3 of its 4 outputs
    mapping = MappingModel(3, num_weights, weights_per_state=k, hidden=[5], features="raw")
    probs = torch.rand(8)
    expected = torch.cat(
        [mapping.mlp(torch.cat([basis_bits(8, 3, signed=False)[i], probs[i : i + 1]])) for i in range(6)]
    )
    torch.testing.assert_close(mapping(probs), expected[:num_weights])
    changed = probs.clone()
    changed[6:] = 0.9  # outcomes beyond ceil(M / k) never matter
    torch.testing.assert_close(mapping(changed), mapping(probs))


def test_parameter_count_of_the_prototype_mapping():
    # [8, 16, 64]: (8 * 16 + 16) + (16 * 64 + 64) = 1,232; with 7 x 8 angles 1,288 (the prototype)
    mapping = MappingModel(7, 6676, weights_per_state=64, hidden=[16])
    assert sum(p.numel() for p in mapping.parameters()) == 1232


def test_k_equal_one_keeps_the_seeds_state_dict_and_output():
    torch.manual_seed(1)
    plain = MappingModel(4, 11, hidden=[5])
    torch.manual_seed(1)
    explicit = MappingModel(4, 11, weights_per_state=1, hidden=[5])
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in explicit.state_dict().items()}
    probs = torch.rand(16)
    torch.testing.assert_close(plain(probs), explicit(probs))
    assert plain(probs).shape == (11,)


@pytest.mark.parametrize("chunk", [16, 64])
def test_chunked_mapping_with_k_matches_unchunked(chunk):
    torch.manual_seed(0)
    plain = MappingModel(9, 6676, weights_per_state=16, hidden=[7]).double()  # 418 states
    chunked = MappingModel(9, 6676, weights_per_state=16, hidden=[7], chunk=chunk).double()
    chunked.load_state_dict(plain.state_dict())
    probs = torch.rand(512, dtype=torch.float64)
    probs /= probs.sum()
    inputs = [probs.clone().requires_grad_(True) for _ in range(2)]
    outputs = [model(p) for model, p in zip((plain, chunked), inputs, strict=True)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-12, atol=1e-12)
    for out in outputs:
        (out * torch.linspace(-1, 1, len(out), dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"weights_per_state": 0}, "weights_per_state: 0 is not between 1 and the 6676 weights of mnist_cnn"),
        ({"weights_per_state": 6677}, "weights_per_state: 6677 is not between 1 and the 6676 weights"),
        ({"weights_per_state": 64, "qubits": 6}, "need at least 7"),
    ],
)
def test_bad_k_is_one_clear_line(values, message):
    with pytest.raises(ConfigError, match=message):
        validate(apply(Config(), values, "test"))


def test_bad_k_on_the_command_line_exits_2_and_writes_nothing(tmp_path):
    status, _, err = run_script_inprocess("train.py", "--weights-per-state", "0", "--run-dir", str(tmp_path / "r"))
    assert status == 2 and err.count("\n") == 1 and "weights_per_state" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("backend", ["torch_statevector", "aer_statevector"])
def test_build_model_uses_7_qubits_at_k_64(backend):
    config = validate(apply(Config(), {"weights_per_state": 64, "hidden": [16], "backend": backend}, "test"))
    model = build_model(config, torch.device("cpu"))
    assert model.mapping.num_qubits == 7
    assert model.parameter_counts()["trainable_params"] == 1232 + 7 * 8
    theta = model.generate_weights()
    assert theta.shape == (6676,) and torch.isfinite(theta).all()


QUICK_K = ["--backend", "torch_statevector", "--weights-per-state", "64", "--hidden", "16", "--blocks", "2"]
QUICK_K += ["--train-subset", "320", "--batch-size", "32", "--lr", "0.01", "--eval-batch-size", "2000"]


@pytest.mark.e2e
def test_run_with_k_trains_exports_evaluates_and_resumes(mnist_root, tmp_path):
    data = ["--data-dir", str(mnist_root)]
    straight, split = tmp_path / "straight", tmp_path / "split"
    status, _, err = run_script_inprocess("train.py", *QUICK_K, *data, "--epochs", "2", "--run-dir", str(straight))
    assert status == 0, err
    summary = json.loads((straight / SUMMARY_FILE).read_text())
    assert summary["num_qubits"] == 7 and summary["quantum_params"] == 7 * 2
    status, _, err = run_script_inprocess("train.py", *QUICK_K, *data, "--epochs", "1", "--run-dir", str(split))
    assert status == 0, err
    status, _, err = run_script_inprocess("train.py", "--resume", str(split), "--epochs", "2")
    assert status == 0, err
    lines = [(straight / METRICS_FILE).read_text().splitlines(), (split / METRICS_FILE).read_text().splitlines()]
    assert [json.loads(r)["val_loss"] for r in lines[0]] == [json.loads(r)["val_loss"] for r in lines[1]]

    for args in (
        [str(straight), "--backend", "aer_statevector"],
        [str(straight / EXPORT_FILE), "--target", "mnist_cnn", "--dataset", "mnist"],
    ):
        status, printed, err = run_script_inprocess("evaluate.py", *args, *data)
        assert status == 0, err
        assert json.loads(printed)["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=2e-4)
    status, printed, err = run_script_inprocess("evaluate.py", str(straight), "--backend", "aer_shots", *data)
    assert status == 0, err
    result = json.loads(printed)
    assert result["exact_test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=2e-4)
    # The distance of `shots` samples from the run's exact P is sampling error alone: within its
    # 0.05% and 99.95% quantiles, drawn from the multinomial of that P (0.1% false alarms).
    low, high = sampling_tvd_quantiles(run_probabilities(straight), result["shots"], [0.0005, 0.9995])
    assert low < result["tvd_to_exact"] < high, (low, result["tvd_to_exact"], high)

    sweep = tmp_path / "sweep"
    args = ["--run", str(straight), "--out", str(sweep), "--protocols", "inference", "--repeats", "1"]
    args += ["--shots", "256,exact", "--depolarizing", "", "--readout", "", "--devices", "", "--test-subset", "300"]
    status, _, err = run_script_inprocess("noise_sweep.py", *args, *data)
    assert status == 0, err
    assert (sweep / "results.csv").read_text().count("\n") == 3  # header + 2 cells
