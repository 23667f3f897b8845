"""Backends own their options: declared once, validated in one line, turned into flags, passed explicitly."""

import dataclasses
import inspect
from dataclasses import dataclass

import pytest
from qtrain_qiskit.backends import Backend, BackendOptions, option, register, registry
from qtrain_qiskit.backends.aer import AerNoisyOptions, AerShotsOptions, NoiseOptions
from qtrain_qiskit.backends.ibm_runtime import IBMRuntimeOptions
from qtrain_qiskit.backends.options import ShotsOptions
from qtrain_qiskit.backends.torch_statevector import TorchStatevectorOptions

from qtrain_qiskit import backends
from qtrain_qiskit.build import build_backend
from qtrain_qiskit.config import Config, ConfigError, apply, build_parser, execution_class, from_args, validate
from qtrain_qiskit.gradients import gradient_method


@dataclass(frozen=True)
class ToyOptions(BackendOptions):
    gain: float = option(1.0, "toy: factor on every probability (a test backend's own option)", minimum=0)


class ToyBackend(Backend):
    name = "toy_gain"
    Options = ToyOptions
    context = ("seed",)

    def __init__(self, options: ToyOptions | None = None, *, seed: int | None = None) -> None:
        super().__init__(options)
        self.seed = seed

    def _probabilities(self, circuit, values):
        raise NotImplementedError


@pytest.fixture
def toy():
    """ToyBackend registered for one test, then removed (the execution section follows the registry)."""
    register(ToyBackend)
    yield ToyBackend
    registry._BACKENDS.pop(ToyBackend.name)


