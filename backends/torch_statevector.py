"""Exact statevector simulation of a Qiskit circuit as torch operations, with reverse-mode gradients.

The circuit is read gate by gate from the `QuantumCircuit`, so the Qiskit circuit stays the single
definition of the ansatz. It is compiled once into a short program that runs fast:

- consecutive single-qubit gates form a *layer*; a layer acts on the state as a Kronecker product
  of one dense factor per chunk of up to 5 qubits, so it costs a few matrix products on a
  (pre, 2^c, post) view of the state instead of one pass per qubit;
- the 2x2 matrices of every layer are built in one vectorized pass over all parameterized gates,
  and every layer's chunk factors in one gather and product;
- runs of permutation gates (cx, swap) fuse into one index gather, runs of cz into one sign vector;
- a circuit with RY angles and real gates only (the ansatz) gets its gradient from one reverse
  sweep (`adjoint_gradient`) that carries only the adjoint vector back, reading the states the
  forward kept after each layer; from a final state another simulator computed (Aer's, on the
  card's path) it uncomputes them instead. Every angle's gradient then comes from one batched
  overlap per chunk of qubits over all layers at once.

Everything stays a torch tensor on the training device (CPU, CUDA, MPS), so the probabilities are
differentiable end to end and the gradient is exact reverse mode (the `adjoint` method).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression

from .base import Backend
from .compiled_sweep import COMPILED_QUBITS, CompiledPlan, CompiledProbabilities, angle_gradient
from .options import BackendOptions, option
from .registry import register

PARAMETERIZED_GATES = ("ry", "rx", "rz", "p")
PERMUTATION_GATES = ("cx", "swap")
DIAGONAL_GATES = ("cz",)
IGNORED = ("barrier",)
CHUNK_QUBITS = 5  # at most 5 qubits per dense factor of a layer: 32x32 matrices
SERIAL_QUBITS = 16  # up to 2^16 amplitudes the engine runs on one CPU thread (see `_one_thread`)


@dataclass
class _ParamGroup:
    """Same-kind parameterized gates at the same position in their slots: built in one pass."""

    kind: str
    slots: torch.Tensor  # (s,) flat slot index layer * n + qubit
    param_index: torch.Tensor  # (s,) column in the values matrix
    scale: torch.Tensor  # (s,) angle = scale * value + offset
    offset: torch.Tensor
    affine: bool = True  # False when every scale is 1 and offset 0: angles are the values
    full: bool = False  # sets every slot in order: its matrices are the whole table, no scatter


@dataclass
class _ConstGroup:
    slots: torch.Tensor
    matrices: torch.Tensor  # (s, 2, 2)
    full: bool = False


@dataclass
class _Program:
    num_qubits: int
    num_parameters: int = 0
    num_layers: int = 0
    is_complex: bool = False
    steps: list[list[_ParamGroup | _ConstGroup]] = field(default_factory=list)  # by position
    # ("layer", layer) | ("perm", gather index) | ("diag", sign vector), in circuit order
    ops: list[tuple[str, object]] = field(default_factory=list)
    adjoint: _AdjointPlan | None = None  # the reverse sweep, where the circuit allows it
    compiled: CompiledPlan | None = None  # `compiled_sweep`'s arrays, built on first use
    kron: tuple[torch.Tensor, list[int]] | None = None  # `_kron_index`, built on first use


@dataclass
class _AdjointPlan:
    """What `adjoint_gradient` needs: the inverted ops and where each RY angle's gradient goes."""

    backward: list[tuple[str, object]]  # ("perm", inverse gather) | ("diag", signs) | ("layer", layer)
    slots: torch.Tensor  # (r,) layer * n + qubit of every RY
    columns: torch.Tensor  # (r,) its parameter column
    scale: torch.Tensor  # (r,) d angle / d parameter
    pair_index: list[torch.Tensor] = field(default_factory=list)  # per chunk: H entries (i, i ^ 2^t), flat
    pair_sign: list[torch.Tensor] = field(default_factory=list)  # per chunk: (c, 2^c) factors +-1/2

    def parameter_gradient(self, by_slot: torch.Tensor, num_parameters: int) -> torch.Tensor:
        """(B, P) parameter gradients from (B, layers * n) per-slot angle overlaps: each RY's overlap,
        times d angle / d parameter, summed into its parameter's column (angles may share one)."""
        slots = by_slot.index_select(1, self.slots) * self.scale
        return slots.new_zeros(len(slots), num_parameters).index_add_(1, self.columns, slots)


