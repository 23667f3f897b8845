"""Typed run configuration: one dataclass per section, strict keys, flat CLI overrides.

Precedence: dataclass defaults (the seed's reference MNIST configuration) < YAML file < command
line. Every field is a flag named after it (``batch_size`` -> ``--batch-size``), so field names
are unique across sections. The ``execution`` section adds the keys of every registered backend's
options (`execution_class`): a backend declares, validates and documents its own. Validation happens
once, here, before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Each choice list is written once, in the module that implements it.
from .ansatz import ANGLE_INITS, ENTANGLEMENTS
from .backends.options import check_value, option
from .data import DATASETS
from .gradients import GRADIENTS, gradient_method
from .helptext import OneLineHelp, add_groups, sectioned_keys
from .mapping import ACTIVATIONS, FEATURES
from .model import CENTERING, METHODS, WEIGHT_SCALES
from .stages import NO_CIRCUIT, QUANTUM_STAGES, STAGES
from .stepper import NONFINITE_POLICIES, SCHEDULES


class ConfigError(ValueError):
    """Bad configuration or flag: reported as one line, exit status 2."""


def _power_of_two_or_zero(value: int | None) -> str | None:
    return None if not value or value & (value - 1) == 0 else f"must be a power of two or 0, got {value}"


def _hidden_sizes(value: list[int]) -> str | None:
    return None if all(h >= 1 for h in value) else f"must hold sizes >= 1, got {value}"


def _torch_device(value: str) -> str | None:
    known = value == "auto" or value.split(":")[0] in ("cpu", "cuda", "mps")
    return None if known else f"unknown {value!r}; use auto, cpu, cuda, cuda:N or mps"


@dataclass
class ModelConfig:
    method: str = option(
        "quantum_train",
        "quantum_train, or classical (the baseline: the target's own weights)",
        choices=METHODS,
    )
    target: str = option(
        "mnist_cnn",
        "mnist_cnn, cifar_cnn, qt_cifar_cnn, mlp_H, cnn_C1_C2_H or gap_C1_C2_C3",
    )
    quantum: str = option(
        "trained",
        "trained; controls: " + ", ".join(name for name in STAGES if name != "trained"),
        choices=QUANTUM_STAGES,
    )
    features: str = option("scaled", "probability feature fed to the mapping", choices=FEATURES)
    weights_per_state: int = option(1, "k: target weights generated per basis state (the mapping's outputs)")
    hidden: list[int] = option((20,), "hidden layer sizes of the mapping MLP, e.g. 20 or 32,32", check=_hidden_sizes)  # noqa: RUF009 - option() returns a dataclasses.field
    head_bits: int = option(0, "b: the low b index bits pick one of 2^b mapping last layers instead of being inputs")
    activation: str = option("relu", "mapping MLP activation", choices=tuple(ACTIVATIONS))
    feature_alpha: float = option(1.0, "scaled feature exponent alpha")
    feature_beta: float = option(1.0, "scaled feature multiplier beta")
    feature_gamma: float = option(1.0, "scaled feature slope gamma (on 2^(N-1) P)")
    center: str = option(
        "tensor",
        "centring of the generated weights: per target tensor, over all, or none",
        choices=CENTERING,
    )
    weight_scale: str = option(
        "target_init",
        "per-tensor scale of the generated weights: target_init, learned or none",
        choices=WEIGHT_SCALES,
    )
    bit_init_scale: float = option(
        1.0, "scale of the mapping's initial weights on the basis bits (1: torch's, 0: zero)"
    )
    mapping_chunk: int | None = option(
        65536,
        "rows of the mapping MLP per checkpointed chunk, a power of two (0: all at once)",
        check=_power_of_two_or_zero,
    )


@dataclass
class CircuitConfig:
    qubits: int | None = option(None, "qubits N (default ceil(log2 ceil(M / k)) of the target)", minimum=1)
    blocks: int = option(8, "ansatz blocks L (RY layer + CNOT chain each)", minimum=1)
    entanglement: str = option("linear", "CNOT pattern per block (none: a product state)", choices=ENTANGLEMENTS)
    init: str = option("uniform", "angle initialization: uniform in [-s, s] or normal(0, s)", choices=ANGLE_INITS)
    init_scale: float = option(math.pi, "angle initialization scale s (radians)", minimum=0)


@dataclass
class ExecutionConfig:
    """How the circuit runs and is differentiated; each backend's own options join these fields.

    `execution_class` adds one field per key of every registered backend's ``Options`` (shots,
    noise, ibm_backend, ...), so the YAML section and its flags stay one flat list of keys.
    """

    backend: str = option("aer_statevector", "executor of the circuit (see backends.available())")
    grad: str = option(
        "auto",
        "auto (adjoint where possible, else param_shift), adjoint, param_shift or spsa",
        choices=("auto", *GRADIENTS),
    )
    device: str = option(
        "auto", "torch device for the classical side: auto, cpu, cuda, cuda:N, mps", check=_torch_device
    )
    max_shots: int | None = option(None, "refuse to start a run whose estimated total shots exceed this", minimum=1)
    spsa_perturbation: float = option(0.15, "SPSA perturbation c (radians) at step 0", above=0)
    spsa_decay: float = option(0.101, "SPSA perturbation decay: c_k = c / (k + 1)^decay")
    spsa_resamples: int = option(1, "SPSA estimates averaged per step (2 circuits each)", minimum=1)

    def __reduce__(self) -> tuple:
        # The class is built from the registry at run time: rebuild it there (pickling to workers).
        return _restore_execution, (dataclasses.asdict(self),)


_EXECUTION_CLASSES: dict[tuple, type[ExecutionConfig]] = {}


def backend_option_fields(backend_classes: dict[str, type]) -> dict[str, tuple[Any, dataclasses.Field]]:
    """The union of the backends' option fields: key -> (type, field), one per key.

    A key that two backends declare must agree in type and default (it is one flag with one
    meaning); declaring it once in a shared options base class is the way to share it.
    """
    union: dict[str, tuple[Any, dataclasses.Field, str]] = {}
    for name, cls in backend_classes.items():
        hints = typing.get_type_hints(cls.Options)
        for f in dataclasses.fields(cls.Options):
            seen = union.get(f.name)
            if seen is not None and (seen[0], seen[1].default) != (hints[f.name], f.default):
                raise ConfigError(
                    f"backend {name}: option {f.name} ({hints[f.name]}, default {f.default!r}) disagrees with "
                    f"{seen[2]}'s ({seen[0]}, default {seen[1].default!r})"
                )
            union.setdefault(f.name, (hints[f.name], f, name))
    return {key: (hint, f) for key, (hint, f, _) in union.items()}


def execution_class() -> type[ExecutionConfig]:
    """`ExecutionConfig` with a field for every registered backend's options (built once per registry)."""
    from . import backends

    classes = backends.registered()
    key = tuple(classes.items())
    if key not in _EXECUTION_CLASSES:
        taken = {f.name for cls in (*_STATIC_SECTIONS, ExecutionConfig) for f in dataclasses.fields(cls)}
        union = backend_option_fields(classes)
        clash = sorted(set(union) & (taken | set(TOP_LEVEL)))
        if clash:
            raise ConfigError(f"backend option {clash[0]!r} is already a configuration key of its own")
        specs = [(k, hint, field(default=f.default, metadata=f.metadata)) for k, (hint, f) in union.items()]
        cls = dataclasses.make_dataclass("ExecutionConfig", specs, bases=(ExecutionConfig,))
        cls.__module__ = __name__
        _EXECUTION_CLASSES[key] = cls
    return _EXECUTION_CLASSES[key]


