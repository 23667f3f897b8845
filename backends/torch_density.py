"""Exact noisy simulation in torch: the density matrix of `aer_density`'s circuit, differentiable.

`aer_density` gives the exact noisy distribution of a device's (compacted) circuit, but Aer has no
reverse pass: training through it costs 2P density-matrix runs a step (parameter shift). This
engine runs the very same `NoisySimulation` (the ISA circuit compacted onto its active qubits, the
device's gate errors and relaxation restricted to them, the asymmetric readout matrices; built by
`aer_density` itself) as torch operations, so the gradient is one reverse pass (autograd).

The density matrix is held as its real coordinates in the normalized Pauli basis: a vector over 4^n
entries, one axis of 4 per qubit (I, X, Y, Z), so an operation on k qubits is a real 4^k x 4^k
Pauli transfer matrix applied to k axes (real arithmetic: complex batched products were 50x slower
here). Five things make it fast:

- every instruction is a channel (gate, then its error; the noise model's passes add relaxation
  after delays): fixed ones become superoperators once, in numpy, when the circuit is compiled;
- the single-qubit channels on a qubit between two of its two-qubit gates form a *chain*; all
  chains are multiplied out in one vectorized pass per position (the angles enter there), then each
  chain is folded into the two-qubit gate that follows it, so the state sees one 16 x 16 product per
  two-qubit gate and nothing else;
- the final chains, the readout matrices and the extraction of the diagonal form one 2 x 4 map per
  qubit, applied to the state at the end;
- the state's axes are laid out along the circuit's interaction path when there is one (`plan_gates`),
  so each two-qubit gate is a matrix product on two neighbouring axes, in place: no permutation (a
  copy of the whole state, 28% of the CPU time when every gate was permuted to the last axes);
- the gates run as one autograd node with a written reverse pass (`_GateSequence`), their states in
  one buffer reused from step to step: a fresh 128 KiB state is a new memory mapping whose pages fault
  in (raising glibc's mmap threshold had cut the old engine's forward + backward by ~40%).

Precision (option ``density_precision``): float32 by default, the torch engines' training precision
(it agrees with `aer_density` to ~1e-6, tested, for a step ~1.3x cheaper than float64); float64 is the
precision of the 1e-10 agreement, for checks and for reproducing runs trained before float32 became the
default (`configs/mnist_quantum.yaml` pins it). MPS has no float64, so float32 there whatever the option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Instruction
from qiskit.quantum_info import Kraus, Operator
from qiskit_aer.noise import NoiseModel, QuantumError

from .aer import AerDensityBackend, NoiseOptions
from .base import Backend
from .noisy_simulation import MAX_DENSITY_QUBITS, NoisySimulation
from .options import option
from .registry import register
from .torch_statevector import PARAMETERIZED_GATES, _angle_reference, _gate_matrices

IGNORED = ("barrier", "measure", "delay")  # delay's relaxation is the channel the noise passes add after it
POOL_BYTES = 64 * 2**20  # state buffers a compiled circuit keeps between steps (`_Lease`)
AER_ERROR_THRESHOLD = 1e-10  # qiskit-aer's QuantumError threshold (C++ default), see `_kraus`
PAULIS = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
# From the entries rho[r, c] (index 2r + c) of one qubit to its coordinates Tr(P_i rho) / sqrt(2).
TO_PAULI = PAULIS.transpose(0, 2, 1).reshape(4, 4) / np.sqrt(2)
EXTRACT = np.array([[1.0, 0, 0, 1], [1, 0, 0, -1]]) / np.sqrt(2)  # Pauli coordinates -> rho[0, 0], rho[1, 1]
GROUND = np.array([1.0, 0, 0, 1]) / np.sqrt(2)  # |0><0|


def pauli_transfer(kraus: list[np.ndarray]) -> np.ndarray:
    """The real Pauli transfer matrix R[L', L] of a channel on k qubits given by Kraus matrices (Qiskit's
    little-endian order), with L = sum_j i_j 4^j over the channel's qubits j and Pauli indices i_j."""
    k = int(np.log2(kraus[0].shape[0]))
    index = np.arange(4**k)
    pairs = (index[:, None] >> (2 * np.arange(k))) & 3
    rows = ((pairs >> 1) << np.arange(k)).sum(axis=1)
    cols = ((pairs & 1) << np.arange(k)).sum(axis=1)
    superop = sum(m[rows[:, None], rows[None, :]] * m[cols[:, None], cols[None, :]].conj() for m in kraus)
    change = np.ones((1, 1))
    for _ in range(k):
        change = np.kron(TO_PAULI, change)  # qubit j at 4^j: the first qubit least significant
    return (change @ superop @ change.conj().T).real


