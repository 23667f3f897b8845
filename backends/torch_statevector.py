"""Exact statevector simulation of a Qiskit circuit as torch operations, with reverse-mode autograd.

The circuit is read gate by gate from the `QuantumCircuit`, so the Qiskit circuit stays the single
definition of the ansatz. It is compiled once into a short program that runs fast:

- consecutive single-qubit gates form a *layer*; a layer acts on the state as
  K_high (x) K_low, two Kronecker factors over the upper and lower halves of the register, so it
  costs two small matrix products instead of one pass per qubit;
- the 2x2 matrices of every layer are built in one vectorized pass over all parameterized gates;
- runs of permutation gates (cx, swap) fuse into one index gather, runs of cz into one sign vector.

Everything stays a torch tensor on the training device (CPU, CUDA, MPS), so the probabilities are
differentiable end to end and the gradient is exact reverse mode (the `adjoint` method).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression

from .base import Backend
from .options import BackendOptions, option
from .registry import register

PARAMETERIZED_GATES = ("ry", "rx", "rz", "p")
PERMUTATION_GATES = ("cx", "swap")
DIAGONAL_GATES = ("cz",)
IGNORED = ("barrier",)
CHUNK_QUBITS = 5  # at most 5 qubits per dense factor when applying a layer: 32x32 matrices


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
    num_layers: int = 0
    is_complex: bool = False
    steps: list[list[_ParamGroup | _ConstGroup]] = field(default_factory=list)  # by position
    # ("layer", (l, gather index or None)) | ("perm", idx) | ("diag", d); see _fuse_gathers
    ops: list[tuple[str, object]] = field(default_factory=list)


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
    n = circuit.num_qubits
    index = {p: j for j, p in enumerate(circuit.parameters)}
    dim = 2**n
    basis = np.arange(dim)
    program = _Program(num_qubits=n)
    slots: dict[int, list] = {}  # qubit -> gates of the open layer, in order
    layer_gates: list[tuple[int, int, list]] = []  # (layer, qubit, gates)

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
        elif name == "cx":
            c, t = qubits
            push_fixed("perm", basis ^ (((basis >> c) & 1) << t))
        elif name == "swap":
            a, b = qubits
            diff = ((basis >> a) ^ (basis >> b)) & 1
            push_fixed("perm", basis ^ (diff << a) ^ (diff << b))
        elif name == "cz":
            a, b = qubits
            push_fixed("diag", 1.0 - 2.0 * (((basis >> a) & (basis >> b)) & 1))
        else:
            supported = sorted(PARAMETERIZED_GATES + PERMUTATION_GATES + DIAGONAL_GATES)
            raise ValueError(
                f"the torch engine cannot simulate gate {name!r} on {len(qubits)} qubit(s); "
                f"supported: {', '.join(supported)} and any fixed single-qubit gate"
            )
    close_layer()

    program.is_complex = any(kind in ("rx", "rz", "p") for _, _, g in layer_gates for kind, _ in g) or any(
        kind == "const" and np.iscomplexobj(m) and np.abs(m.imag).max() > 0 for _, _, g in layer_gates for kind, m in g
    )
    dtype = _complex_of(real) if program.is_complex else real
    depth = max((len(g) for _, _, g in layer_gates), default=0)
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
            else:
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
        program.steps.append(step)
    program.ops = _fuse_gathers(program.ops, n, device, real)
    return program


def _fuse_gathers(ops: list, n: int, device: torch.device, real: torch.dtype) -> list:
    """Turn each layer and the permutation after it into one layer op with a single gather.

    A layer leaves its result as the transposed view of the last chunk's matrix product; reading
    it back in logical order is a gather through ``unscramble``, and a following permutation
    composes into the same gather. A first layer acts on |0...0> and yields logical order, so it
    only needs the permutation. Layer ops carry (layer index, gather index or None).
    """
    basis = np.arange(2**n)
    last = 2 ** len(_chunks(n)[-1])
    rest = 2**n // last
    unscramble = (basis % rest) * last + basis // rest

    def tensor(array: np.ndarray | None, dtype: torch.dtype = torch.int64) -> torch.Tensor | None:
        return None if array is None else torch.tensor(array, dtype=dtype, device=device)

    fused, i = [], 0
    while i < len(ops):
        kind, data = ops[i]
        if kind != "layer":
            fused.append((kind, tensor(data, torch.int64 if kind == "perm" else real)))
            i += 1
            continue
        perm = ops[i + 1][1] if i + 1 < len(ops) and ops[i + 1][0] == "perm" else None
        if i == 0:
            index = perm
        else:
            index = unscramble if perm is None else unscramble[perm]
        fused.append(("layer", (data, tensor(index))))
        i += 1 if perm is None else 2
    return fused


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


def _kron(factors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Kronecker product of (..., 2, 2) matrices, first factor most significant."""
    out = factors[0]
    for m in factors[1:]:
        d = out.shape[-1]
        out = (out[..., :, None, :, None] * m[..., None, :, None, :]).reshape(*out.shape[:-2], 2 * d, 2 * d)
    return out