def _restore_execution(values: dict[str, Any]) -> ExecutionConfig:
    return execution_class()(**values)


@dataclass
class TrainConfig:
    epochs: int = option(50, "training epochs", minimum=1)
    batch_size: int = option(64, "training batch size", minimum=1)
    lr: float = option(5e-4, "Adam learning rate", above=0)
    schedule: str = option("constant", "learning-rate schedule: constant, or cosine decay to 0", choices=SCHEDULES)
    weight_decay: float = option(0.0, "Adam L2 weight decay on the angles and the mapping", minimum=0)
    clip: float = option(10.0, "gradient-norm clipping over all trainable parameters", above=0)
    seed: int = option(0, "seed for initialization and shuffling")
    eval_batch_size: int = option(1000, "batch size for validation and test", minimum=1)
    checkpoint_every: int = option(
        200,
        "also checkpoint every K steps inside an epoch (0: at epoch ends only)",
        minimum=0,
    )
    max_steps: int | None = option(None, "stop after this many optimizer steps in all (hardware trials)", minimum=1)
    init_from: str | None = option(None, "start from the best weights of this run directory (fine-tuning)")
    train_shots: int | None = option(
        None,
        "exact backends: the mapping trains on P from this many shots, drawn each step",
        minimum=1,
    )
    on_nonfinite: str = option(
        "stop", "non-finite loss or gradient: stop the run, or skip the step", choices=NONFINITE_POLICIES
    )