def _error_kraus(noise: NoiseModel, name: str, qubits: tuple[int, ...], cache: dict) -> list[np.ndarray] | None:
    """The Kraus matrices of the error the noise model applies after ``name`` on ``qubits``, as Aer
    looks it up: the local error for exactly these qubits (in this order) first, else the all-qubit one."""
    error = noise._local_quantum_errors.get(name, {}).get(qubits, noise._default_quantum_errors.get(name))
    if error is None:
        return None
    if id(error) not in cache:
        cache[id(error)] = (error, _kraus(error))
    return cache[id(error)][1]


def _kraus(error: QuantumError) -> list[np.ndarray]:
    """Kraus matrices of ``error`` as Aer simulates it: Aer drops the terms of a mixture whose
    probability is at most `AER_ERROR_THRESHOLD` (not renormalized; ~1e-11 per CZ on fake_torino, 7e-10
    on the device configuration's outcome probabilities), so the same terms are dropped here."""
    kept = [(p, c) for p, c in zip(error.probabilities, error.circuits, strict=True) if p > AER_ERROR_THRESHOLD]
    return [np.sqrt(p) * np.asarray(m) for p, circuit in kept for m in Kraus(circuit).data]


@dataclass
class _Element:
    """One factor of a single-qubit chain: a fixed 4x4 Pauli transfer matrix, or a parameterized gate."""

    fixed: np.ndarray | None = None
    kind: str = ""
    reference: tuple[int, float, float] | None = None  # (parameter column, scale, offset)


@dataclass
class _Group:
    """Chain factors at the same position, built together: fixed matrices or one gate kind."""

    slots: torch.Tensor
    matrices: torch.Tensor | None = None  # (s, 4, 4) for fixed factors
    kind: str = ""
    param_index: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    offset: torch.Tensor | None = None


def _path_order(pairs: list[tuple[int, int]], n: int) -> list[int] | None:
    """The qubits along a path, if the two-qubit gates' interaction graph is one (idle qubits after)."""
    neighbours: dict[int, set[int]] = {q: set() for q in range(n)}
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    touched = [q for q in range(n) if neighbours[q]]
    ends = [q for q in touched if len(neighbours[q]) == 1]
    if len(ends) != 2 or any(len(v) > 2 for v in neighbours.values()):
        return None  # a cycle, a branch or no gate
    order = [ends[0]]
    while len(order) < len(touched):
        following = [q for q in neighbours[order[-1]] if q not in order]
        if not following:
            return None  # more than one component
        order.append(following[0])
    return order + [q for q in range(n) if not neighbours[q]]


@dataclass(frozen=True)
class _Step:
    """How one two-qubit gate reaches the state: an axis permutation first (or none), then the gate in
    place on axes (position, position + 1); ``swap`` when the gate's first qubit is on the first axis."""

    permutation: tuple[int, ...] | None
    position: int
    swap: bool
    before: int = 1  # entries of the axes before the gate's, and after them
    after: int = 1
    inverse: tuple[int, ...] | None = None  # of ``permutation``, for the reverse pass


def plan_gates(pairs: list[tuple[int, int]], n: int) -> tuple[list[_Step], list[int]]:
    """Axis moves for the two-qubit gates: none while a gate's qubits sit on neighbouring axes.

    The axes start in the order of the interaction path when there is one (the entangling chain of the
    usual ansatz on a device's line of qubits: then no gate needs a permutation, a copy of the whole
    state); a gate whose qubits are apart moves them to the last two axes. Returns the steps and the
    qubit on each axis after the last gate.
    """
    order = _path_order(pairs, n) or list(reversed(range(n)))
    steps = []
    for a, b in pairs:
        permutation = None
        if abs(order.index(a) - order.index(b)) != 1:
            new = [q for q in order if q not in (a, b)] + [b, a]
            permutation, order = tuple(order.index(q) for q in new), new
        pa, pb = order.index(a), order.index(b)
        inverse = None if permutation is None else tuple(int(i) for i in np.argsort(permutation))
        position = min(pa, pb)
        steps.append(_Step(permutation, position, pa < pb, 4**position, 4 ** (n - 2 - position), inverse))
    return steps, order