def _chunks(n: int) -> list[range]:
    """Split qubits 0..n-1 into as few near-equal chunks of at most CHUNK_QUBITS as possible."""
    count = -(-n // CHUNK_QUBITS)
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [range(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def simulate(program: _Program, values: torch.Tensor, real: torch.dtype) -> torch.Tensor:
    """Probabilities (B, 2^n) of the compiled circuit for parameter values (B, P)."""
    n, batch = program.num_qubits, values.shape[0]
    dtype = _complex_of(real) if program.is_complex else real
    values = values.to(real)
    num_slots = program.num_layers * n
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

    # A layer is the Kronecker product of its 2x2 matrices. It is applied as one dense factor per
    # chunk of qubits, lowest chunk first: multiplying the (rest, chunk) view by the factor and
    # transposing cycles the chunk to the front, so after every chunk the axes are back in order
    # and each step is a plain matrix product rather than a broadcast one.
    per_qubit = mats.reshape(program.num_layers, n, batch, 2, 2).unbind(1)
    chunks = _chunks(n)
    factors = [_kron(tuple(per_qubit[q] for q in reversed(chunk))).transpose(-1, -2).unbind(0) for chunk in chunks]

    state = None  # |0...0>, materialized lazily: a first layer on it is a product of first columns
    for kind, data in program.ops:
        if kind == "layer" and state is None:
            layer, index = data
            state = factors[-1][layer][:, 0]  # most significant chunk first
            for factor in reversed(factors[:-1]):
                state = (state[:, :, None] * factor[layer][:, 0][:, None, :]).reshape(batch, -1)
            if index is not None:
                state = state.index_select(1, index)
            continue
        if state is None:
            state = torch.zeros(batch, 2**n, dtype=dtype, device=values.device)
            state[:, 0] = 1
        if kind == "layer":
            layer, index = data
            for chunk, factor in zip(chunks, factors, strict=True):
                if batch == 1:  # a plain matrix product is cheaper than a batched one of one
                    product = (state.reshape(-1, 2 ** len(chunk)) @ factor[layer][0])[None]
                else:
                    product = state.reshape(batch, -1, 2 ** len(chunk)) @ factor[layer]
                state = product.transpose(1, 2)
            state = product.reshape(batch, 2**n).index_select(1, index)
        elif kind == "perm":
            state = state.index_select(1, data)
        else:
            state = state * data
    return state.abs().square() if program.is_complex else state.square()


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

    def __init__(self, device: str | torch.device = "cpu", precision: str | torch.dtype = torch.float64) -> None:
        self.device = torch.device(device)
        self.dtype = getattr(torch, precision) if isinstance(precision, str) else precision
        self._programs: dict[int, tuple[QuantumCircuit, _Program]] = {}

    def program(self, circuit: QuantumCircuit) -> _Program:
        """The compiled form of ``circuit``, built on first use and cached for this backend."""
        cached = self._programs.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            cached = (circuit, _compile(circuit, self.dtype, self.device))
            self._programs[id(circuit)] = cached
        return cached[1]

    def torch_probabilities(self, circuit: QuantumCircuit, values: torch.Tensor) -> torch.Tensor:
        """Differentiable probabilities (B, 2^n) for angles (B, P) already on this device."""
        return simulate(self.program(circuit), values, self.dtype)

    def _probabilities(self, circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            tensor = torch.as_tensor(values, device=self.device)
            return self.torch_probabilities(circuit, tensor).cpu().double().numpy()

    def _vjp(self, circuit: QuantumCircuit, values: np.ndarray, grad: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(values, device=self.device).requires_grad_(True)
        with torch.enable_grad():
            probs = self.torch_probabilities(circuit, tensor)
            (out,) = torch.autograd.grad(probs, tensor, torch.as_tensor(grad, dtype=probs.dtype, device=self.device))
        return out.cpu().double().numpy()