@dataclass
class DataConfig:
    dataset: str = option("mnist", "dataset", choices=tuple(DATASETS))
    data_dir: str | None = option(None, "dataset root (default: $QTRAIN_DATA_DIR, else ./data)")
    download: bool = option(True, "download the dataset into the data root when it is missing there")
    val_fraction: float = option(0.2, "fraction of the training set held out for validation", above=0, below=1)
    split_seed: int = option(0, "seed of the train/validation split")
    train_subset: int | None = option(None, "train on only this many training images (quick runs)", minimum=1)


_STATIC_SECTIONS = (ModelConfig, CircuitConfig, TrainConfig, DataConfig)


def sections() -> dict[str, type]:
    """Section name -> its dataclass; ``execution`` holds the registered backends' options too."""
    return {
        "model": ModelConfig,
        "circuit": CircuitConfig,
        "execution": execution_class(),
        "train": TrainConfig,
        "data": DataConfig,
    }


@dataclass
class Config:
    name: str = "mnist"
    run_dir: str | None = None
    group: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    execution: ExecutionConfig = field(default_factory=lambda: execution_class()())
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


KEYS_IN_FULL = "What each key does and why, in full: docs/usage.md, section 'Configuration keys in full'."

TOP_LEVEL = {
    "name": "run name (default run directory runs/<name>_<backend>_<time>)",
    "run_dir": "run directory",
    "group": "comparison this run belongs to (its ablations and baselines share it)",
}


def _fields() -> dict[str, tuple[str | None, dataclasses.Field, Any]]:
    """Every configurable key: flat name -> (section or None, field, resolved type)."""
    hints = typing.get_type_hints(Config)
    out: dict[str, tuple[str | None, dataclasses.Field, Any]] = {
        f.name: (None, f, hints[f.name]) for f in dataclasses.fields(Config) if f.name in TOP_LEVEL
    }
    for section, cls in sections().items():
        hints = typing.get_type_hints(cls)
        out.update({f.name: (section, f, hints[f.name]) for f in dataclasses.fields(cls)})
    return out


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's type, or say which key is wrong."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if typing.get_origin(hint) is list:
            items = ([] if not value.strip() else value.split(",")) if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise TypeError
            (item_hint,) = typing.get_args(hint)
            return [coerce(item.strip() if isinstance(item, str) else item, item_hint, key) for item in items]
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, bool):
                return value
            raise TypeError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise TypeError
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def apply(config: Config, overrides: dict[str, Any], origin: str) -> Config:
    """Set flat or sectioned keys on ``config``; unknown keys are an error naming them."""
    known, section_classes = _fields(), sections()
    for key, value in overrides.items():
        if isinstance(value, dict) and key in section_classes:
            section_fields = {f.name for f in dataclasses.fields(section_classes[key])}
            unknown = sorted(set(value) - section_fields)
            if unknown:
                raise ConfigError(
                    f"unknown key {key}.{unknown[0]} in {origin}; known: {', '.join(sorted(section_fields))}"
                )
            apply(config, value, origin)
            continue
        if key not in known:
            raise ConfigError(f"unknown key {key!r} in {origin}")
        section, _, hint = known[key]
        target = config if section is None else getattr(config, section)
        setattr(target, key, coerce(value, hint, key))
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping stored in a YAML file, or a one-line error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    return data


def check_section(settings: Any) -> None:
    """Every field of the dataclass ``settings`` holds a value its declaration allows (one line naming it)."""
    for f in dataclasses.fields(settings):
        try:
            check_value(f, getattr(settings, f.name))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def validate(config: Config) -> Config:
    """Check choices and ranges once, at the edge; raise ConfigError naming the first problem."""
    import torch

    from .targets import check_target

    for section in sections():
        check_section(getattr(config, section))
    try:
        check_target(config.model.target)
    except ValueError as exc:
        raise ConfigError(f"target: {exc}") from None
    check_execution(config)
    check_quantum_stage(config)
    if config.train.train_shots is not None and config.model.method != "quantum_train":
        raise ConfigError("train_shots: the classical method executes no circuit")
    if config.execution.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {config.execution.device} asked for, but torch sees no CUDA device here")
    check_size(config)
    return config


