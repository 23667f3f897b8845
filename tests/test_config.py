import pytest

from qtrain_qiskit.config import (
    Config,
    ConfigError,
    apply,
    build_parser,
    from_args,
    load_yaml,
    to_yaml,
    validate,
)

from .conftest import REPO


def parse(*argv):
    return from_args(build_parser("test").parse_args(list(argv)))


def test_reference_yaml_is_the_default_configuration():
    config = apply(Config(), load_yaml(REPO / "configs" / "mnist.yaml"), "mnist.yaml")
    assert config == Config()
    assert (config.circuit.blocks, config.model.hidden, config.train.lr, config.train.clip) == (8, [20], 5e-4, 10.0)
    assert (config.train.batch_size, config.train.epochs, config.data.val_fraction) == (64, 50, 0.2)


def test_every_yaml_in_configs_loads_and_validates():
    from qtrain_qiskit.config import apply_flat
    from qtrain_qiskit.sweeps.noise import NoiseSweepConfig, check_settings

    for path in sorted((REPO / "configs").glob("*.yaml")):
        if path.name == "noise_sweep.yaml":  # settings of scripts/noise_sweep.py, not of a run
            check_settings(apply_flat(NoiseSweepConfig(), load_yaml(path), str(path)))
        else:
            validate(apply(Config(), load_yaml(path), str(path)))


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 0.01\ncircuit:\n  blocks: 4\n")
    config = parse("--config", str(path), "--epochs", "3", "--hidden", "32,16", "--qubits", "14")
    assert (config.train.epochs, config.train.lr, config.circuit.blocks) == (3, 0.01, 4)
    assert config.model.hidden == [32, 16] and config.circuit.qubits == 14


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = parse("--blocks", "16", "--features", "raw", "--train-subset", "100")
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(config))
    assert apply(Config(), load_yaml(path), "resolved") == config


def test_named_flags_exist():
    parser = build_parser("test")
    flags = {option for action in parser._actions for option in action.option_strings}
    for flag in (
        "--backend",
        "--grad",
        "--features",
        "--epochs",
        "--blocks",
        "--qubits",
        "--batch-size",
        "--lr",
        "--seed",
        "--device",
        "--data-dir",
        "--run-dir",
        "--train-subset",
        "--config",
        "--optimization-level",
        "--ibm-mode",
        "--dynamical-decoupling",
        "--twirling",
        "--spsa-decay",
        "--init-from",
        "--mapping-chunk",
    ):
        assert flag in flags, flag


def test_optimization_level_reaches_the_backend_from_yaml_and_flag(tmp_path):
    from qtrain_qiskit.build import build_backend

    path = tmp_path / "c.yaml"
    path.write_text("execution:\n  backend: aer_noisy\n  noise: fake_guadalupe\n  optimization_level: 1\n")
    from_yaml = parse("--config", str(path))
    from_flag = parse("--config", str(path), "--optimization-level", "3")
    assert Config().execution.optimization_level == 2
    for config, level in ((from_yaml, 1), (from_flag, 3)):
        assert config.execution.optimization_level == level
        assert build_backend(validate(config), device=None).options.optimization_level == level
    with pytest.raises(ConfigError, match=r"optimization_level must be in \[0, 3\], got 4"):
        parse("--optimization-level", "4")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus", "1"], "unrecognized arguments: --bogus"),
        (["--epochs", "many"], "epochs: expected int, got 'many'"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--lr", "-1"], "lr must be > 0"),
        (["--batch-size", "0"], "batch_size must be >= 1"),
        (["--blocks", "0"], "blocks must be >= 1"),
        (["--qubits", "12"], "cannot address the 6676 weights of mnist_cnn; need at least 13"),
        (
            ["--backend", "quantum_magic"],
            "backend: unknown 'quantum_magic'; available: aer_density, aer_noisy, aer_shots, aer_statevector",
        ),
        (["--grad", "guess"], "grad: 'guess' is not one of auto, adjoint, param_shift, spsa"),
        (["--backend", "aer_shots", "--grad", "adjoint"], "grad: adjoint needs an exact backend with a reverse pass"),
        (["--shots", "0"], "shots must be >= 1"),
        (["--depolarizing-2q", "1.5"], "depolarizing_2q must be in .0, 1., got 1.5"),
        (["--features", "fancy"], "features: 'fancy' is not one of raw, scaled"),
        (["--dataset", "imagenet"], "dataset: 'imagenet' is not one of mnist, fashion_mnist, cifar10"),
        (["--device", "tpu"], "device: unknown 'tpu'"),
        (["--val-fraction", "1.5"], "val_fraction must be in (0, 1)"),
        (["--hidden", "20,x"], "hidden: expected"),
    ],
)
def test_bad_flags_name_the_problem(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(*argv)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epoch: 3\n", "unknown key train.epoch"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("train: [1, 2]\n", "unknown key 'train'"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("train:\n  epochs: [\n", "cannot read config"),
        ("circuit:\n  blocks: 2.5\n", "blocks: expected int, got 2.5"),
        ("model:\n  center: true\n", "center: expected str, got True"),
    ],
)
def test_bad_yaml_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse("--config", str(path))


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found: nowhere"):
        parse("--config", "nowhere.yaml")