def parse(*argv: str) -> Config:
    return from_args(build_parser("test").parse_args(list(argv)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ShotsOptions(shots=0), "shots must be >= 1, got 0"),
        (lambda: AerShotsOptions(aer_device="TPU"), "aer_device: 'TPU' is not one of CPU, GPU"),
        (lambda: NoiseOptions(readout_error=1.5), r"readout_error must be in \[0, 1\], got 1.5"),
        (lambda: NoiseOptions(noise="fake_nowhere"), "noise: unknown fake device 'fake_nowhere'; available: fake_"),
        (lambda: NoiseOptions(noise="thermal"), "noise: 'thermal' is not 'depolarizing' or a fake device"),
        (lambda: AerNoisyOptions(mitigation="mthree"), "mitigation: mthree .* aer_noisy --noise depolarizing has no"),
        (lambda: IBMRuntimeOptions(ibm_mode="cloud"), "ibm_mode: 'cloud' is not one of job, batch, session"),
        (lambda: IBMRuntimeOptions(ibm_backend="fake_nowhere"), "ibm_backend: unknown fake device 'fake_nowhere'"),
        (lambda: IBMRuntimeOptions(max_retries=-1), "max_retries must be >= 0, got -1"),
        (lambda: TorchStatevectorOptions(precision="float16"), "precision: 'float16' is not one of float32, float64"),
    ],
)
def test_options_refuse_bad_values_in_one_line_naming_the_key(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def test_options_are_frozen_and_valid_by_default():
    for cls in backends.registered().values():
        options = cls.Options()
        with pytest.raises(AttributeError):
            options.shots = 3  # frozen: a run's settings do not change under it


def test_a_registered_backend_brings_its_flag_and_it_reaches_the_constructor(toy):
    help_text = " ".join(build_parser("test").format_help().split())
    assert "--gain FLOAT" in help_text and "a test backend's own option" in help_text
    config = parse("--backend", "toy_gain", "--gain", "2.5", "--seed", "7")
    backend = build_backend(config, device=None)
    assert isinstance(backend, ToyBackend) and (backend.options.gain, backend.seed) == (2.5, 7)
    from_yaml = apply(Config(), {"execution": {"backend": "toy_gain", "gain": 4}}, "test.yaml")
    assert build_backend(validate(from_yaml), device=None).options.gain == 4.0
    with pytest.raises(ConfigError, match=r"^gain must be >= 0, got -1\.0$"):
        parse("--backend", "toy_gain", "--gain", "-1")


def test_the_flag_leaves_with_the_backend(toy):
    assert "gain" in execution_class().__dataclass_fields__
    registry._BACKENDS.pop(toy.name)
    try:
        assert "gain" not in execution_class().__dataclass_fields__
        with pytest.raises(ConfigError, match=r"unknown key execution\.gain"):
            apply(Config(), {"execution": {"gain": 2}}, "test.yaml")
    finally:
        register(toy)


def test_a_constructor_that_disagrees_with_its_options_is_refused_at_registration():
    class Repeated(ToyBackend):  # the default of gain written a second time, as a keyword
        name = "toy_repeated"

        def __init__(self, options: ToyOptions | None = None, *, gain: float = 1.0, seed: int | None = None) -> None:
            super().__init__(options)

    with pytest.raises(ValueError, match="backend 'toy_repeated': the constructor takes 'gain', which ToyOptions"):
        register(Repeated)

    class Keywords(ToyBackend):  # the former shape: one keyword per option
        name = "toy_keywords"

        def __init__(self, gain: float = 1.0, seed: int | None = None) -> None: ...

    with pytest.raises(ValueError, match="first parameter must be options \\(ToyOptions\\)"):
        register(Keywords)

    class Needy(ToyBackend):
        name = "toy_needy"

        def __init__(self, options: ToyOptions, scale: float, seed: int | None = None) -> None: ...

    with pytest.raises(ValueError, match="the constructor needs 'scale', which neither its options nor context"):
        register(Needy)

    class NoSeed(ToyBackend):
        name = "toy_no_seed"

        def __init__(self, options: ToyOptions | None = None) -> None: ...

    with pytest.raises(ValueError, match="the constructor takes no 'seed'"):
        register(NoSeed)
    assert not {"toy_repeated", "toy_keywords", "toy_needy", "toy_no_seed"} & set(backends.available())


def test_every_default_is_written_once_in_the_options():
    """No registered constructor repeats an option as a keyword, and each backend built without
    options holds its Options' defaults (so there is no second default to drift)."""
    for name, cls in backends.registered().items():
        keys = {f.name for f in dataclasses.fields(cls.Options)}
        assert not keys & set(inspect.signature(cls).parameters), name
    assert backends.get_backend("torch_statevector").options == TorchStatevectorOptions()
    assert backends.get_backend("aer_noisy", shots=9).options == AerNoisyOptions(shots=9)
    with pytest.raises(TypeError, match="backend 'aer_shots' takes AerShotsOptions, got NoiseOptions"):
        backends.backend_class("aer_shots")(NoiseOptions())


def test_option_names_must_not_collide(toy):
    @dataclass(frozen=True)
    class SeedOptions(BackendOptions):
        seed: int = option(0, "a run value is not an option")

    class Seeded(ToyBackend):
        name = "toy_seeded"
        Options = SeedOptions
        context = ()

        def __init__(self, options: SeedOptions | None = None) -> None: ...

    with pytest.raises(ValueError, match="'seed' is not an option name"):
        register(Seeded)

    @dataclass(frozen=True)
    class OtherGain(BackendOptions):
        gain: float = option(3.0, "the same key with another default would be two meanings for one flag")

    class Twin(ToyBackend):
        name = "toy_twin"
        Options = OtherGain

    register(Twin)
    try:
        with pytest.raises(ConfigError, match=r"backend toy_twin: option gain .* disagrees with toy_gain's"):
            execution_class()
    finally:
        registry._BACKENDS.pop(Twin.name)


def test_option_shadowing_another_section_is_refused(toy):
    @dataclass(frozen=True)
    class EpochOptions(BackendOptions):
        epochs: int = option(1, "train.epochs already means something")

    class Shadow(ToyBackend):
        name = "toy_shadow"
        Options = EpochOptions
        context = ()

        def __init__(self, options: EpochOptions | None = None) -> None: ...

    register(Shadow)
    try:
        with pytest.raises(ConfigError, match="backend option 'epochs' is already a configuration key"):
            execution_class()
    finally:
        registry._BACKENDS.pop(Shadow.name)


@pytest.mark.parametrize(
    ("name", "shots"), [("aer_shots", 77), ("aer_noisy", 78), ("ibm_runtime", 79), ("aer_statevector", 80)]
)
def test_build_backend_passes_the_options_of_every_backend(name, shots):
    config = validate(apply(Config(), {"backend": name, "shots": shots, "seed": 5}, "test"))
    backend = build_backend(config, device=None)
    assert type(backend) is backends.backend_class(name)
    assert getattr(backend.options, "shots", None) == (shots if name != "aer_statevector" else None)  # unused


# The gradient each backend uses under --grad auto; every registered backend must be listed here.
AUTO = {
    "torch_statevector": "adjoint",
    "aer_statevector": "adjoint",
    "qiskit_statevector": "param_shift",
    "aer_shots": "param_shift",
    "aer_noisy": "param_shift",
    "aer_density": "param_shift",
    "torch_density": "adjoint",
    "ibm_runtime": "param_shift",
}


def test_gradient_method_for_every_registered_backend():
    assert set(AUTO) == set(backends.available())
    for name, auto in AUTO.items():
        assert gradient_method(name) == gradient_method(backends.backend_class(name), "auto") == auto
        assert gradient_method(name, "param_shift") == "param_shift"
        assert gradient_method(name, "spsa") == "spsa"
        if auto == "adjoint":
            assert gradient_method(name, "adjoint") == "adjoint"
        else:
            with pytest.raises(ValueError, match=f"^grad: adjoint needs an exact backend .* {name} has none"):
                gradient_method(name, "adjoint")
    with pytest.raises(ValueError, match="grad: 'magic' is not one of auto, adjoint, param_shift, spsa"):
        gradient_method("aer_statevector", "magic")


def test_one_answer_for_config_qnn_and_budget():
    """The QNN's method and the budget's circuits are each backend's documented answer (the AUTO
    table above, written out rather than asked of gradient_method, which they both call)."""
    from qtrain_qiskit.ansatz import build_ansatz
    from qtrain_qiskit.budget import estimate
    from qtrain_qiskit.qnn import ProbabilityQNN

    circuit = build_ansatz(2, 1)
    for name in ("aer_statevector", "qiskit_statevector"):
        config = validate(apply(Config(), {"backend": name, "weights_per_state": 2000}, "test"))
        network = ProbabilityQNN(circuit, build_backend(config, device=None), gradient="auto")
        assert network.gradient.name == AUTO[name]
    sampled = validate(apply(Config(), {"backend": "aer_shots", "weights_per_state": 2000}, "test"))
    assert estimate(sampled, steps_per_epoch=1, num_angles=5).circuits_per_step == 1 + 2 * 5  # param_shift