def check_execution(config: Config) -> None:
    """The backend exists, every backend option holds a valid value (whichever backend reads it), the
    chosen backend's options agree with each other, and the gradient asked for exists there.

    A key the chosen backend does not read is ignored, unless its option says a non-default value
    there is an error (``mitigation`` on a backend without device readout).
    """
    from . import backends
    from .backends.options import check_value

    execution = config.execution
    if execution.backend not in backends.available():
        raise ConfigError(f"backend: unknown {execution.backend!r}; available: {', '.join(backends.available())}")
    cls = backends.backend_class(execution.backend)
    own = {f.name for f in dataclasses.fields(cls.Options)}
    core = {f.name for f in dataclasses.fields(ExecutionConfig)}
    try:
        for f in (f for f in dataclasses.fields(execution) if f.name not in core):
            value = getattr(execution, f.name)
            check_value(f, value)
            if f.name not in own and value != f.default and "if_unused" in f.metadata:
                raise ValueError(f"{f.name}: {f.metadata['if_unused'](cls, value)}")
        backends.options_for(execution.backend, execution)
        gradient_method(cls, execution.grad)
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None


def check_size(config: Config) -> None:
    """The target's weights fit the circuit's outcomes, and the circuit fits the backend."""
    import torch

    from . import backends
    from .ansatz import qubits_for, states_for
    from .targets import build_target, count_parameters

    with torch.random.fork_rng(devices=[]):  # building the target to count M must not move the run's seed
        weights = count_parameters(build_target(config.model.target))
    per_state = config.model.weights_per_state
    if not 1 <= per_state <= weights:
        raise ConfigError(
            f"weights_per_state: {per_state} is not between 1 and the {weights} weights of {config.model.target}"
        )
    if config.circuit.qubits is not None and 2**config.circuit.qubits < states_for(weights, per_state):
        raise ConfigError(
            f"qubits: 2^{config.circuit.qubits} = {2**config.circuit.qubits} outcomes cannot address "
            f"the {weights} weights of {config.model.target}; need at least {qubits_for(weights, per_state)}"
            + (f" at {per_state} weights per state" if per_state > 1 else "")
        )
    backend = backends.backend_class(config.execution.backend)
    qubits = config.circuit.qubits or qubits_for(weights, per_state)
    if config.model.quantum == "classical_generator":  # sized from the qubits counted here
        check_generator_budget(qubits, config.circuit.blocks)
    if not 0 <= config.model.head_bits <= qubits:
        raise ConfigError(f"head_bits: {config.model.head_bits} is not between 0 and the model's {qubits} qubits")
    if backend.max_qubits is not None and qubits > backend.max_qubits:
        raise ConfigError(
            f"backend: {backend.name} {backend.max_qubits_reason} of at most {backend.max_qubits} qubits; this model "
            f"has {qubits} (raise --weights-per-state, e.g. 64 gives 7 qubits for mnist_cnn)"
        )


def check_generator_budget(qubits: int, blocks: int) -> None:
    """The classical generator matches the circuit it replaces to within 10% of its angles, or the
    comparison would not be at equal budget (its size moves in steps of N + 2: shallow circuits miss)."""
    from .generator import generator_size

    angles = qubits * blocks
    size = generator_size(qubits, angles)
    if abs(size - angles) > 0.1 * angles:
        raise ConfigError(
            f"quantum: classical_generator has {size} parameters for a circuit of {angles} angles, not within "
            f"10% (its size moves in steps of qubits + 2 = {qubits + 2}); use at least 5 blocks"
        )


def check_quantum_stage(config: Config) -> None:
    """An ablation belongs to a Quantum-Train run, and one without a circuit to an exact backend.

    A sampled or paid backend would be asked to run nothing: refusing says so before any cost. The
    bits-only mapping cannot start with zero bit weights (issue 13's default for the QT model, where
    the probability feature varies the start): it would have no varying input at all.
    """
    from . import backends

    stage, backend = config.model.quantum, config.execution.backend
    if stage != "trained" and config.model.method == "classical":
        raise ConfigError(f"quantum: {stage} is an ablation of quantum_train; --method classical has no quantum stage")
    if stage == "none" and config.model.bit_init_scale == 0:
        raise ConfigError(
            "quantum: none leaves the basis bits as the mapping's only input, and --bit-init-scale 0 starts "
            "their weights at zero (every generated weight equal): use --bit-init-scale 1 (torch's default init)"
        )
    for key in STAGES[stage].refuses:
        if getattr(config.circuit, key) != CircuitConfig.__dataclass_fields__[key].default:
            raise ConfigError(
                f"quantum: {stage} has no circuit, so it cannot honour {key} = {getattr(config.circuit, key)!r}; "
                f"leave {key} at its default (its size follows qubits and blocks only)"
            )
    if stage in NO_CIRCUIT and not backends.backend_class(backend).exact:
        raise ConfigError(
            f"quantum: {stage} executes no circuit, so the sampled backend {backend} has nothing to run; "
            f"use an exact backend ({', '.join(n for n in backends.available() if backends.backend_class(n).exact)})"
        )


