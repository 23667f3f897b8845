"""The "device in the loop" table of docs/hardware.md, from the files kept here (run from the repository root).

    python docs/results/hardware/device_in_the_loop/table.py

Per seed: `exact_seed<s>/` is configs/mnist_hardware.yaml trained exactly (--train-shots none);
`eval_fake_torino.json` its one 8,192-shot fake_torino evaluation (simulator seed s) beside the exact
figure. `ft_seed<s>/` fine-tunes the mapping alone from it through the sampled aer_noisy path
(fake_torino, 8,192 shots a step, --quantum frozen, 1,000 steps); `eval_fake_torino_seed1000.json`
evaluates it on fresh shots (simulator seed 1000, training used s).
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def load(path: Path) -> dict:
    return json.loads(path.read_text())


rows = []
for seed in (0, 1, 2):
    before_path = HERE / f"exact_seed{seed}" / "eval_fake_torino.json"
    after_path = HERE / f"ft_seed{seed}" / "eval_fake_torino_seed1000.json"
    if not (before_path.exists() and after_path.exists()):
        continue
    before, after = load(before_path), load(after_path)
    tuned = load(HERE / f"ft_seed{seed}" / "summary.json")
    exact, device, recovered = before["exact_test_accuracy"], before["test_accuracy"], after["test_accuracy"]
    fraction = (recovered - device) / (exact - device)
    steps = 1000  # config max_steps; one 8,192-shot circuit each, plus 2 validation passes and the test
    shots = (steps + 3) * 8192
    rows.append((seed, exact, device, recovered, fraction, after["exact_test_accuracy"], shots, tuned["wall_seconds"]))

COLUMNS = ["seed", "exact", "fake_torino before", "fake_torino after (fresh shots)", "drop recovered"]
COLUMNS += ["after, exact P", "shots", "wall"]
print("| " + " | ".join(COLUMNS) + " |")
print("|---|---|---|---|---|---|---|---|")
for seed, exact, device, recovered, fraction, tuned_exact, shots, wall in rows:
    print(
        f"| {seed} | {exact:.2%} | {device:.2%} | {recovered:.2%} | {fraction:.0%} | {tuned_exact:.2%} | "
        f"{shots:,} | {wall / 60:.1f} min |"
    )
if len(rows) > 1:
    mean = [statistics.mean(r[i] for r in rows) for i in (1, 2, 3)]
    print(
        f"| mean | {mean[0]:.2%} | {mean[1]:.2%} | {mean[2]:.2%} | "
        f"{(mean[2] - mean[1]) / (mean[0] - mean[1]):.0%} (of the mean drop) | "
        f"{statistics.mean(r[5] for r in rows):.2%} | | |"
    )
