"""IBM devices by name, and circuits made ready for them (shared by noisy simulation and hardware).

`to_isa` is the one pass manager used for every device run, so a noisy simulation of a fake
device executes the same instructions on the same layout as the hardware path would.
"""

from __future__ import annotations

import inspect
import re

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer.noise import NoiseModel


def _fake_classes() -> dict[str, type]:
    import qiskit_ibm_runtime.fake_provider as provider

    out = {}
    for name, cls in vars(provider).items():
        if inspect.isclass(cls) and re.fullmatch(r"Fake[A-Z][a-z]+(V2)?", name) and issubclass(cls, BackendV2):
            out[re.sub(r"V2$", "", name).replace("Fake", "fake_").lower()] = cls
    return out


def fake_device_names() -> list[str]:
    """Names accepted by `fake_device`, e.g. fake_torino, fake_sherbrooke, fake_guadalupe."""
    return sorted(_fake_classes())


def fake_device(name: str) -> BackendV2:
    """A `qiskit_ibm_runtime.fake_provider` device (snapshot of a real one: layout, gates, noise)."""
    classes = _fake_classes()
    if name not in classes:
        raise ValueError(f"unknown fake device {name!r}; available: {', '.join(sorted(classes))}")
    return classes[name]()


def device_noise_model(device: BackendV2, qubits: list[int] | None = None) -> NoiseModel:
    """The noise a fake device simulates itself with: what its ``run``, qiskit-ibm-runtime's local
    mode and M3's calibration on it all see.

    With ``qubits``, the gate errors of the gates on those qubits only (readout and relaxation still
    for every qubit): the same errors for them, built by the same code from the snapshot's gates
    restricted to them. Building the whole model spends ~95% of its 10-20 s in the gate errors of
    1,400 gates; every user here restricts it to the circuit's active qubits afterwards anyway.

    Aer's `NoiseModel.from_backend` reads the device's target, whose one ``measure`` error per qubit
    is the mean of the two readout errors, so every readout comes out symmetric. The snapshot keeps
    both (prob_meas1_prep0, prob_meas0_prep1) and they can differ widely: fake_sherbrooke's qubit 6
    reads 1 for a prepared 0 half the time and 0 for a 1 once in a hundred, where the symmetric model
    says 26% both ways. Simulated with that model, the device was not the one M3 calibrated on, and
    M3 looked harmful on fake_sherbrooke. The fake backend builds its model in a private method;
    the public `NoiseModel.from_backend_properties` fails on Heron snapshots (no qubit frequencies).
    """
    build = getattr(device, "_get_noise_model_from_backend_v2", None)
    if build is None:
        return NoiseModel.from_backend(device)
    if qubits is None:
        return build()
    if device._props_dict is None:
        device._set_props_dict_from_json()
    whole, kept = device._props_dict, set(qubits)
    device._props_dict = {**whole, "gates": [gate for gate in whole["gates"] if set(gate["qubits"]) <= kept]}
    try:
        return build()
    finally:
        device._props_dict = whole


_NOISE_MODELS: dict[tuple[str, tuple[int, ...] | None], NoiseModel] = {}


def cached_noise_model(name: str, device: BackendV2, qubits: list[int] | None = None) -> NoiseModel:
    """`device_noise_model` of the device called ``name``, built once per process for each set of qubits
    (the whole device's, if that was built, serves every set)."""
    whole = _NOISE_MODELS.get((name, None))
    key = (name, None if qubits is None else tuple(sorted(qubits)))
    if whole is not None:
        return whole
    if key not in _NOISE_MODELS:
        _NOISE_MODELS[key] = device_noise_model(device, qubits)
    return _NOISE_MODELS[key]


def to_isa(
    circuit: QuantumCircuit, device: BackendV2, *, seed: int | None = None, optimization_level: int = 2
) -> QuantumCircuit:
    """Measure every logical qubit (clbit k <- logical qubit k), then transpile for ``device``.

    Measuring before layout and routing lets the transpiler carry each measurement to wherever its
    qubit ends up, so outcome bits index logical outcomes directly whatever the final layout.

    Level 2 by default, not 1: level 1 keeps the trivial layout (qubits 0..n-1) whenever the circuit fits it
    without swaps, whatever their errors. For the 7-qubit CNOT chain that put fake_sherbrooke's
    broken coupler (ECR 6-5, error 1.0) and its 26%-readout qubit 6 under the circuit; level 2's
    noise-aware VF2 layout picks the best-scoring chain (there: worst ECR 0.6%, worst readout 2.2%).
    """
    measured = circuit.remove_final_measurements(inplace=False)
    measured.measure_all()
    manager = generate_preset_pass_manager(optimization_level=optimization_level, backend=device, seed_transpiler=seed)
    return manager.run(measured)


def check_device_name(name: str | None) -> str | None:
    """Why ``name`` cannot name a device (an unknown ``fake_*``), or None; real names are checked on use."""
    if name and name.startswith("fake_") and name not in fake_device_names():
        return f"unknown fake device {name!r}; available: {', '.join(fake_device_names())}"
    return None
