"""Head bits (``head_bits`` b): the low b bits of a state's index pick the mapping's output group."""

import pytest
import torch

from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, ConfigError, apply, validate
from qtrain_qiskit.mapping import MappingModel, basis_bits

from .conftest import run_script_inprocess


@pytest.mark.parametrize("k", [1, 3])
def test_each_weight_reads_its_groups_outputs_from_the_high_bits_and_its_own_probability(k):
    # Independent reference: a loop over states that feeds the MLP the bits of s >> b and P(s) and
    # keeps the k outputs of group s mod 2^b, laid end to end and cut at M.
    torch.manual_seed(0)
    num_qubits, b = 4, 2
    num_weights = 14 * k - 1  # 14 states, the last one short of one weight
    mapping = MappingModel(num_qubits, num_weights, weights_per_state=k, hidden=[5], features="raw", head_bits=b)
    probs = torch.rand(16)
    high_bits = basis_bits(16 >> b, num_qubits - b, signed=False)
    expected = []
    for state in range(14):
        out = mapping.mlp(torch.cat([high_bits[state >> b], probs[state : state + 1]]))
        group = state % 2**b
        expected.append(out[group * k : (group + 1) * k])
    torch.testing.assert_close(mapping(probs), torch.cat(expected)[:num_weights])


def test_at_k_1_each_weight_depends_on_its_own_outcome_only():
    torch.manual_seed(1)
    mapping = MappingModel(5, 29, hidden=[6], features="raw", head_bits=3).double()
    probs = torch.rand(32, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(mapping, probs)  # (29, 32)
    off_diagonal = jacobian[:, :29] - torch.diag(torch.diagonal(jacobian[:, :29]))
    assert torch.count_nonzero(torch.diagonal(jacobian)) > 20
    assert torch.count_nonzero(off_diagonal) == 0 and torch.count_nonzero(jacobian[:, 29:]) == 0


@pytest.mark.parametrize("chunk", [4, 16])
def test_chunked_head_bits_match_unchunked(chunk):
    torch.manual_seed(0)
    plain = MappingModel(7, 100, hidden=[5], head_bits=3).double()
    chunked = MappingModel(7, 100, hidden=[5], head_bits=3, chunk=chunk).double()
    chunked.load_state_dict(plain.state_dict())
    probs = torch.rand(128, dtype=torch.float64)
    torch.testing.assert_close(chunked(probs), plain(probs), rtol=1e-12, atol=1e-12)


def test_the_425_budget_with_head_bits():
    # 13 qubits x 8 blocks (104) + mapping [9 + 1, 11, 16]: (10 * 11 + 11) + (11 * 16 + 16) = 313 -> 417
    config = validate(apply(Config(), {"head_bits": 4, "hidden": [11]}, "test"))
    model = build_model(config, torch.device("cpu"))
    counts = model.parameter_counts()
    assert (counts["quantum_params"], counts["mapping_params"], counts["trainable_params"]) == (104, 313, 417)
    assert model.mapping.mlp[0].in_features == 10 and model.generate_weights().shape == (6676,)


def test_bit_init_scale_zeroes_the_high_bits_it_sees():
    mapping = MappingModel(6, 64, hidden=[4], head_bits=2, bit_init_scale=0.0)
    assert torch.count_nonzero(mapping.mlp[0].weight[:, :4]) == 0
    assert torch.count_nonzero(mapping.mlp[0].weight[:, 4]) > 0  # the probability feature's column


@pytest.mark.parametrize("values", [{"head_bits": -1}, {"head_bits": 14}, {"head_bits": 8, "weights_per_state": 64}])
def test_bad_head_bits_is_one_clear_line(values):
    with pytest.raises(ConfigError, match=r"head_bits: -?\d+ is not between 0 and the model's \d+ qubits"):
        validate(apply(Config(), values, "test"))


def test_bad_head_bits_on_the_command_line_exits_2_and_writes_nothing(tmp_path):
    status, _, err = run_script_inprocess("train.py", "--head-bits", "20", "--run-dir", str(tmp_path / "r"))
    assert status == 2 and err.count("\n") == 1 and "head_bits" in err
    assert not (tmp_path / "r").exists()
