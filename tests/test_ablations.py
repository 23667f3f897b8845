"""Each ablation of the quantum stage removes what its name says, and nothing else."""

from pathlib import Path

import pytest
import torch

from qtrain_qiskit.build import build_circuit, build_model, trainable_count
from qtrain_qiskit.config import Config, apply, validate
from qtrain_qiskit.targets import build_target, cnn_weights, count_parameters, gap_weights, matched_baselines
from qtrain_qiskit.trainer import Stepper

from .conftest import run_script_inprocess

TINY = {"target": "cnn_1_2_1", "blocks": 2, "backend": "torch_statevector", "device": "cpu"}  # 101 weights, 7 qubits


def tiny_model(seed: int = 0, **overrides):
    config = validate(apply(Config(), {**TINY, "seed": seed, **overrides}, "test"))
    torch.manual_seed(seed)
    return build_model(config, torch.device("cpu"))


def one_step(model) -> None:
    stepper = Stepper(model, lr=0.05, clip=10.0, device=torch.device("cpu"))
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    stepper.update(stepper.backward(x, y)[2])


@pytest.mark.parametrize("backend", ["torch_statevector", "aer_statevector"])
def test_frozen_circuit_keeps_its_angles_while_the_mapping_trains(backend):
    model = tiny_model(quantum="frozen", backend=backend)
    angles = torch.cat([p.detach().clone() for p in model.quantum.parameters()])
    mapping = [p.detach().clone() for p in model.mapping.parameters()]
    one_step(model)
    assert torch.equal(torch.cat([p.detach() for p in model.quantum.parameters()]), angles)
    assert any(not torch.equal(p, q) for p, q in zip(model.mapping.parameters(), mapping, strict=True))
    assert model.parameter_counts()["quantum_params"] == 0
    trained = tiny_model(backend=backend)  # the control: the same step does move trained angles
    assert torch.equal(torch.cat([p.detach() for p in trained.quantum.parameters()]), angles)  # same start
    one_step(trained)
    assert not torch.equal(torch.cat([p.detach() for p in trained.quantum.parameters()]), angles)


def test_random_vector_is_fixed_across_steps_kept_in_checkpoints_and_differs_across_seeds():
    model = tiny_model(quantum="random_vector")
    before = model.quantum().clone()
    assert before.shape == (2**7,) and torch.isclose(before.sum(), torch.tensor(1.0)) and (before > 0).all()
    one_step(model)
    assert torch.equal(model.quantum(), before)
    assert torch.equal(model.state_dict()["quantum.probs"], before)
    assert torch.equal(tiny_model(seed=0, quantum="random_vector").quantum(), before)
    assert not torch.allclose(tiny_model(seed=1, quantum="random_vector").quantum(), before)
    assert model.parameter_counts()["quantum_params"] == 0


def test_separable_circuit_has_no_two_qubit_gate():
    def two_qubit_gates(quantum: str) -> int:
        config = apply(Config(), {**TINY, "quantum": quantum}, "test")
        return sum(inst.operation.num_qubits > 1 for inst in build_circuit(config, 101).data)

    assert two_qubit_gates("trained") > 0
    assert two_qubit_gates("separable") == 0
    model = tiny_model(quantum="separable")
    assert model.parameter_counts()["quantum_params"] == 7 * 2
    probs = model.quantum().detach().reshape([2] * 7)  # a product state: P factorizes over qubits
    product = torch.ones_like(probs)
    for axis in range(7):
        marginal = probs.sum(dim=tuple(d for d in range(7) if d != axis))
        product = product * marginal.reshape([2 if d == axis else 1 for d in range(7)])
    assert torch.allclose(product, probs, atol=1e-6)


def test_bits_only_mapping_has_no_probability_input():
    model = tiny_model(quantum="none", bit_init_scale=1.0)
    assert model.mapping.mlp[0].in_features == 7  # the bits, no probability feature
    p1, p2 = torch.rand(128), torch.rand(128)
    assert torch.equal(model.weights_from_probabilities(p1), model.weights_from_probabilities(p2))
    control = tiny_model()
    assert not torch.allclose(control.weights_from_probabilities(p1), control.weights_from_probabilities(p2))
    one_step(model)  # and it trains