def plan_merges(steps: list[_Step], n: int) -> list[tuple[int, ...]]:
    """The gates as the state sees them: one gate ``(k,)``, or two ``(k, k + 1)`` folded into one 64 x 64
    transfer matrix on three axes.

    A gate on the last two axes and one on the two before them, one after the other in either order
    (the entangling ladder of the usual ansatz reaches the end of the axes once a block), become one
    product of the state's
    (4^(n-3), 64) rows with a 64 x 64 matrix: 4x the arithmetic of one 16 x 16 gate in 2-3x less time
    than the two gates took (the second, on a 4-entry trailing axis, is the slowest position: its
    16 x 16 product runs as a 4x wider one). Elsewhere a 64 x 64 product cost more than the two gates.
    """
    groups, k = [], 0
    while k < len(steps):
        first, second = steps[k], steps[k + 1] if k + 1 < len(steps) else None
        if (
            n >= 3
            and second is not None
            and first.permutation is None
            and second.permutation is None
            and {first.position, second.position} == {n - 3, n - 2}
        ):
            groups.append((k, k + 1))
            k += 2
        else:
            groups.append((k,))
            k += 1
    return groups


@dataclass
class NoisyProgram:
    """A compiled noisy circuit: chains by position, two-qubit transfer matrices, the final maps."""

    num_qubits: int
    num_slots: int = 0
    positions: list[list[_Group]] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (a, b) of each two-qubit gate, in order
    steps: list[_Step] = field(default_factory=list)  # how each reaches the state (`plan_gates`)
    groups: list[tuple[int, ...]] = field(default_factory=list)  # gates applied together (`plan_merges`)
    single: torch.Tensor | None = None  # the gates applied alone, and the first / second of merged pairs
    merged_first: torch.Tensor | None = None
    merged_second: torch.Tensor | None = None
    merged_up: torch.Tensor | None = None  # (merged,) bool: the first of the pair on (x, y), not (y, z)
    swapped: torch.Tensor | None = None  # (pairs,) bool: the gate's factors exchanged (`_Step.swap`)
    any_swapped: bool = False
    up_kinds: frozenset[bool] = frozenset()  # the values in ``merged_up``
    gate_order: list[int] = field(default_factory=list)  # the qubit on each axis after the last one
    pool: list[torch.Tensor] = field(default_factory=list)  # state buffers reused between steps (`_Lease`)
    pair_slots: torch.Tensor | None = None  # (pairs, 2): chain slots of a and b before the gate
    pair_matrices: torch.Tensor | None = None  # (pairs, 16, 16)
    final_slots: torch.Tensor | None = None  # (n,): each qubit's last chain
    final_maps: torch.Tensor | None = None  # (n, rows, 4): readout^T x extraction (rows 2 if measured, 1 if traced)
    # measured qubits from the most significant outcome bit down, then the unmeasured (traced out)
    output_order: list[int] = field(default_factory=list)
    num_measured: int = 0
    initial: torch.Tensor | None = None  # (1, 4, ..., 4): |0...0><0...0| in Pauli coordinates
    to_pauli: torch.Tensor | None = None  # TO_PAULI, for the parameterized gates' transfer matrices


