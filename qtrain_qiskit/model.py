"""QuantumTrain: wrap any target `nn.Module`, train it through a quantum circuit, export it back.

Data flow of one forward: quantum layer -> P (2^N,) -> mapping -> theta (M,) -> views of theta
in the target's `named_parameters()` order -> `torch.func.functional_call(target, views, x)`.
The circuit does not depend on the batch, so P is computed once per forward.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .compiled_mapping import CentreAndScale
from .targets import count_parameters, parameter_layout

METHODS = ("quantum_train", "classical")  # classical: the target's own weights (`DirectWeights`)
CENTERING = ("tensor", "global", "none")


WEIGHT_SCALES = ("target_init", "learned", "none")


def per_tensor_mean(values: torch.Tensor, tensor_index: torch.Tensor, tensor_sizes: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (M,) over each target tensor's slice: one value per tensor."""
    sums = torch.zeros_like(tensor_sizes, dtype=values.dtype).index_add(0, tensor_index, values)
    return sums / tensor_sizes


class TensorScale(nn.Module):
    """Per-tensor factors that give each generated target tensor the spread of the target's own init.

    One MLP shared by all M weights has one output scale, whatever a tensor's fan-in: measured at
    step 0 on the reference CNN, the 200-input layer came out 3.7x wider than its standard init and
    the first convolution 2.6x narrower, so the logits started large and input-independent (initial
    loss up to 16) with 40% of the penultimate ReLUs dead.

    ``target_init`` (no parameter) is the hypernetwork initialization of Chang et al. (ICLR 2020):
    each tensor gets a fixed gain, set on the first forward from the spread the mapping then
    produces, so training starts from the target's standard spread and the mapping stays free to
    change it. The gains are a buffer: checkpoints, resume and export keep them. Renormalizing on
    every forward instead would pin each tensor's norm for the whole run; measured on mnist_425 that
    cost 12 points of validation accuracy after 4 epochs (80.8% against 92.4%).

    ``learned`` standardizes on every forward and trains one factor per tensor, starting from the
    same spreads (one parameter per tensor, so it changes the trainable budget).
    """

    def __init__(
        self, target: nn.Module, tensor_index: torch.Tensor, tensor_sizes: torch.Tensor, *, learned: bool
    ) -> None:
        super().__init__()
        self.register_buffer("tensor_index", tensor_index, persistent=False)
        self.register_buffer("tensor_sizes", tensor_sizes, persistent=False)
        # Root mean square, not std: defined for one-element tensors. A tensor initialized to zero
        # (some modules' biases) borrows the smallest non-zero spread, so it can still move.
        spread = torch.stack([p.detach().float().pow(2).mean().sqrt() for p in target.parameters()])
        spread = torch.where(spread > 0, spread, spread[spread > 0].min())
        self.learned = learned
        if learned:
            self.weight = nn.Parameter(spread)
        else:
            self.register_buffer("spread", spread, persistent=False)
            self.register_buffer("gain", torch.full_like(spread, math.nan))  # NaN until the first forward

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        if self.learned:
            return theta * (self.weight.to(theta.dtype) / self.rms(theta))[self.tensor_index]
        return theta * self.weight_gains(theta)

    def rms(self, theta: torch.Tensor) -> torch.Tensor:
        """Root mean square of each target tensor's slice of ``theta``."""
        return per_tensor_mean(theta**2, self.tensor_index, self.tensor_sizes).clamp_min(1e-24).sqrt()

    def fixed_gains(self) -> torch.Tensor | None:
        """The gains (T,) once set, else None; checked again only when the gains change (their version)."""
        key = (self.gain._version, self.gain.data_ptr())
        if getattr(self, "_fixed_key", None) != key:
            self._fixed_key, self._fixed = key, None if self.gain.isnan().any() else self.gain
        return self._fixed

    def weight_gains(self, theta: torch.Tensor) -> torch.Tensor:
        """The fixed gains spread over the M weights (M,), set from ``theta`` on the first forward.

        The gains change only when set or loaded, both in place, which bumps the tensor's version: the
        check for unset gains and the gather over M run then, not on every step (same values).
        """
        key = (self.gain._version, self.gain.data_ptr(), theta.dtype, self.tensor_index.device)
        if getattr(self, "_gains_key", None) == key:
            return self._gains
        if self.gain.isnan().any():
            # A tensor the mapping starts (nearly) constant on, e.g. a 4-element bias under a product
            # state, would get an unbounded gain (2e11 measured, and the run diverged): its spread is
            # floored at 1e-3 of the spread over all weights, far below any tensor of the reference CNN.
            overall = theta.pow(2).mean().sqrt()
            self.gain.copy_(self.spread / torch.maximum(self.rms(theta), 1e-3 * overall).detach())
        gains = self.gain.to(theta.dtype)[self.tensor_index]
        if not torch.is_inference_mode_enabled():  # an inference tensor could not be saved for a later backward
            self._gains = gains
            self._gains_key = (self.gain._version, self.gain.data_ptr(), theta.dtype, self.tensor_index.device)
        return gains