def _angle_reference(value: object, index: dict) -> tuple[int, float, float] | None:
    """(parameter column, scale, offset) for an affine expression in one parameter, None if numeric."""
    if not isinstance(value, ParameterExpression):
        return None
    if len(value.parameters) != 1:
        raise ValueError(f"gate angle {value} must depend on exactly one parameter")
    (param,) = value.parameters
    slope = value.gradient(param)
    if isinstance(slope, ParameterExpression):
        raise ValueError(f"gate angle {value} is not affine in {param}")
    offset = value.assign(param, 0.0)
    return index[param], float(slope), float(offset.numeric() if hasattr(offset, "numeric") else offset)


def _compile(circuit: QuantumCircuit, real: torch.dtype, device: torch.device) -> _Program:
    """The circuit as a program: layers of single-qubit gates between fused gathers and sign vectors."""
    program = _Program(num_qubits=circuit.num_qubits, num_parameters=circuit.num_parameters)
    layer_gates = _read_gates(circuit, program)
    program.is_complex = any(kind in ("rx", "rz", "p") for _, _, g in layer_gates for kind, _ in g) or any(
        kind == "const" and np.iscomplexobj(m) and np.abs(m.imag).max() > 0 for _, _, g in layer_gates for kind, m in g
    )
    program.steps = _build_steps(layer_gates, program, real, device)
    program.ops = _tensor_ops(program.ops, device, real)
    program.adjoint = _adjoint_plan(layer_gates, program, real, device)
    return program


def _read_gates(circuit: QuantumCircuit, program: _Program) -> list[tuple[int, int, list]]:
    """Fill ``program.ops`` with layers, permutations and sign vectors; the gates of each layer slot.

    Returns (layer, qubit, gates) for every slot: gates in circuit order, each ("const", matrix) or
    (kind, (parameter column, scale, offset)).
    """
    n = circuit.num_qubits
    index = {p: j for j, p in enumerate(circuit.parameters)}
    basis = np.arange(2**n)
    slots: dict[int, list] = {}  # qubit -> gates of the open layer, in order
    layer_gates: list[tuple[int, int, list]] = []

    def close_layer() -> None:
        if slots:
            layer = program.num_layers
            layer_gates.extend((layer, q, g) for q, g in slots.items())
            program.ops.append(("layer", layer))
            program.num_layers += 1
            slots.clear()

    def push_fixed(kind: str, vector: np.ndarray) -> None:
        close_layer()
        if program.ops and program.ops[-1][0] == kind:
            prev = program.ops[-1][1]
            vector = prev[vector] if kind == "perm" else prev * vector  # compose with the previous
            program.ops.pop()
        program.ops.append((kind, vector))

    for instruction in circuit.data:
        op, name = instruction.operation, instruction.operation.name
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        if name in IGNORED:
            continue
        reference = _angle_reference(op.params[0], index) if len(qubits) == 1 and op.params else None
        if len(qubits) == 1 and reference is None:
            slots.setdefault(qubits[0], []).append(("const", np.asarray(op.to_matrix())))
        elif len(qubits) == 1 and name in PARAMETERIZED_GATES and len(op.params) == 1:
            slots.setdefault(qubits[0], []).append((name, reference))
        elif name in TWO_QUBIT_OPS:
            kind, vector = TWO_QUBIT_OPS[name](basis, *qubits)
            push_fixed(kind, vector)
        else:
            supported = sorted(PARAMETERIZED_GATES + PERMUTATION_GATES + DIAGONAL_GATES)
            raise ValueError(
                f"the torch engine cannot simulate gate {name!r} on {len(qubits)} qubit(s); "
                f"supported: {', '.join(supported)} and any fixed single-qubit gate"
            )
    close_layer()
    return layer_gates


