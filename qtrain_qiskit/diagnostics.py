"""What the target network looks like at step 0: generated weights against a standard init.

A hypernetwork's start decides whether its first hundreds of steps learn anything (issue 13). These
figures compare, tensor by tensor and layer by layer, the weights the circuit and mapping generate
before any training with the target's own PyTorch initialization on the same images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .build import build_model
from .config import Config
from .targets import build_target


def effective_rank(matrix: torch.Tensor) -> float:
    """exp(entropy of the normalized singular values) over the full rank: ~1 for a white random matrix."""
    matrix = matrix.reshape(matrix.shape[0], -1)
    s = torch.linalg.svdvals(matrix.double())
    p = s / s.sum()
    return float(torch.exp(-(p * p.clamp_min(1e-300).log()).sum()) / min(matrix.shape))


@torch.no_grad()
def activation_statistics(target: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, float]:
    """Logit offset and spread over inputs; per ReLU, the dead fraction and the mean cosine between images.

    A mean cosine near 1 after a layer means every image reaches the same representation there: the
    output then hardly depends on the input and the loss sits at ln(classes).
    """
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out.flatten(1)))
        for name, module in target.named_modules()
        if isinstance(module, nn.ReLU)
    ]
    try:
        logits = functional_call(target, weights, (x,))
    finally:
        for hook in hooks:
            hook.remove()
    stats = {"logit mean abs offset": logits.mean(0).abs().mean().item(), "logit spread": logits.std(0).mean().item()}
    for name, out in captured.items():
        unit = nn.functional.normalize(out, dim=1)
        n = len(out)
        stats[f"{name} dead"] = (out.max(0).values <= 0).float().mean().item()
        stats[f"{name} cosine"] = (((unit @ unit.T).sum() - n) / (n * n - n)).item()
    return stats


def start_statistics(config: Config, seed: int, x: torch.Tensor) -> list[dict[str, Any]]:
    """Rows (what, generated, standard init) for the model ``config`` builds with ``seed``, on images ``x``."""
    torch.manual_seed(seed)
    model = build_model(config, torch.device("cpu"))
    torch.manual_seed(seed)
    reference = build_target(config.model.target)
    with torch.no_grad():
        generated = model.weight_views(model.generate_weights())
    standard = {name: p.detach() for name, p in reference.named_parameters()}
    rows = []
    for name, value in generated.items():
        rows.append(
            {
                "what": f"{name} rms",
                "generated": value.pow(2).mean().sqrt().item(),
                "standard": standard[name].pow(2).mean().sqrt().item(),
            }
        )
        if value.dim() >= 2:
            rows.append(
                {
                    "what": f"{name} effective rank",
                    "generated": effective_rank(value),
                    "standard": effective_rank(standard[name]),
                }
            )
    ours, theirs = activation_statistics(reference, generated, x), activation_statistics(reference, standard, x)
    rows += [{"what": key, "generated": ours[key], "standard": theirs[key]} for key in ours]
    return rows