class _Compiler:
    """Walks the noisy circuit once: chains per qubit, closed by each two-qubit gate."""

    def __init__(self, circuit: QuantumCircuit, noise: NoiseModel) -> None:
        self.circuit, self.noise, self.cache = circuit, noise, {}
        self.index = {p: j for j, p in enumerate(circuit.parameters)}
        self.chains: list[list[_Element]] = []
        self.open = [self._new_chain() for _ in range(circuit.num_qubits)]
        self.pairs: list[tuple[int, int, int, int, np.ndarray]] = []

    def _new_chain(self) -> int:
        self.chains.append([])
        return len(self.chains) - 1

    def _push(self, qubit: int, element: _Element) -> None:
        chain = self.chains[self.open[qubit]]
        if element.fixed is not None and chain and chain[-1].fixed is not None:
            chain[-1] = _Element(element.fixed @ chain[-1].fixed)  # consecutive fixed factors: one matrix
        else:
            chain.append(element)

    def add(self, operation: Instruction, qubits: tuple[int, ...]) -> None:
        """One instruction: the gate, then the error the noise model applies after it."""
        name, parameterized = operation.name, operation.is_parameterized()
        if parameterized:
            if len(qubits) != 1 or name not in PARAMETERIZED_GATES or len(operation.params) != 1:
                raise ValueError(f"the noisy torch engine cannot simulate the parameterized gate {name!r}")
            self._push(qubits[0], _Element(kind=name, reference=_angle_reference(operation.params[0], self.index)))
            kraus = [np.eye(2)]  # its error, if any, follows as a fixed factor
        elif name == "quantum_channel":  # relaxation added by the noise model's passes
            kraus = _kraus(operation._quantum_error)
        elif len(qubits) > 2:
            raise ValueError(f"the noisy torch engine cannot simulate {name!r} on {len(qubits)} qubits")
        else:
            kraus = [Operator(operation).data]
        error = _error_kraus(self.noise, name, qubits, self.cache)
        if error is None and parameterized:
            return
        if error is not None:
            kraus = [e @ k for e in error for k in kraus]
        if len(qubits) == 1:
            self._push(qubits[0], _Element(pauli_transfer(kraus)))
        else:
            a, b = qubits
            self.pairs.append((a, b, self.open[a], self.open[b], pauli_transfer(kraus)))
            self.open[a], self.open[b] = self._new_chain(), self._new_chain()


def compile_noisy(simulation: NoisySimulation, real: torch.dtype, device: torch.device) -> NoisyProgram:
    """Compile ``simulation`` (from `aer_density`'s preparation) into a `NoisyProgram`."""
    circuit, noise = simulation.circuit, simulation.noise_model
    manager = noise._pass_manager()
    noisy = manager.run(circuit) if manager is not None else circuit
    compiler = _Compiler(noisy, noise)
    measured = {}
    for instruction in noisy.data:
        qubits = tuple(noisy.find_bit(q).index for q in instruction.qubits)
        if instruction.operation.name == "measure":
            measured[qubits[0]] = noisy.find_bit(instruction.clbits[0]).index
        if instruction.operation.name not in IGNORED:
            compiler.add(instruction.operation, qubits)
    return _assemble(compiler, measured, simulation.readout, real, device)


def _positions(chains: list[list[_Element]], real: torch.dtype, device: torch.device) -> list[list[_Group]]:
    """The chains' factors grouped by position: at each, the fixed ones together and each gate kind."""
    tensor = lambda values, dtype=real: torch.tensor(values, dtype=dtype, device=device)  # noqa: E731
    positions = []
    for position in range(max((len(chain) for chain in chains), default=0)):
        members: dict[str, list] = {}
        for slot, chain in enumerate(chains):
            if position < len(chain):
                element = chain[position]
                members.setdefault("fixed" if element.fixed is not None else element.kind, []).append((slot, element))
        groups = []
        for kind, items in members.items():
            slots = tensor([s for s, _ in items], torch.int64)
            if kind == "fixed":
                groups.append(_Group(slots, tensor(np.stack([e.fixed for _, e in items]))))
            else:
                refs = np.array([e.reference for _, e in items])
                column, scale, offset = tensor(refs[:, 0].astype(np.int64), torch.int64), refs[:, 1], refs[:, 2]
                groups.append(_Group(slots, None, kind, column, tensor(scale), tensor(offset)))
        positions.append(groups)
    return positions


