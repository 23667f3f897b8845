import math

import pytest
from qiskit.circuit import ParameterVector

from qtrain_qiskit.ansatz import build_ansatz, qubits_for


def test_structure_and_parameter_order():
    circuit = build_ansatz(4, 3)
    assert circuit.num_qubits == 4
    assert circuit.num_parameters == 12
    names = [instruction.operation.name for instruction in circuit.data]
    assert names == (["ry"] * 4 + ["cx"] * 3) * 3
    theta = ParameterVector("theta", 12)
    # theta[b * N + q] is the RY of qubit q in block b, and circuit.parameters follows that order
    assert [p.name for p in circuit.parameters] == [p.name for p in theta]
    rys = [ins for ins in circuit.data if ins.operation.name == "ry"]
    for k, ins in enumerate(rys):
        block, qubit = divmod(k, 4)
        assert ins.operation.params[0].name == f"theta[{block * 4 + qubit}]"
        assert circuit.find_bit(ins.qubits[0]).index == qubit
    cxs = [[circuit.find_bit(q).index for q in ins.qubits] for ins in circuit.data if ins.operation.name == "cx"]
    assert cxs[:3] == [[0, 1], [1, 2], [2, 3]]


def test_circular_adds_wraparound():
    circuit = build_ansatz(4, 2, "circular")
    cxs = [[circuit.find_bit(q).index for q in ins.qubits] for ins in circuit.data if ins.operation.name == "cx"]
    assert cxs == [[0, 1], [1, 2], [2, 3], [3, 0]] * 2


@pytest.mark.parametrize(("weights", "qubits"), [(1, 1), (2, 1), (3, 2), (4096, 12), (4097, 13), (6676, 13)])
def test_qubits_for(weights, qubits):
    assert qubits_for(weights) == qubits
    assert 2**qubits >= weights
    assert qubits == 1 or 2 ** (qubits - 1) < weights


def test_too_few_qubits_is_a_clear_error():
    with pytest.raises(ValueError, match="use at least 13 qubits"):
        build_ansatz(12, 8, num_weights=6676)
    assert build_ansatz(13, 1, num_weights=6676).num_qubits == math.ceil(math.log2(6676))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_qubits": 0, "num_blocks": 1},
        {"num_qubits": 2, "num_blocks": 0},
        {"num_qubits": 2, "num_blocks": 1, "entanglement": "full"},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        build_ansatz(**kwargs)