class StrictParser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigError: one line and exit 2 through `run_main`; its
    --help has a short usage line and one line per option (`helptext.OneLineHelp`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"formatter_class": OneLineHelp, **kwargs})

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(message)


def add_field_flags(
    parser: argparse.ArgumentParser, fields: typing.Iterable[dataclasses.Field], groups: dict[str, Any] | None = None
) -> None:
    """One ``--flag-name`` per field, unparsed (typed later by `coerce`), absent unless given; in
    ``groups[field name]`` (a help group) where given."""
    for f in fields:
        help_text = TOP_LEVEL.get(f.name) or f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, list):  # as it is typed on the command line
            default = ",".join(map(str, default))
        (groups or {}).get(f.name, parser).add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            default=argparse.SUPPRESS,
            help=f"{help_text} [{default}]",
            metavar=_metavar(f),
        )


_METAVARS = {"int": "INT", "float": "FLOAT", "bool": "BOOL", "str": "TEXT"}


def _metavar(f: dataclasses.Field) -> str:
    """What the flag takes, from the field's type (INT, FLOAT, BOOL, TEXT; INT,... for a list): the key
    again (--batch-size BATCH_SIZE) says nothing new and pushes the help column 20 columns right."""
    hint = f.type  # a string under `from __future__ import annotations`, else the type itself
    if not isinstance(hint, str):  # list[int] and int | None print as written; int prints as <class 'int'>
        hint = str(hint) if typing.get_origin(hint) is not None else hint.__name__
    hint = hint.replace("| None", "").replace("None |", "").strip()
    inner = hint[5:-1] if hint.startswith("list[") and hint.endswith("]") else None
    if inner is not None and inner in _METAVARS:
        return f"{_METAVARS[inner]},..."
    return _METAVARS.get(hint, f.name.upper())


def build_parser(
    description: str, extra: typing.Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.ArgumentParser:
    """A parser with ``--config`` and one flag per configuration key (values parsed later), grouped
    in --help by section; the command's own flags (``extra``) come first, under "options". Each help
    says what a key is in one line; the epilog points to where each says why, in full."""
    parser = StrictParser(description=description, epilog=KEYS_IN_FULL, allow_abbrev=False)
    parser.add_argument("--config", metavar="FILE", help="YAML file with the keys to change from the defaults")
    fields = _fields()
    groups = add_groups(parser, sectioned_keys({key: section for key, (section, _, _) in fields.items()}))
    add_field_flags(parser, (f for _, f, _ in fields.values()), groups)
    if extra is not None:
        extra(parser)
    return parser


def apply_flat(settings: Any, values: dict[str, Any], origin: str) -> Any:
    """Set the fields of a flat settings dataclass from YAML or flags; unknown keys are an error."""
    hints = typing.get_type_hints(type(settings))
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown key {key!r} in {origin}; known: {', '.join(sorted(hints))}")
        setattr(settings, key, coerce(value, hints[key], key))
    return settings


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration keys given on the command line (unparsed strings)."""
    return {key: value for key, value in vars(args).items() if key in _fields()}


def from_yaml_and_flags(config_file: str | None, values: dict[str, Any]) -> Config:
    """Defaults, then ``config_file``, then flat ``values`` (e.g. one point of a grid); not validated."""
    config = Config()
    if config_file:
        apply(config, load_yaml(config_file), config_file)
    return apply(config, values, "command line")


def from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Defaults (or ``base``), then ``--config`` file, then flags; validated."""
    config = base if base is not None else Config()
    if getattr(args, "config", None):
        apply(config, load_yaml(args.config), args.config)
    return validate(apply(config, flag_values(args), "command line"))


def to_yaml(config: Config) -> str:
    """YAML text of the resolved configuration, loadable by `apply`."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