# Worked by hand for TINY: 101 weights need 7 qubits; 2 blocks of one angle per qubit = 14 angles;
# the mapping reads 7 bits + the probability feature: 8 x 20 + 20 + 20 x 1 + 1 = 201 (without the
# feature, stage "none": 7 x 20 + 20 + 21 = 181). Frozen angles and a random vector train nothing.
TRAINABLE = {"trained": 14 + 201, "frozen": 201, "random_vector": 201, "separable": 14 + 201, "none": 181}


def test_trainable_count_and_the_built_model_match_the_hand_count():
    for stage, expected in TRAINABLE.items():
        overrides = {"quantum": stage, "bit_init_scale": 1.0}
        config = validate(apply(Config(), {**TINY, **overrides}, "test"))
        assert trainable_count(config) == expected, stage
        assert tiny_model(**overrides).parameter_counts()["trainable_params"] == expected, stage


def test_cnn_family_counts_and_the_equal_budget_match():
    assert count_parameters(build_target("cnn_4_8_30")) == cnn_weights(4, 8, 30) == 6676  # the seed's CNN
    assert count_parameters(build_target("cnn_3_5_0")) == cnn_weights(3, 5, 0)
    assert count_parameters(build_target("gap_3_4_6")) == gap_weights(3, 4, 6) == 434
    # The rule (widest narrowest layer within 10%, then the closest count) pinned at the budgets the
    # docs compare against: mnist_425 (425: cnn_8_1_0 with 413 weights, not the closer cnn_2_4_3 whose
    # 3-unit hidden layer is narrower), mnist_hardware (1,288) and mnist_hardware_compact (558).
    assert matched_baselines(425) == ["cnn_8_1_0", "gap_4_4_5"]
    assert matched_baselines(1288) == ["cnn_1_5_0", "gap_8_8_8"]
    assert matched_baselines(558) == ["cnn_2_2_0", "gap_5_5_5"]
    for budget in (425, 1288, 558):
        for name in matched_baselines(budget):
            assert abs(count_parameters(build_target(name)) - budget) <= 0.1 * budget, name
    assert count_parameters(build_target("cnn_2_4_3")) == 439  # closer to 425 than cnn_8_1_0, not chosen
    exact = matched_baselines(434, tolerance=0.0)  # only members with exactly 434 weights qualify
    assert [name[:4] for name in exact] == ["cnn_", "gap_"]
    assert all(count_parameters(build_target(name)) == 434 for name in exact), exact
    with pytest.raises(ValueError, match="no architecture within 10%"):
        matched_baselines(40)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--quantum", "entangled"], "quantum: 'entangled' is not one of trained"),
        (["--quantum", "random_vector", "--backend", "ibm_runtime"], "random_vector executes no circuit"),
        (["--quantum", "none", "--bit-init-scale", "1", "--backend", "aer_shots"], "none executes no circuit"),
        (["--quantum", "none", "--bit-init-scale", "0"], "--bit-init-scale 0 starts their weights at zero"),
        (["--quantum", "frozen", "--method", "classical"], "has no quantum stage"),
        (["--target", "cnn_1_2"], "unknown target 'cnn_1_2'"),
    ],
)
def test_bad_ablation_input_is_one_line_and_exit_2(argv, message):
    status, _, err = run_script_inprocess("train.py", *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_compare_refuses_a_budget_no_cnn_matches(tmp_path):
    argv = ["--compare", "--target", "cnn_1_2_1", "--blocks", "1", "--hidden", "1", "--out", str(tmp_path)]
    status, _, err = run_script_inprocess("train_grid.py", *argv)
    assert status == 2 and "no architecture within 10%" in err and len(err.strip().splitlines()) == 1, err


def test_compare_plans_the_shot_trained_hardware_config(tmp_path):
    """Its classical baselines drop train_shots (no circuit to sample); the circuit variants keep it."""
    from qtrain_qiskit.sweeps.grid import plan_runs

    config = str(Path(__file__).parents[1] / "configs" / "mnist_hardware.yaml")
    tasks = plan_runs(config, {}, {"seed": ["0"]}, tmp_path, compare=True)
    shots = {Path(path).name: run["train"]["train_shots"] for path, run in tasks}
    assert shots["mnist_hardware_trained_seed0"] == shots["mnist_hardware_frozen_seed0"] == 8192
    classical = [Path(path).name for path, run in tasks if run["model"]["method"] == "classical"]
    assert len(classical) == 3 and all(shots[name] is None for name in classical)


def test_paired_statistics_match_a_hand_computed_example():
    from qtrain_qiskit.reporting.comparison import bootstrap_ci, paired_differences, wilcoxon_p

    trained = {0: 0.95, 1: 0.96, 2: 0.94, 7: 0.5}
    frozen = {0: 0.95, 1: 0.96, 2: 0.97}  # seed 7 has no partner and is left out
    diffs = paired_differences(trained, frozen)
    assert diffs == pytest.approx([0.0, 0.0, 0.03])
    # 27 equally likely resamples; the mean is 0.01 k, k = number of 0.03s ~ Binomial(3, 1/3):
    # P(k=0) = 8/27 >= 2.5%, so the lower bound is 0; P(k<=2) = 26/27 < 97.5%, so the upper is 0.03
    assert bootstrap_ci(diffs) == pytest.approx((0.0, 0.03))
    assert bootstrap_ci([0.01, 0.02]) == pytest.approx((0.01, 0.02))  # 4 resamples: 0.01, 0.015 x 2, 0.02
    assert wilcoxon_p(diffs) is None  # fewer than 5 seeds
    # Above 6 seeds the resamples are drawn (20,000 of them). Seven 0s and one 1: the mean is k / 8,
    # k ~ Binomial(8, 1/8): P(k = 0) = 0.344 >= 2.5%, so the lower bound is 0; P(k <= 2) = 0.933
    # and P(k <= 3) = 0.989 straddle 97.5% by ~40 standard errors of 20,000 draws: the upper is 3/8.
    assert bootstrap_ci([0.0] * 7 + [1.0]) == pytest.approx((0.0, 0.375))
    assert bootstrap_ci([1.0] * 7 + [0.0]) == pytest.approx((0.625, 1.0))
    # all five differences positive: the exact two-sided p is 2 / 2^5 = 0.0625
    assert wilcoxon_p([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx(0.0625)


def test_several_comparisons_plot_each_variant_at_its_budget():
    from qtrain_qiskit.reporting.comparison import family_points
    from qtrain_qiskit.reporting.runs import Group, RunResult

    def run(group, name, trainable, accuracy, seed, method="quantum_train", target="mnist_cnn", quantum="trained"):
        counts = dict(quantum_params=0, mapping_params=0, target_params=6676, num_qubits=13, num_blocks=8)
        return RunResult(
            f"r/{name}{seed}", name, method, seed, accuracy, accuracy, trainable, **counts, hidden="20", epochs=1,
            train_seconds=1.0, target=target, quantum=quantum, group=group,
        )  # fmt: skip

    def variants(group, budget, accuracy):
        rows = [
            ("trained", budget, accuracy, {}),
            ("frozen", budget - 104, accuracy - 0.02, {"quantum": "frozen"}),
            ("none_seedstart", budget - 124, accuracy - 0.03, {"quantum": "none"}),  # added by hand: own row
            ("cnn", budget - 12, 0.5, {"method": "classical", "target": "cnn_8_1_0"}),
            ("gap", budget + 8, 0.9, {"method": "classical", "target": "gap_4_4_5"}),
        ]
        return [
            Group(f"{group}_{name}", [run(group, f"{group}_{name}", n, a + seed / 100, seed, **kw) for seed in (0, 1)])
            for name, n, a, kw in rows
        ]

    one = family_points(variants("small", 425, 0.95))
    assert [x for x, *_ in one["frozen"]] == [321]  # one comparison: each at its own count
    both = family_points(variants("small", 425, 0.95) + variants("large", 737, 0.97))
    assert [x for x, *_ in both["trained"]] == [x for x, *_ in both["frozen"]] == [425, 737]  # at the budget
    assert [round(m, 2) for _, m, _, _ in both["trained"]] == [95.5, 97.5]  # mean of seeds 0, 1 in percent
    assert set(both) == {"trained", "frozen", "none_seedstart", "equal-budget CNN (cnn_*)", "equal-budget CNN (gap_*)"}