def _assemble(
    compiler: _Compiler, measured: dict[int, int], readout: np.ndarray, real: torch.dtype, device: torch.device
) -> NoisyProgram:
    """Turn the compiler's chains and pairs into tensors, and add the final maps and the initial state."""
    n = compiler.circuit.num_qubits
    program = NoisyProgram(n, num_slots=len(compiler.chains), positions=_positions(compiler.chains, real, device))
    program.pairs = [(a, b) for a, b, *_ in compiler.pairs]
    program.steps, program.gate_order = plan_gates(program.pairs, n)
    program.groups = plan_merges(program.steps, n)
    index = lambda values: torch.tensor(values, dtype=torch.int64, device=device)  # noqa: E731
    program.single = index([g[0] for g in program.groups if len(g) == 1])
    program.merged_first = index([g[0] for g in program.groups if len(g) == 2])
    program.merged_second = index([g[1] for g in program.groups if len(g) == 2])
    up = [program.steps[g[0]].position == n - 3 for g in program.groups if len(g) == 2]
    program.merged_up, program.up_kinds = torch.tensor(up, dtype=torch.bool, device=device), frozenset(up)
    program.swapped = torch.tensor([step.swap for step in program.steps], dtype=torch.bool, device=device)
    program.any_swapped = any(step.swap for step in program.steps)
    program.pair_slots = torch.tensor([[sa, sb] for _, _, sa, sb, _ in compiler.pairs], device=device).reshape(-1, 2)
    matrices = np.stack([m for *_, m in compiler.pairs]) if compiler.pairs else np.zeros((0, 16, 16))
    program.pair_matrices = torch.tensor(matrices, dtype=real, device=device)
    program.final_slots = torch.tensor(compiler.open, device=device)
    clbits = sorted(measured.values())
    by_clbit = {clbit: qubit for qubit, clbit in measured.items()}
    maps = [readout[measured[q]].T @ EXTRACT if q in measured else None for q in range(n)]
    rows = max((m.shape[0] for m in maps if m is not None), default=2)
    program.final_maps = torch.tensor(
        np.stack([m if m is not None else np.pad([[np.sqrt(2), 0, 0, 0]], ((0, rows - 1), (0, 0))) for m in maps]),
        dtype=real,
        device=device,
    )
    program.output_order = [by_clbit[k] for k in reversed(clbits)] + [q for q in range(n) if q not in measured]
    program.num_measured = len(clbits)
    initial = np.ones(1)
    for _ in range(n):
        initial = np.kron(GROUND, initial)
    program.initial = torch.tensor(initial, dtype=real, device=device).reshape(1, *([4] * n))
    complex_dtype = torch.complex128 if real == torch.float64 else torch.complex64
    program.to_pauli = torch.tensor(TO_PAULI, dtype=complex_dtype, device=device)
    return program


def _transfer_1q(kind: str, angles: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) Pauli transfer matrices of parameterized single-qubit gates: T (U (x) conj U) T^dagger."""
    u = _gate_matrices(kind, angles, change.dtype)
    superop = (u[..., :, None, :, None] * u.conj()[..., None, :, None, :]).reshape(*u.shape[:-2], 4, 4)
    return (change @ superop @ change.conj().T).real


def _chains(program: NoisyProgram, values: torch.Tensor) -> torch.Tensor:
    """Every chain's product (slots, B, 4, 4), one vectorized pass per position."""
    batch = values.shape[0]
    mats = torch.eye(4, dtype=values.dtype, device=values.device).expand(program.num_slots, batch, 4, 4)
    for position, groups in enumerate(program.positions):
        for group in groups:
            if group.matrices is not None:
                new = group.matrices[:, None].expand(-1, batch, 4, 4)
            else:
                angles = values[:, group.param_index].T * group.scale[:, None] + group.offset[:, None]
                new = _transfer_1q(group.kind, angles, program.to_pauli)
            if position > 0:
                new = new @ mats.index_select(0, group.slots)
            mats = mats.index_copy(0, group.slots, new)
    return mats


def _oriented(matrix: torch.Tensor, swap: bool) -> torch.Tensor:
    """(B, 16, 16) with the order of its two qubit factors exchanged when ``swap`` (its own inverse)."""
    if not swap:
        return matrix
    return matrix.reshape(-1, 4, 4, 4, 4).permute(0, 2, 1, 4, 3).reshape(matrix.shape)


