import math

import torch

from qtrain_qiskit.build import build_model
from qtrain_qiskit.config import Config, validate
from qtrain_qiskit.mapping import MappingModel, basis_bits, probability_feature


def test_basis_bits_match_python_bit_arithmetic():
    bits = basis_bits(37, 6, signed=False)
    expected = [[(i >> q) & 1 for q in range(6)] for i in range(37)]
    assert bits.tolist() == expected
    assert basis_bits(37, 6, signed=True).tolist() == [[2 * b - 1 for b in row] for row in expected]


def test_reference_mapping_parameter_count():
    # [14, 20, 1]: (14 * 20 + 20) + (20 * 1 + 1) = 321; with 13 x 8 angles the seed's 425.
    mapping = MappingModel(13, 6676, hidden=[20])
    assert sum(p.numel() for p in mapping.parameters()) == 321
    counts = build_model(validate(Config()), torch.device("cpu")).parameter_counts()
    assert (counts["quantum_params"], counts["mapping_params"], counts["trainable_params"]) == (104, 321, 425)
    deeper = MappingModel(13, 6676, hidden=[32, 16])
    assert sum(p.numel() for p in deeper.parameters()) == (14 * 32 + 32) + (32 * 16 + 16) + (16 + 1)


def test_only_the_first_m_outcomes_are_used():
    mapping = MappingModel(4, 11, hidden=[5])
    probs = torch.rand(16)
    probs = probs / probs.sum()
    changed = probs.clone()
    changed[11:] = 0.5  # outcomes beyond M must not change any generated weight
    torch.testing.assert_close(mapping(probs), mapping(changed))
    assert mapping(probs).shape == (11,)


def test_mapping_is_a_per_row_mlp():
    mapping = MappingModel(3, 8, hidden=[4], features="raw")
    probs = torch.rand(8)
    out = mapping(probs)
    for i in range(8):
        row = torch.cat([basis_bits(8, 3, signed=False)[i], probs[i : i + 1]])
        torch.testing.assert_close(out[i], mapping.mlp(row)[0])


def test_scaled_feature_formula():
    probs = torch.rand(64) / 64
    alpha, beta, gamma = 2.0, 3.0, 0.5
    got = probability_feature(probs, 6, "scaled", alpha=alpha, beta=beta, gamma=gamma)
    raw = [(beta * math.tanh(gamma * 2**5 * p)) ** alpha for p in probs.tolist()]
    mean = sum(raw) / len(raw)
    torch.testing.assert_close(got, torch.tensor([r - mean for r in raw]), rtol=1e-5, atol=1e-6)
    assert probability_feature(probs, 6, "raw", alpha=1, beta=1, gamma=1) is probs


def test_scaled_feature_is_order_one_where_raw_is_tiny():
    probs = torch.distributions.Exponential(1.0).sample((8192,)) / 8192
    scaled = probability_feature(probs, 13, "scaled", alpha=1, beta=1, gamma=1)
    assert probs.std() < 1e-3 < 0.1 < scaled.std()


def test_each_activation_is_the_one_named():
    """Same weights and input, four activations: four different outputs (a name that fell back to
    another activation would repeat one)."""
    probs = torch.rand(8, dtype=torch.float64)
    outputs = {}
    for activation in ("relu", "tanh", "gelu", "silu"):
        torch.manual_seed(0)
        model = MappingModel(3, 8, hidden=[4, 4], activation=activation).double()
        outputs[activation] = model(probs)
        assert outputs[activation].shape == (8,)
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b]), (a, b)
