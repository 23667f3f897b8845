"""A classical generator of P: the control a trained quantum circuit has to beat.

A frozen circuit and a fixed random vector show that *training* the distribution matters, not that
a *quantum* distribution is needed. The fair classical counterpart is a trainable family of
distributions over the same 2^N outcomes, with the same number of trainable parameters as the
circuit it replaces, trained by the same optimizer from the same data.

The family chosen is an energy-based model over the basis bits, P(i) = softmax_i(E(s_i)) with
s_i in {-1, +1}^N the signed bits of i and E a one-hidden-layer network with softplus units:

    E(s) = sum_j v_j softplus(w_j . s + c_j)

With every v_j = 1 this is the free energy of a restricted Boltzmann machine with N visible and h
hidden units (the classical model that most resembles a parameterized circuit's Born distribution:
unnormalized, high-order correlations between bits, trained from a handful of parameters); training
v as well makes it a universal approximator of log P as h grows. A bias on E would cancel in the
softmax, so there is none: h (N + 2) parameters, and h is the width that brings that count closest
to the circuit's angles (`generator_width`).

At the start the energies are rescaled to unit spread. A softmax of unit-variance logits gives a
log-normal P whose spread over outcomes is close to the Porter-Thomas spread of a random circuit's
P (what the mapping's probability feature sees at step 0 for the trained circuit), so both start
from comparable distributions.
"""

from __future__ import annotations

import torch
from torch import nn

from .mapping import basis_bits


def generator_width(num_qubits: int, budget: int) -> int:
    """Hidden units h whose h (N + 2) parameters come closest to ``budget`` (at least one)."""
    return max(1, round(budget / (num_qubits + 2)))


def generator_size(num_qubits: int, budget: int) -> int:
    """Trainable parameters of the generator matched to a circuit of ``budget`` angles."""
    return generator_width(num_qubits, budget) * (num_qubits + 2)


class EnergyGenerator(nn.Module):
    """P (2^N,) = softmax over the outcomes of a trained energy of their bits; no circuit runs."""

    def __init__(self, num_qubits: int, budget: int) -> None:
        super().__init__()
        width = generator_width(num_qubits, budget)
        self.register_buffer("spins", basis_bits(2**num_qubits, num_qubits, signed=True), persistent=False)
        self.hidden = nn.Linear(num_qubits, width)
        self.energy = nn.Linear(width, 1, bias=False)
        with torch.no_grad():  # unit spread of the energies at the start (see the module docstring)
            self.energy.weight.div_(self._energies().std().clamp_min(1e-12))

    def _energies(self) -> torch.Tensor:
        return self.energy(nn.functional.softplus(self.hidden(self.spins))).squeeze(-1)

    def forward(self) -> torch.Tensor:
        return torch.softmax(self._energies(), dim=0)