def _cx(basis: np.ndarray, c: int, t: int) -> tuple[str, np.ndarray]:
    return "perm", basis ^ (((basis >> c) & 1) << t)


def _swap(basis: np.ndarray, a: int, b: int) -> tuple[str, np.ndarray]:
    diff = ((basis >> a) ^ (basis >> b)) & 1
    return "perm", basis ^ (diff << a) ^ (diff << b)


def _cz(basis: np.ndarray, a: int, b: int) -> tuple[str, np.ndarray]:
    return "diag", 1.0 - 2.0 * (((basis >> a) & (basis >> b)) & 1)


TWO_QUBIT_OPS = {"cx": _cx, "swap": _swap, "cz": _cz}  # gather index or sign vector over the basis


def _build_steps(
    layer_gates: list[tuple[int, int, list]], program: _Program, real: torch.dtype, device: torch.device
) -> list[list[_ParamGroup | _ConstGroup]]:
    """Group same-kind gates at the same position of their slots, so each group is built in one pass."""
    n = program.num_qubits
    dtype = _complex_of(real) if program.is_complex else real
    depth = max((len(g) for _, _, g in layer_gates), default=0)
    steps = []
    for position in range(depth):
        groups: dict[str, list] = {}
        for layer, qubit, gates in layer_gates:
            if position < len(gates):
                kind, data = gates[position]
                groups.setdefault(kind, []).append((layer * n + qubit, data))
        step: list[_ParamGroup | _ConstGroup] = []
        for kind, members in groups.items():
            slots = [s for s, _ in members]
            slot_index, full = torch.tensor(slots, device=device), slots == list(range(program.num_layers * n))
            if kind == "const":
                matrices = np.stack([m for _, m in members])
                matrices = matrices if program.is_complex else matrices.real
                step.append(_ConstGroup(slot_index, torch.tensor(matrices, dtype=dtype, device=device), full))
                continue
            refs = np.array([d for _, d in members])
            step.append(
                _ParamGroup(
                    kind,
                    slot_index,
                    torch.tensor(refs[:, 0].astype(np.int64), device=device),
                    torch.tensor(refs[:, 1], dtype=real, device=device),
                    torch.tensor(refs[:, 2], dtype=real, device=device),
                    affine=bool((refs[:, 1] != 1).any() or (refs[:, 2] != 0).any()),
                    full=full,
                )
            )
        steps.append(step)
    return steps


def _tensor_ops(ops: list, device: torch.device, real: torch.dtype) -> list[tuple[str, object]]:
    """The ops with their gather indices and sign vectors as tensors on the engine's device."""
    dtypes = {"perm": torch.int64, "diag": real}
    return [
        (kind, data if kind == "layer" else torch.tensor(data, dtype=dtypes[kind], device=device)) for kind, data in ops
    ]


def _complex_of(real: torch.dtype) -> torch.dtype:
    return torch.complex128 if real == torch.float64 else torch.complex64


