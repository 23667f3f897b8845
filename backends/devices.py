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


def to_isa(circuit: QuantumCircuit, device: BackendV2, *, seed: int | None = None) -> QuantumCircuit:
    """Measure every logical qubit (clbit k <- logical qubit k), then transpile for ``device``.

    Measuring before layout and routing lets the transpiler carry each measurement to wherever its
    qubit ends up, so outcome bits index logical outcomes directly whatever the final layout.
    """
    measured = circuit.remove_final_measurements(inplace=False)
    measured.measure_all()
    manager = generate_preset_pass_manager(optimization_level=1, backend=device, seed_transpiler=seed)
    return manager.run(measured)


def check_device_name(name: str | None) -> str | None:
    """Why ``name`` cannot name a device (an unknown ``fake_*``), or None; real names are checked on use."""
    if name and name.startswith("fake_") and name not in fake_device_names():
        return f"unknown fake device {name!r}; available: {', '.join(fake_device_names())}"
    return None
