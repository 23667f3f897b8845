"""Fine-tuning a trained run's mapping on a device's measured P: the trial's cheap device in the loop.

A trial measures the model's circuit a few times (`qtrain_qiskit.trial`); with no further QPU time
the mapping (the circuit kept) can learn to read the device's P instead of the exact one. What it
can learn from so few estimates is the device's systematic distortion; what it must not learn is
the shot noise of the particular estimates it trains on, since it is judged on fresh ones. The
settings below choose what it trains on (each estimate in turn, their mean, or fresh multinomial
draws of ``shots`` shots from their mean, which teach it the shot noise it will meet), which
parameters move (the whole mapping or its last layer), and an optional proximal penalty that holds
the mapping near the exactly trained one.

Settings are chosen on the run's own validation split, with the estimates left out one at a time
(`validate`): never on the test split, never on the estimates used to judge the result.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluation import score

PARAMS = ("mapping", "last")  # the whole mapping (and learned scales, if any), or its last linear layer
SOURCES = ("each", "mean", "resample")  # what each step reads: one estimate, their mean, a fresh draw from it


@dataclass(frozen=True)
class FinetuneSettings:
    """One fine-tune: steps of Adam at ``lr`` on batches of ``batch`` training images (see the module)."""

    steps: int = 300
    lr: float = 1e-3
    params: str = "mapping"
    source: str = "each"
    prox: float = 0.0  # weight of sum((w - w_start)^2) in the loss; 0: none
    shots: int = 8192  # of each fresh draw (source "resample"): the shots of one device estimate
    batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.params not in PARAMS or self.source not in SOURCES:
            raise ValueError(f"params must be one of {PARAMS} and source one of {SOURCES}")

    def label(self) -> str:
        prox = f", prox {self.prox:g}" if self.prox else ""
        batch = f", batch {self.batch}" if self.batch != 64 else ""
        return f"{self.source}, {self.params}, {self.steps} steps, lr {self.lr:g}{batch}{prox}"


def _trained(model: Any, params: str) -> list[torch.nn.Parameter]:
    if params == "last":
        last = [m for m in model.mapping.modules() if isinstance(m, torch.nn.Linear)][-1]
        return list(last.parameters())
    return list(model.classical_parameters())


def _reader(estimates: list[np.ndarray], settings: FinetuneSettings, generator: torch.Generator) -> Any:
    """A function returning the P of the next step, as ``settings.source`` says."""
    probs = [torch.as_tensor(p, dtype=torch.float64) for p in estimates]
    mean = torch.stack(probs).mean(0)
    if settings.source == "mean":
        return lambda: mean
    if settings.source == "each":
        return lambda: probs[int(torch.randint(len(probs), (1,), generator=generator))]

    def draw() -> torch.Tensor:
        shots = torch.multinomial(mean, settings.shots, replacement=True, generator=generator)
        return torch.bincount(shots, minlength=len(mean)).double() / settings.shots

    return draw


def finetune_mapping(model: Any, estimates: list[np.ndarray], data: Any, settings: FinetuneSettings) -> Any:
    """A copy of ``model`` whose mapping learned on ``estimates`` (measured P), the circuit untouched.

    Each step reads one P (see ``settings.source``) and a batch of ``data``: the mapping learns to read
    the device's P, which costs no QPU time.
    """
    tuned = copy.deepcopy(model).train()
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    trained = _trained(tuned, settings.params)
    for parameter in trained:
        parameter.requires_grad_(True)
    start = [p.detach().clone() for p in trained]
    optimizer = torch.optim.Adam(trained, lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    read = _reader(estimates, settings, generator)
    for _ in range(settings.steps):
        x, y = data.batch(torch.randint(len(data), (settings.batch,), generator=generator), torch.device("cpu"))
        loss = torch.nn.functional.cross_entropy(tuned.run_target(tuned.weights_from_probabilities(read()), x), y)
        if settings.prox:
            loss = loss + settings.prox * sum(((p - s) ** 2).sum() for p, s in zip(trained, start, strict=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return tuned.eval()


def accuracy(model: Any, data: Any, probs: np.ndarray) -> float:
    """Accuracy on ``data`` of the weights ``model`` generates from ``probs``."""
    return score(model, data, 1000, probs=torch.as_tensor(probs, dtype=torch.float64))[1]


def recovered(model: Any, tuned: Any, data: Any, fresh: list[np.ndarray], exact: float) -> dict[str, Any]:
    """Mean accuracy on ``fresh`` estimates before and after, and the share of the drop from ``exact``."""
    before = float(np.mean([accuracy(model, data, p) for p in fresh]))
    after = float(np.mean([accuracy(tuned, data, p) for p in fresh]))
    drop = exact - before
    return {"before": before, "after": after, "drop_recovered": (after - before) / drop if drop > 0 else None}


def validate(model: Any, estimates: list[np.ndarray], train: Any, val: Any, exact_val: float,
             settings: FinetuneSettings) -> dict[str, Any]:  # fmt: skip
    """Leave one estimate out: tune on the others (training split), judge on it (validation split).

    Returns the mean before / after accuracy over the folds and the share of the drop recovered.
    """
    folds = []
    for k in range(len(estimates)):
        tuned = finetune_mapping(model, estimates[:k] + estimates[k + 1 :], train, settings)
        folds.append(recovered(model, tuned, val, [estimates[k]], exact_val))
    before, after = np.mean([f["before"] for f in folds]), np.mean([f["after"] for f in folds])
    drop = exact_val - before
    return {
        "before": float(before),
        "after": float(after),
        "drop_recovered": (after - before) / drop if drop > 0 else None,
    }


# The reported search: the setting first tried (300 steps at lr 1e-3 on each estimate in turn), then one
# change at a time; `search` keeps the best on validation.
SEARCH = (
    FinetuneSettings(),
    FinetuneSettings(source="mean"),
    FinetuneSettings(source="resample"),
    FinetuneSettings(source="resample", steps=1000),
    FinetuneSettings(source="resample", steps=1000, lr=3e-3),
    FinetuneSettings(source="resample", params="last", steps=1000, lr=3e-3),
    FinetuneSettings(source="resample", steps=1000, lr=3e-3, prox=1.0),
    FinetuneSettings(source="resample", steps=1000, lr=3e-4),
    FinetuneSettings(source="resample", steps=1000, lr=1e-3, batch=256),
    FinetuneSettings(source="each", steps=1000, lr=1e-3),
    FinetuneSettings(source="resample", steps=1000, lr=1e-3, prox=0.1),
    FinetuneSettings(source="resample", steps=1000, lr=1e-4),
    FinetuneSettings(source="resample", steps=3000, lr=3e-4),
    FinetuneSettings(source="mean", steps=1000, lr=3e-4),
)


def search(
    model: Any,
    estimates: list[np.ndarray],
    splits: dict[str, Any],
    fresh: list[np.ndarray],
    candidates: tuple[FinetuneSettings, ...] = SEARCH,
    echo: Any = print,
) -> list[dict[str, Any]]:
    """Every candidate validated (`validate`) and, for the report only, judged on ``fresh`` test estimates.

    ``splits`` holds "train", "val" and "test" data. The choice is the best validation recovery; the
    test figures are reported beside it and take no part in it. A last row is the control: the chosen
    setting trained on the exact P instead of the device's, judged the same way (what more training
    alone gives).
    """
    exact_probs = model.quantum().detach().double().numpy()
    exact = {name: accuracy(model, splits[name], exact_probs) for name in ("val", "test")}
    rows = []
    for candidate in candidates:
        row = {"label": candidate.label(), "settings": asdict(candidate)}
        row["val"] = validate(model, estimates, splits["train"], splits["val"], exact["val"], candidate)
        tuned = finetune_mapping(model, estimates, splits["train"], candidate)
        row["test"] = recovered(model, tuned, splits["test"], fresh, exact["test"])
        val, test = _pct(row["val"]["drop_recovered"]), _pct(row["test"]["drop_recovered"])
        echo(f"{row['label']}: validation {val}, test {test}")
        rows.append(row)
    best = max(rows, key=lambda r: -np.inf if r["val"]["drop_recovered"] is None else r["val"]["drop_recovered"])
    best["chosen"] = True
    chosen = FinetuneSettings(**best["settings"])
    control = finetune_mapping(model, [exact_probs], splits["train"], chosen)
    rows.append({"label": f"control: exact P, {chosen.label()}", "settings": asdict(chosen), "control": True,
                 "test": recovered(model, control, splits["test"], fresh, exact["test"])})  # fmt: skip
    return rows


def write_search(out: Path, rows: list[dict[str, Any]]) -> None:
    """``finetune_search.md`` and ``.json`` in the trial folder: every setting, its validation and test recovery."""
    (out / "finetune_search.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| setting | validation: before / after (recovered) | test, fresh estimates: before / after (recovered) |",
        "|---|---|---|",
    ]
    for row in rows:
        cells = [row["label"] + (" **(chosen)**" if row.get("chosen") else "")]
        for part in ("val", "test"):
            r = row.get(part)
            cells.append(
                "-"
                if r is None
                else f"{100 * r['before']:.2f}% / {100 * r['after']:.2f}% ({_pct(r['drop_recovered'])})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    (out / "finetune_search.md").write_text("\n".join(lines) + "\n")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"