def _on_axes(
    state: torch.Tensor, matrix: torch.Tensor, before: int, after: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``matrix`` (B, rows, k) on the axis block of size k between ``before`` and ``after`` entries of
    the flat state (B, before * k * after), in place: no permutation (a copy of the state) is needed.
    The product follows ``after``: the rows times M^T (1), M (x) 1_after for thin blocks (4: a batch of
    16 x 4 products is ~1.5x slower), else M times each (k x after) block. ``out``: (B, before * rows *
    after) to write into."""
    batch, rows, size = state.shape[0], matrix.shape[-2], matrix.shape[-1]
    if after == 1:
        shape, result = (batch, before, rows), _product(state.view(batch, before, size), matrix.transpose(-1, -2))
    elif after < 16:
        shape = (batch, before, rows * after)
        result = _product(state.view(batch, before, size * after), _widened(matrix, after).transpose(-1, -2))
    elif batch == 1 and before == 1:
        shape, result = (rows, after), _product(matrix[0], state.view(size, after))
    elif batch == 1:  # matmul's broadcasting would transpose the state first
        shape = (before, rows, after)
        result = _product(matrix[0].expand(before, -1, -1), state.view(before, size, after))
    else:
        shape = (batch, before, rows, after)
        result = _product(matrix[:, None], state.view(batch, before, size, after))
    return result(None).reshape(batch, -1) if out is None else result(out.view(shape)).view(batch, -1)


def _product(a: torch.Tensor, b: torch.Tensor) -> Any:
    """a @ b, later: into a given tensor (no autograd) or a new one (``None``)."""
    return lambda out: torch.matmul(a, b) if out is None else torch.matmul(a, b, out=out)


def _widened(matrix: torch.Tensor, after: int) -> torch.Tensor:
    """M (x) 1_after, (B, rows * after, k * after)."""
    eye = torch.eye(after, dtype=matrix.dtype, device=matrix.device)
    rows, cols = matrix.shape[-2:]
    return (matrix[..., :, None, :, None] * eye[:, None, :]).reshape(-1, rows * after, cols * after)


def _matrix_grad(grad: torch.Tensor, state: torch.Tensor, before: int, after: int, size: int = 16) -> torch.Tensor:
    """d loss / d M (B, size, size) of `_on_axes`, from its output's gradient and its input state."""
    batch = state.shape[0]
    if after == 1:
        return grad.view(batch, before, size).transpose(-1, -2) @ state.view(batch, before, size)
    if after < 16:  # of M (x) 1_after, then its diagonal blocks summed
        wide = grad.view(batch, before, size * after).transpose(-1, -2) @ state.view(batch, before, size * after)
        return wide.view(batch, size, after, size, after).diagonal(dim1=2, dim2=4).sum(-1)
    g, s = grad.view(batch * before, size, after), state.view(batch * before, size, after)
    return torch.bmm(g, s.transpose(-1, -2)).view(batch, before, size, size).sum(1)


def _permute_into(out: torch.Tensor, state: torch.Tensor, permutation: tuple[int, ...], n: int) -> torch.Tensor:
    """The flat state with its qubit axes permuted, written into ``out`` (one copy)."""
    batch = state.shape[0]
    moved = state.view(batch, *([4] * n)).permute(0, *(1 + i for i in permutation))
    out.view(batch, *([4] * n)).copy_(moved)
    return out


class _Lease:
    """A state-sized buffer of the program's pool, given back when the autograd graph that holds it goes.

    Each step would otherwise allocate ~50 fresh states (128 KiB for 7 qubits: above glibc's mmap
    threshold, so each is a new mapping whose pages fault in). The pool keeps up to four buffers (a
    graph may be freed after the next step has begun) and `POOL_BYTES`: wide circuits' are freed."""

    def __init__(self, pool: list[torch.Tensor], shape: tuple[int, ...], like: torch.Tensor) -> None:
        match = next((i for i, t in enumerate(pool) if t.shape == shape and t.dtype == like.dtype), None)
        self.pool = pool
        self.tensor = pool.pop(match) if match is not None else like.new_empty(shape)

    def __del__(self) -> None:
        held = sum(t.numel() * t.element_size() for t in self.pool)
        if len(self.pool) < 4 and held + self.tensor.numel() * self.tensor.element_size() <= POOL_BYTES:
            self.pool.append(self.tensor)


class _GateSequence(torch.autograd.Function):
    """The two-qubit gates on the state with a written reverse pass: one autograd node for all of them,
    every intermediate state in one pooled buffer (kept for the reverse pass). ``single`` (S, B, 16, 16)
    and ``merged`` (M, B, 64, 64) are the matrices of `NoisyProgram.groups` in their order, already
    oriented (a swapped gate's factors exchanged)."""

    @staticmethod
    def forward(ctx, single: torch.Tensor, merged: torch.Tensor, state: torch.Tensor, program: NoisyProgram):
        n, batch, groups = program.num_qubits, state.shape[0], program.groups
        lease = _Lease(program.pool, (len(groups) + 1, batch, state.shape[1]), state)
        saved = lease.tensor
        saved[0].copy_(state)
        matrices = _group_matrices(single, merged, groups)
        for k, (group, matrix) in enumerate(zip(groups, matrices, strict=True)):
            step, current = program.steps[group[0]], saved[k]
            if step.permutation is not None:  # the last slot is free until the end: a scratch
                current = _permute_into(saved[-1], current, step.permutation, n)
                saved[k].copy_(current)
            _on_axes(current, matrix, *_group_axes(step, group, n), saved[k + 1])
        ctx.program, ctx.lease = program, lease
        ctx.save_for_backward(single, merged)
        return saved[-1].clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:
        single, merged = ctx.saved_tensors
        program, saved, groups = ctx.program, ctx.lease.tensor, ctx.program.groups
        scratch = _Lease(program.pool, (2, *grad.shape), grad)
        grad, spare = scratch.tensor[0].copy_(grad), scratch.tensor[1]
        matrices = _group_matrices(single, merged, groups)
        grads: list[torch.Tensor] = [None] * len(groups)  # type: ignore[list-item]
        for k in reversed(range(len(groups))):
            group, step = groups[k], program.steps[groups[k][0]]
            before, after = _group_axes(step, group, program.num_qubits)
            size = 16 * 4 ** (len(group) - 1)
            grads[k] = _matrix_grad(grad, saved[k], before, after, size)
            if k == 0:
                break  # the initial state needs no gradient
            grad, spare = _on_axes(grad, matrices[k].transpose(-1, -2), before, after, spare), grad
            if step.inverse is not None:
                grad, spare = _permute_into(spare, grad, step.inverse, program.num_qubits), grad
        single_grads = [g for g, group in zip(grads, groups, strict=True) if len(group) == 1]
        merged_grads = [g for g, group in zip(grads, groups, strict=True) if len(group) == 2]
        return (
            torch.stack(single_grads) if single_grads else torch.zeros_like(single),
            torch.stack(merged_grads) if merged_grads else torch.zeros_like(merged),
            None,
            None,
        )


def _group_matrices(single: torch.Tensor, merged: torch.Tensor, groups: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """Each group's matrix (B, size, size), in the groups' order."""
    singles, pairs = iter(single.unbind(0)), iter(merged.unbind(0))
    return [next(singles) if len(group) == 1 else next(pairs) for group in groups]


def _group_axes(step: _Step, group: tuple[int, ...], n: int) -> tuple[int, int]:
    """Entries of the axes before and after a group's: a merged pair's three axes are the last three."""
    return (step.before, step.after) if len(group) == 1 else (4 ** (n - 3), 1)


def _merge(first: torch.Tensor, second: torch.Tensor, up: torch.Tensor, kinds: frozenset[bool]) -> torch.Tensor:
    """(..., 64, 64) of ``first`` (..., 16, 16) then ``second`` on three axes (x, y, z): ``first`` on (y, z)
    and ``second`` on (x, y), or where ``up``, ``first`` on (x, y) and ``second`` on (y, z). ``kinds``: the
    values ``up`` holds (known when the circuit is compiled)."""
    shape = (*first.shape[:-2], 4, 4, 4, 4)
    a, b = first.reshape(shape), second.reshape(shape)
    if kinds != {True}:
        down = torch.einsum("...mrYZ,...pqXm->...pqrXYZ", a, b)  # first (m, z' | y, z), second (x', y' | x, m)
    if kinds != {False}:
        rising = torch.einsum("...pmXY,...qrmZ->...pqrXYZ", a, b)  # first (x', m | x, y), second (y', z' | m, z)
    if len(kinds) == 2:
        rising = torch.where(up.reshape(-1, *[1] * (down.dim() - 1)), rising, down)
    return (rising if True in kinds else down).reshape(*first.shape[:-2], 64, 64)


def simulate_noisy(program: NoisyProgram, values: torch.Tensor, real: torch.dtype) -> torch.Tensor:
    """Noisy outcome probabilities (B, 2^measured), readout included, for parameter values (B, P)."""
    values = values.to(real)
    batch, n = values.shape[0], program.num_qubits
    mats = _chains(program, values)
    state = program.initial.reshape(1, -1).expand(batch, -1)
    if program.pairs:
        a, b = mats[program.pair_slots[:, 0]], mats[program.pair_slots[:, 1]]  # (pairs, B, 4, 4)
        folded = (b[..., :, None, :, None] * a[..., None, :, None, :]).reshape(*a.shape[:-2], 16, 16)
        gates = program.pair_matrices[:, None] @ folded  # (pairs, B, 16, 16): chain first, then the gate
        if program.any_swapped:
            gates = torch.where(program.swapped[:, None, None, None], _oriented(gates, True), gates)
        merged = _merge(gates[program.merged_first], gates[program.merged_second], program.merged_up, program.up_kinds)
        state = _GateSequence.apply(gates[program.single], merged, state, program)
    finals = program.final_maps[:, None] @ mats[program.final_slots]  # (n, B, rows, 4)
    sizes = [4] * n
    for axis, q in enumerate(program.gate_order):  # each qubit's final map, in place
        sizes[axis] = finals.shape[-2]
        before, after = int(np.prod(sizes[:axis])), int(np.prod(sizes[axis + 1 :]))
        state = _on_axes(state, finals[q], before, after)
    state = state.reshape(batch, *sizes).permute(0, *(1 + program.gate_order.index(q) for q in program.output_order))
    return state.reshape(batch, 2**program.num_measured, -1).sum(-1)  # unmeasured qubits traced out


@dataclass(frozen=True)
class TorchDensityOptions(NoiseOptions):
    density_precision: str = option(
        "float32",
        "float type of torch_density: float32 (~1e-6 of aer_density) or float64 (1e-10)",
        choices=("float32", "float64"),
    )


@register
class TorchDensityBackend(Backend):
    """`aer_density`'s exact noisy distribution as torch operations: noise-aware training by autograd.

    The noisy circuit is prepared by `aer_density` (same pass manager, compaction, noise model and
    readout), then compiled by `compile_noisy`; ``aer_device`` only affects that preparation.
    """

    name = "torch_density"
    exact = True  # no shot noise: --train-shots may add the measurement's
    noisy = True
    torch_native = True
    Options = TorchDensityOptions
    context = ("seed", "device")
    max_qubits = MAX_DENSITY_QUBITS
    max_qubits_reason = "holds a density matrix"

    def __init__(
        self, options: TorchDensityOptions | None = None, *, seed: int | None = None, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(options)
        self.device = torch.device(device)
        self.dtype = torch.float32 if self.device.type == "mps" else getattr(torch, self.options.density_precision)
        noise = {f.name: getattr(self.options, f.name) for f in dataclasses.fields(NoiseOptions)}
        self.reference = AerDensityBackend(NoiseOptions(**noise), seed=seed)
        self._programs: dict[int, tuple[QuantumCircuit, NoisyProgram]] = {}

    def prepare(self, circuit: QuantumCircuit) -> NoisyProgram:
        return self.program(circuit)

    def program(self, circuit: QuantumCircuit) -> NoisyProgram:
        """The compiled noisy form of ``circuit``, built on first use and cached for this backend."""
        cached = self._programs.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            simulation = self.reference.prepare(circuit)
            cached = (circuit, compile_noisy(simulation, self.dtype, self.device))
            self._programs[id(circuit)] = cached
        return cached[1]

    def torch_probabilities(self, circuit: QuantumCircuit, values: torch.Tensor) -> torch.Tensor:
        """Differentiable noisy probabilities (B, 2^n) for angles (B, P) already on this device."""
        return simulate_noisy(self.program(circuit), values, self.dtype)

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.torch_probabilities(circuit, torch.as_tensor(values, device=self.device)).cpu().double().numpy()

    def _vjp(self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(values, dtype=self.dtype, device=self.device).requires_grad_(True)
        probs = self.torch_probabilities(circuit, tensor)  # plain autograd: `_GateSequence` has no functorch rule
        (out,) = torch.autograd.grad(probs, tensor, torch.as_tensor(grad, dtype=self.dtype, device=self.device))
        return out.cpu().double().numpy()