class QuantumTrain(nn.Module):
    """A target model whose weights are generated by ``quantum`` (angles -> P) and ``mapping``.

    The target's own parameters are frozen and never used: the forward pass runs the target
    functionally on the generated weights, so gradients flow into the angles and the mapping.

    ``train_shots`` S: in training mode the mapping sees P estimated from S fresh shots (with a
    straight-through gradient, see `shot_noise`); in eval mode and in `export` P stays exact. On a
    sampled backend the builder passes None: the backend's own shots are then the measurement.
    """

    def __init__(
        self,
        target: nn.Module,
        quantum: nn.Module,
        mapping: nn.Module,
        *,
        center: str = "tensor",
        weight_scale: str = "target_init",
        train_shots: int | None = None,
    ) -> None:
        super().__init__()
        self.train_shots = train_shots
        if center not in CENTERING:
            raise ValueError(f"center must be one of {', '.join(CENTERING)}, got {center!r}")
        self.target, self.quantum, self.mapping, self.center = target, quantum, mapping, center
        self.target.requires_grad_(False)
        self.layout = parameter_layout(target)
        self.num_target_weights = count_parameters(target)
        sizes = torch.tensor([math.prod(shape) for _, shape in self.layout])
        self.register_buffer("tensor_index", torch.repeat_interleave(torch.arange(len(sizes)), sizes), persistent=False)
        self.register_buffer("tensor_sizes", sizes.float(), persistent=False)
        # centring and scaling as one compiled pass where it applies (`_fixed_gains`); `subspace` turns
        # this off, as forward-mode AD needs torch's own operations
        self.fast_paths = True
        self.tensor_bounds = np.concatenate([[0], np.cumsum(sizes.numpy())])  # tensor t: theta[bounds[t]:bounds[t+1]]
        if weight_scale not in WEIGHT_SCALES:
            raise ValueError(f"weight_scale must be one of {', '.join(WEIGHT_SCALES)}, got {weight_scale!r}")
        self.scale = (
            None
            if weight_scale == "none"
            else TensorScale(target, self.tensor_index, self.tensor_sizes, learned=weight_scale == "learned")
        )

    def generate_weights(self) -> torch.Tensor:
        """theta (M,): one circuit evaluation, the mapping model, then centring.

        One MLP shared by all weights gives every target tensor a common offset; with ReLU targets
        a negative one silences whole layers at the start. ``tensor`` centring (the default)
        removes each tensor's mean, ``global`` the mean over all M (the QT authors'), ``none``
        neither (the seed's).
        """
        probs = self.quantum()
        if self.training and self.train_shots:
            from .shot_noise import straight_through_shots

            probs = straight_through_shots(probs, self.train_shots)
        return self.weights_from_probabilities(probs)

    def weights_from_probabilities(self, probs: torch.Tensor) -> torch.Tensor:
        """theta (M,) from given outcome probabilities (e.g. measured once on hardware)."""
        generated = self.mapping(probs)
        gains = self._fixed_gains(generated)
        if gains is not None:  # the same as below, one compiled pass forward and one backward
            return CentreAndScale.apply(generated, self.tensor_bounds, gains)
        # Centring and rescaling in float64: with the raw feature the weights differ by ~1e-5 of their
        # common offset, below what a float32 sum over a tensor resolves.
        theta = generated.double()
        if self.center == "global":
            theta = theta - theta.mean()
        elif self.center == "tensor":
            theta = theta - per_tensor_mean(theta, self.tensor_index, self.tensor_sizes)[self.tensor_index]
        return (theta if self.scale is None else self.scale(theta)).to(generated.dtype)

    def _fixed_gains(self, generated: torch.Tensor) -> torch.Tensor | None:
        """The per-tensor gains (T,) where centring and scaling can run as `CentreAndScale`: tensor
        centring, fixed gains already set (or none), on CPU; None where the torch operations run."""
        if not self.fast_paths or self.center != "tensor" or generated.device.type != "cpu":
            return None
        if self.scale is None:
            return self.tensor_sizes.new_ones(len(self.tensor_sizes))
        return None if self.scale.learned else self.scale.fixed_gains()

    def classical_parameters(self) -> list[nn.Parameter]:
        """What is trained besides the angles: the mapping MLP and the per-tensor scales if any."""
        return [*self.mapping.parameters(), *(self.scale.parameters() if self.scale is not None else ())]

    def weight_views(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """theta sliced and reshaped into the target's parameters (views, so gradients flow)."""
        sizes = [math.prod(shape) for _, shape in self.layout]
        chunks = torch.split(theta, sizes)
        return {name: chunk.view(shape) for (name, shape), chunk in zip(self.layout, chunks, strict=True)}

    def run_target(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The target's output on ``x`` with generated weights ``theta`` (reuse theta across batches)."""
        return functional_call(self.target, self.weight_views(theta), (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_target(self.generate_weights(), x)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters by part (a frozen circuit's angles are not), and the target size."""
        quantum = sum(p.numel() for p in self.quantum.parameters() if p.requires_grad)
        mapping = sum(p.numel() for p in self.classical_parameters())
        return {
            "quantum_params": quantum,
            "mapping_params": mapping,
            "trainable_params": quantum + mapping,
            "target_params": self.num_target_weights,
        }

    @torch.no_grad()
    def export(self, probs: torch.Tensor | None = None) -> nn.Module:
        """A plain copy of the target carrying the generated weights: no quantum code needed.

        ``probs``: the distribution the weights come from, e.g. the one just scored on a device, so
        the exported model is the tested one (another execution would be another sample, and paid).
        """
        model = copy.deepcopy(self.target)
        theta = self.weights_from_probabilities(self.quantum() if probs is None else probs)
        for name, value in self.weight_views(theta).items():
            model.get_parameter(name).copy_(value)
        return model.requires_grad_(True)


class DirectWeights(nn.Module):
    """The classical baseline's stand-in for circuit + mapping: the target's own M weights, trained
    directly from PyTorch's initialization. Same trainer, data, epochs and export as a QT run."""

    num_qubits = 0

    def __init__(self, target: nn.Module) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.cat([p.detach().flatten() for p in target.parameters()]))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return self.weight


class NoCircuit(nn.Module):
    """The classical baseline and the bits-only ablation execute no circuit: an empty vector."""

    def forward(self) -> torch.Tensor:
        return torch.empty(0)


class FixedProbabilities(nn.Module):
    """The ``random_vector`` ablation: a probability vector drawn once per seed, never trained.

    Dirichlet(1, ..., 1) over 2^N outcomes (normalized exponentials) is the Porter-Thomas law that
    the outcome probabilities of deep random circuits follow, so the mapping sees a vector with the
    statistics of a random circuit's P, without any circuit. A persistent buffer: checkpoints,
    resume and export carry the very same vector.
    """

    def __init__(self, num_qubits: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        draws = torch.empty(2**num_qubits, dtype=torch.float64).exponential_(generator=generator)
        self.register_buffer("probs", (draws / draws.sum()).float())

    def forward(self) -> torch.Tensor:
        return self.probs
