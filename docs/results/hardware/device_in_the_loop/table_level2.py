"""The "device in the loop" table re-measured through the noise-aware layout (docs/hardware.md).

    python docs/results/hardware/device_in_the_loop/table_level2.py

Per seed, from `level2/`: `exact_seed<s>/` and `ft_seed<s>/` hold ten fresh 8,192-shot fake_torino
evaluations each (`scripts/benchmark.py --evaluate ... --steps 10 --seed 2000`) of the exactly trained
run (`../exact_seed<s>`, the same run as in the first table) and of its mapping fine-tuned through
aer_noisy at level 2; `ft_seed<s>/eval_exact.json` reads the fine-tuned model from exact P.
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def ten(run: str) -> list[float]:
    return load(HERE / "level2" / run / "benchmark_fake_torino_10x_seed2000.json")["test_accuracies"]


COLUMNS = ["seed", "exact", "fake_torino before (10 evaluations)", "after (10 fresh evaluations)"]
COLUMNS += ["drop recovered", "after, exact P", "wall"]
print("| " + " | ".join(COLUMNS) + " |")
print("|---|---|---|---|---|---|---|")
for seed in (0, 1, 2):
    tuned = HERE / "level2" / f"ft_seed{seed}"
    if not (tuned / "benchmark_fake_torino_10x_seed2000.json").exists():
        continue
    exact = load(HERE / f"exact_seed{seed}" / "summary.json")["test_accuracy"]
    before, after = ten(f"exact_seed{seed}"), ten(f"ft_seed{seed}")
    fraction = (statistics.mean(after) - statistics.mean(before)) / (exact - statistics.mean(before))
    exact_after = load(tuned / "eval_exact.json")["test_accuracy"]
    minutes = load(tuned / "summary.json")["wall_seconds"] / 60
    cells = [f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}%" for v in (before, after)]
    row = [str(seed), f"{100 * exact:.2f}%", *cells, f"{100 * fraction:.0f}%", f"{100 * exact_after:.2f}%"]
    print("| " + " | ".join([*row, f"{minutes:.1f} min"]) + " |")
