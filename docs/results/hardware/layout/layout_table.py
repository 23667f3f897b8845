"""The layout table of docs/hardware.md: where each transpiler level puts the device configuration's
7-qubit, 8-block chain, and the snapshot's errors there (run from the repository root).

    python docs/results/hardware/layout/layout_table.py
"""

from qtrain_qiskit.backends.devices import fake_device, to_isa

from qtrain_qiskit.ansatz import build_ansatz

print("| device, level | physical qubits | worst two-qubit error | sum of two-qubit errors | worst readout error |")
print("|---|---|---|---|---|")
for name in ("fake_sherbrooke", "fake_torino", "fake_fez"):
    device = fake_device(name)
    target = device.target
    gate = "ecr" if "ecr" in target.operation_names else "cz"
    for level in (1, 2):
        isa = to_isa(build_ansatz(7, 8), device, seed=0, optimization_level=level)
        layout = isa.layout.final_index_layout()
        errors = [
            target[gate][tuple(isa.find_bit(q).index for q in ins.qubits)].error
            for ins in isa.data
            if ins.operation.name == gate
        ]
        readout = max(target["measure"][(q,)].error for q in layout)
        qubits = ", ".join(map(str, layout))
        print(f"| {name}, {level} | {qubits} | {max(errors):.4f} | {sum(errors):.3f} | {readout:.3f} |")