def _gate_matrices(kind: str, angles: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """2x2 matrices of shape (*angles.shape, 2, 2) for a parameterized gate kind."""
    half = angles / 2
    c, s = torch.cos(half), torch.sin(half)
    zero = torch.zeros_like(c)
    if kind == "ry":
        entries = [c, -s, s, c]
    elif kind == "rx":
        entries = [torch.complex(c, zero), torch.complex(zero, -s), torch.complex(zero, -s), torch.complex(c, zero)]
    elif kind == "rz":
        entries = [torch.complex(c, -s), torch.complex(zero, zero), torch.complex(zero, zero), torch.complex(c, s)]
    else:  # p: diag(1, e^{i angle})
        one = torch.ones_like(c)
        entries = [torch.complex(one, zero), torch.complex(zero, zero), torch.complex(zero, zero)]
        entries.append(torch.complex(torch.cos(angles), torch.sin(angles)))
    return torch.stack(entries, dim=-1).reshape(*angles.shape, 2, 2).to(dtype)


def _kron_index(n: int, device: torch.device) -> tuple[torch.Tensor, list[int]]:
    """Where every entry of every chunk's Kronecker factor reads its 2x2 entries from.

    Entry (i, j) of a chunk's factor is the product over the chunk's qubits q of R_q[bit(i), bit(j)].
    Row k of the returned (rows, entries) index points, for every entry of every chunk's factor
    (flattened and concatenated), at R_q[bit(i), bit(j)] in a (n * 4 + 1) table of the layer's 2x2
    entries, q the chunk's k-th qubit from the top (the order of a sequential Kronecker product);
    rows beyond a chunk's size point at the table's last entry, a constant 1.
    """
    chunks = _chunks(n)
    depth = max(len(chunk) for chunk in chunks)
    columns = []
    for chunk in chunks:
        entry = np.arange(4 ** len(chunk))
        i, j = entry >> len(chunk), entry & (2 ** len(chunk) - 1)
        rows = [4 * q + 2 * ((i >> (q - chunk.start)) & 1) + ((j >> (q - chunk.start)) & 1) for q in reversed(chunk)]
        rows += [np.full_like(entry, 4 * n)] * (depth - len(chunk))
        columns.append(np.stack(rows))
    return torch.tensor(np.concatenate(columns, axis=1), device=device), [4 ** len(chunk) for chunk in chunks]


@functools.cache
def _chunks(n: int) -> list[range]:
    """Split qubits 0..n-1 into the chunks whose dense factors a layer applies, lowest qubits first.

    As few near-equal chunks of at most CHUNK_QUBITS as possible, the smaller ones on the low qubits:
    the lowest chunk is a plain matrix product on a (2^n / 2^c, 2^c) view and the top one on a
    (2^c, 2^n / 2^c) view, while a middle chunk is a batched product over its view's leading axis,
    which is cheapest with a small leading axis (measured at 13 qubits, one thread: 4+4+5 qubits
    took 0.6x the time of 4+5+4 per layer).
    """
    count = -(-n // CHUNK_QUBITS)
    bounds = [n * i // count for i in range(count + 1)]
    return [range(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def _slot_matrices(program: _Program, values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The 2x2 matrix of every layer slot (layer * n + qubit), shape (slots, B, 2, 2)."""
    batch = values.shape[0]
    num_slots = program.num_layers * program.num_qubits
    mats = torch.eye(2, dtype=dtype, device=values.device).expand(num_slots, batch, 2, 2)
    for position, step in enumerate(program.steps):
        for group in step:
            if isinstance(group, _ConstGroup):
                new = group.matrices[:, None].expand(-1, batch, 2, 2)
            else:
                angles = values[:, group.param_index].T
                if group.affine:
                    angles = angles * group.scale[:, None] + group.offset[:, None]
                new = _gate_matrices(group.kind, angles, dtype)
            if position > 0:
                new = new @ mats.index_select(0, group.slots)
            mats = new if group.full else mats.index_copy(0, group.slots, new)
    return mats


def _layer_factors(program: _Program, values: torch.Tensor, real: torch.dtype) -> list[torch.Tensor]:
    """Per chunk of qubits: every layer's Kronecker factor over that chunk, shape (layers, B, 2^c, 2^c).

    A layer is the Kronecker product of its 2x2 matrices: applied as one dense factor per chunk
    of up to CHUNK_QUBITS qubits, it costs a few matrix products instead of one pass per qubit.
    Every chunk's factor of every layer is built in one gather and one product (`_kron_index`).
    """
    dtype = _complex_of(real) if program.is_complex else real
    mats = _slot_matrices(program, values.to(real), dtype)
    layers, n, batch = program.num_layers, program.num_qubits, values.shape[0]
    if program.kron is None:
        program.kron = _kron_index(n, values.device)
    index, sizes = program.kron
    table = mats.reshape(layers, n, batch, 4).permute(0, 2, 1, 3).reshape(layers * batch, 4 * n)
    table = torch.cat([table, table.new_ones(layers * batch, 1)], dim=1)
    rows = torch.gather(table, 1, index.flatten().expand(layers * batch, -1)).view(layers * batch, *index.shape)
    entries = functools.reduce(torch.mul, rows.unbind(1))  # in order: the top qubit's entry first
    return [
        block.view(layers, batch, side, side)
        for block, side in zip(entries.split(sizes, dim=1), (math.isqrt(size) for size in sizes), strict=True)
    ]


def _apply_factors(state: torch.Tensor, factors: list[torch.Tensor], chunks: list[range]) -> torch.Tensor:
    """``state`` (R, 2^n) with each chunk's factor (R or 1, 2^c, 2^c) applied to that chunk's qubits.

    The state is viewed as (R, pre, 2^c, post), post = 2^(lowest qubit of the chunk): the factor
    multiplies the middle axis in place of order, one (batched) matrix product per chunk, no copies.
    """
    rows, dim = state.shape
    for chunk, factor in zip(chunks, factors, strict=True):
        size, post = 2 ** len(chunk), 2**chunk.start
        shared = factor.shape[0] == 1  # one factor for every row: plain matrix products where the view allows
        if post == 1:
            state = state.reshape(-1, size) @ factor[0].mT if shared else state.reshape(rows, -1, size) @ factor.mT
        elif shared and rows * post * size == dim:  # the top chunk of one row
            state = factor[0] @ state.reshape(size, post)
        else:
            state = factor[:, None] @ state.reshape(rows, dim // (size * post), size, post)
    return state.reshape(rows, dim)


def _first_layer(factors: list[torch.Tensor], batch: int) -> torch.Tensor:
    """A layer on |0...0>: the product state of each chunk factor's first column, logical order."""
    state = factors[-1][:, :, 0]  # most significant chunk first
    for factor in reversed(factors[:-1]):
        state = (state[:, :, None] * factor[:, :, 0][:, None, :]).reshape(batch, -1)
    return state


def amplitudes(
    program: _Program, values: torch.Tensor, real: torch.dtype, record: list | None = None
) -> tuple[torch.Tensor, list]:
    """Final state (B, 2^n) of the compiled circuit for parameter values (B, P), and the layer factors.

    ``record``: a list that receives the state just after each layer, in layer order (what the
    reverse sweep reads; no copies, every op makes a new tensor).
    """
    batch = values.shape[0]
    factors = _layer_factors(program, values, real)
    chunks = _chunks(program.num_qubits)
    state = None  # |0...0>, materialized lazily: a first layer on it is a product of first columns
    for kind, data in program.ops:
        if state is None and kind == "layer":
            state = _first_layer([factor[data] for factor in factors], batch)
        else:
            state = _zero_state(program, batch, real, values.device) if state is None else state
            if kind == "layer":
                state = _apply_factors(state, [factor[data] for factor in factors], chunks)
            elif kind == "perm":
                state = state.index_select(1, data)
            else:
                state = state * data
        if record is not None and kind == "layer":
            record.append(state)
    return (_zero_state(program, batch, real, values.device) if state is None else state), factors


def _zero_state(program: _Program, batch: int, real: torch.dtype, device: torch.device) -> torch.Tensor:
    state = torch.zeros(batch, 2**program.num_qubits, dtype=_complex_of(real) if program.is_complex else real,
                        device=device)  # fmt: skip
    state[:, 0] = 1
    return state


def simulate(program: _Program, values: torch.Tensor, real: torch.dtype) -> torch.Tensor:
    """Probabilities (B, 2^n) of the compiled circuit for parameter values (B, P)."""
    with _one_thread(program, values.device):
        state, _ = amplitudes(program, values, real)
    return state.abs().square() if program.is_complex else state.square()


@contextlib.contextmanager
def _one_thread(program: _Program, device: torch.device) -> Iterator[None]:
    """Run a small circuit's CPU operations on one thread, then restore torch's thread count.

    Its matrix products are a few hundred thousand operations each: splitting them over threads
    gains nothing, and where the cores are shared a thread waiting for its partner costs far more
    (measured on 2 shared cores: the 13-qubit reverse sweep took 530 ms per step on 2 threads, 12 ms
    on one).
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1 or program.num_qubits > SERIAL_QUBITS:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _adjoint_plan(
    layer_gates: list[tuple[int, int, list]], program: _Program, real: torch.dtype, device: torch.device
) -> _AdjointPlan | None:
    """The reverse sweep of a real circuit whose angles are all RY gates, each the last gate of its slot.

    Then every layer is an orthogonal matrix K and dK/dtheta_q = (-iY/2)_q K (-iY is real), so one
    backward sweep that uncomputes the state beside the adjoint vector gives every angle's gradient.
    Other circuits (complex gates, an angle under a later gate) return None and use autograd.
    """
    if program.is_complex or not layer_gates:
        return None
    rows = []
    for layer, qubit, gates in layer_gates:
        params = [i for i, (kind, _) in enumerate(gates) if kind != "const"]
        if any(gates[i][0] != "ry" for i in params) or (params and params != [len(gates) - 1]):
            return None
        if params:
            column, scale, _ = gates[-1][1]
            rows.append((layer * program.num_qubits + qubit, column, scale))
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    plan = _AdjointPlan(
        backward=_reverse_ops(program.ops),
        slots=torch.tensor(table[:, 0].astype(np.int64), device=device),
        columns=torch.tensor(table[:, 1].astype(np.int64), device=device),
        scale=torch.tensor(table[:, 2], dtype=real, device=device),
    )
    for chunk in _chunks(program.num_qubits):
        size = 2 ** len(chunk)
        rows_i, bits = np.arange(size)[None, :], np.arange(len(chunk))[:, None]
        plan.pair_index.append(torch.tensor(rows_i * size + (rows_i ^ (1 << bits)), device=device).flatten())
        plan.pair_sign.append(torch.tensor(0.5 * (2 * ((rows_i >> bits) & 1) - 1), dtype=real, device=device))
    return plan


def _reverse_ops(ops: list) -> list[tuple[str, object]]:
    """The ops from the last back to the first layer, inverted: a permutation's inverse is the gather
    by its argsort, a sign vector is its own inverse, a layer is undone by `_undo_layer`."""
    first = next(i for i, (kind, _) in enumerate(ops) if kind == "layer")
    return [(kind, torch.argsort(data) if kind == "perm" else data) for kind, data in reversed(ops[first:])]


def _sweep(
    plan: _AdjointPlan, factors: list, state: torch.Tensor, adjoint: torch.Tensor, saved: list | None
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
    """Adjoint vectors and states just after each layer, from the last layer back to the first.

    With ``saved`` (the forward's states after each layer) only the adjoint is carried back;
    without, the final state is uncomputed beside it, as rows of one (2B, 2^n) matrix. The first
    layer is not undone: nothing before it is read.
    """
    batch, chunks = state.shape[0], _chunks(state.shape[1].bit_length() - 1)
    rows = adjoint if saved is not None else torch.cat([state, adjoint])
    adjoints, states, layers = [], [], []
    for position, (kind, data) in enumerate(plan.backward):
        if kind == "perm":
            rows = rows.index_select(1, data)
        elif kind == "diag":
            rows = rows * data
        else:
            layers.append(data)
            adjoints.append(rows if saved is not None else rows[batch:])
            states.append(saved[data] if saved is not None else rows[:batch])
            if position == len(plan.backward) - 1:
                break
            inverse = [factor[data].mT for factor in factors]  # orthogonal: F^-1 = F^T
            if len(rows) > batch > 1:
                inverse = [factor.repeat(2, 1, 1) for factor in inverse]
            rows = _apply_factors(rows, inverse, chunks)
    return adjoints, states, layers


def _chunk_overlaps(adjoints: torch.Tensor, states: torch.Tensor, chunk: range) -> torch.Tensor:
    """H[r, i, m] = sum over the other qubits' indices of adjoint[r, .., i, ..] state[r, .., m, ..].

    One batched product over every layer's rows at once. Taken after the whole layer rather than
    before each chunk's own factor: the other chunks' factors are orthogonal and act on both alike,
    which leaves the sum unchanged.
    """
    rows, dim = adjoints.shape
    size, post = 2 ** len(chunk), 2**chunk.start
    if post == 1:
        return adjoints.view(rows, -1, size).mT @ states.view(rows, -1, size)
    shape = (rows, dim // (size * post), size, post)
    return (adjoints.view(shape) @ states.view(shape).mT).sum(1)


def adjoint_gradient(
    program: _Program,
    factors: list,
    state: torch.Tensor,
    grad_probs: torch.Tensor,
    num_parameters: int,
    saved: list | None = None,
) -> torch.Tensor:
    """Gradient (B, P) of sum(grad_probs * P) for a real RY circuit: one reverse sweep from the final state.

    ``state`` is the circuit's final state (B, 2^n), from this engine or from any exact simulator
    of the same circuit. ``saved``: the states after each layer, when this engine's forward kept
    them (`amplitudes`' ``record``); otherwise the sweep uncomputes them from ``state``. The
    adjoint and the state after every layer are then contracted in one batch per chunk of qubits.
    """
    plan, batch = program.adjoint, state.shape[0]
    adjoints, states, layers = _sweep(plan, factors, state, 2 * grad_probs.to(state.dtype) * state, saved)
    adjoint_rows, state_rows = torch.cat(adjoints), torch.cat(states)  # (layers * B, 2^n), sweep order
    # angle gradient of qubit t of a chunk: 1/2 sum_i s_t(i) H[i, i ^ 2^t], s_t(i) = +-1 by bit t of i
    per_chunk = [
        (_chunk_overlaps(adjoint_rows, state_rows, chunk).flatten(1).index_select(1, index)
         .view(len(layers), batch, *sign.shape) * sign).sum(-1)
        for chunk, index, sign in zip(_chunks(program.num_qubits), plan.pair_index, plan.pair_sign, strict=True)
    ]  # fmt: skip
    by_layer = torch.cat(per_chunk, dim=-1)  # (layers in sweep order, B, n)
    if layers != list(range(len(layers) - 1, -1, -1)):
        by_layer = torch.empty_like(by_layer).index_copy_(0, torch.tensor(layers, device=state.device), by_layer)
    else:
        by_layer = by_layer.flip(0)
    return plan.parameter_gradient(by_layer.transpose(0, 1).reshape(batch, -1), num_parameters)


class _AdjointProbabilities(torch.autograd.Function):
    """P = |state|^2 as one autograd node whose backward is the reverse sweep (no per-op graph)."""

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, program: _Program, real: torch.dtype) -> torch.Tensor:
        saved: list[torch.Tensor] = []
        with _one_thread(program, values.device):
            state, factors = amplitudes(program, values.detach(), real, saved)
        ctx.program, ctx.factors, ctx.saved, ctx.values_dtype = program, factors, saved, values.dtype
        ctx.save_for_backward(state)
        return state.square()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (state,) = ctx.saved_tensors
        with _one_thread(ctx.program, state.device):
            gradient = adjoint_gradient(ctx.program, ctx.factors, state, grad, ctx.program.num_parameters, ctx.saved)
        return gradient.to(ctx.values_dtype), None, None


@dataclass(frozen=True)
class TorchStatevectorOptions(BackendOptions):
    precision: str = option("float32", "float type of the torch engine's statevector", choices=("float32", "float64"))


@register
class TorchStatevectorBackend(Backend):
    """Exact engine on the training device; gradients by reverse-mode autograd."""

    name = "torch_statevector"
    exact = True
    torch_native = True
    Options = TorchStatevectorOptions
    context = ("device",)

    def __init__(self, options: TorchStatevectorOptions | None = None, *, device: str | torch.device = "cpu") -> None:
        super().__init__(options)
        self.device = torch.device(device)
        self.dtype = getattr(torch, self.options.precision)
        self._programs: dict[int, tuple[QuantumCircuit, _Program]] = {}

    def program(self, circuit: QuantumCircuit) -> _Program:
        """The compiled form of ``circuit``, built on first use and cached for this backend."""
        cached = self._programs.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            cached = (circuit, _compile(circuit, self.dtype, self.device))
            self._programs[id(circuit)] = cached
        return cached[1]

    def torch_probabilities(self, circuit: QuantumCircuit, values: torch.Tensor) -> torch.Tensor:
        """Differentiable probabilities (B, 2^n) for angles (B, P) already on this device.

        Where the circuit allows it (real, RY angles) the gradient is the engine's reverse sweep, one
        autograd node; otherwise autograd records every operation of the simulation.
        """
        program = self.program(circuit)
        if program.adjoint is not None and self._compiled(program, values):
            matrices = _slot_matrices(program, values.detach().to(self.dtype), self.dtype)
            return CompiledProbabilities.apply(values, program, matrices)
        if program.adjoint is not None and values.requires_grad and torch.is_grad_enabled():
            return _AdjointProbabilities.apply(values, program, self.dtype)
        return simulate(program, values, self.dtype)

    def _compiled(self, program: _Program, values: torch.Tensor) -> bool:
        """Whether one parameter set of this small circuit runs as `compiled_sweep`'s two loops (CPU)."""
        if self.device.type != "cpu" or len(values) != 1 or program.num_qubits > COMPILED_QUBITS:
            return False
        if program.compiled is None:
            program.compiled = CompiledPlan(program, self.dtype)
        return True

    def vjp_from_state(
        self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray, state: np.ndarray | None = None
    ) -> np.ndarray:
        """`vjp`, starting the reverse sweep from ``state`` (B, 2^n), the final state another exact
        simulator already computed for these values, instead of simulating the circuit again."""
        program = self.program(circuit)
        if program.adjoint is None:
            return self._vjp(circuit, values, grad)
        with torch.no_grad(), _one_thread(program, self.device):
            tensor = torch.as_tensor(values, device=self.device)
            if state is not None and self._compiled(program, tensor):
                final = np.ascontiguousarray(state.real.reshape(-1), dtype=program.compiled.dtype)
                layers = program.compiled.layers(_slot_matrices(program, tensor.to(self.dtype), self.dtype))
                return angle_gradient(program, layers, final, np.asarray(grad)).double().numpy()
            if state is None:
                final, factors = amplitudes(program, tensor, self.dtype)
            else:
                final, factors = torch.as_tensor(state.real, dtype=self.dtype, device=self.device), None
                factors = _layer_factors(program, tensor, self.dtype)
            gradient = adjoint_gradient(program, factors, final, torch.as_tensor(grad, device=self.device),
                                        circuit.num_parameters)  # fmt: skip
        return gradient.cpu().double().numpy()

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            tensor = torch.as_tensor(values, device=self.device)
            return self.torch_probabilities(circuit, tensor).cpu().double().numpy()

    def _vjp(self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.program(circuit).adjoint is not None:
            return self.vjp_from_state(circuit, values, grad)
        tensor = torch.as_tensor(values, device=self.device).requires_grad_(True)
        with torch.enable_grad():
            probs = self.torch_probabilities(circuit, tensor)
            (out,) = torch.autograd.grad(probs, tensor, torch.as_tensor(grad, dtype=probs.dtype, device=self.device))
        return out.cpu().double().numpy()
