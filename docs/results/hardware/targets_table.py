"""The targets table of README "Hardware" from the run and sweep files (run from the repository root,
with the run directories runs/hw, runs/hw_compact and the sweeps runs/sweeps of docs/results/hardware/README)."""

import json, csv, statistics as st


def load(R, key):
    if key.startswith("sweep:"):
        name = R.split("/")[-1]
        for r in csv.DictReader(open(f"runs/sweeps/{name}/results.csv")):
            if r["condition"] == key[6:]:
                return float(r["accuracy"])
        return None
    if key == "exact":
        return json.load(open(f"{R}/summary.json"))["test_accuracy"]
    try:
        return json.load(open(f"{R}/eval_{key}.json"))["test_accuracy"]
    except Exception:
        return None


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "not run", None
    m = st.mean(vals)
    return (
        f"{100 * m:.2f}% ({100 * min(vals):.2f}-{100 * max(vals):.2f}){'' if len(vals) == 3 else f' [{len(vals)} seeds]'}",
        m,
    )


rows = [
    ("exact (torch engine, float64)", "exact"),
    ("1,024 noiseless shots (`aer_shots`)", "shots1024"),
    ("8,192 noiseless shots (sweep)", "sweep:shots:8192"),
    ("fake_torino @ 8,192 (evaluate.py)", "fake_torino"),
    ("fake_torino @ 8,192 + mthree", "fake_torino_mthree"),
    ("fake_torino @ 8,192 (sweep, other seed)", "sweep:device:fake_torino@8192"),
    ("fake_sherbrooke (Eagle) @ 8,192 (sweep)", "sweep:device:fake_sherbrooke@8192"),
    ("fake_sherbrooke @ 8,192 + mthree", "fake_sherbrooke_mthree"),
    ("fake_fez (Heron r2, unseen) @ 8,192 (sweep)", "sweep:device:fake_fez@8192"),
    ("fake_fez @ 8,192 + mthree", "fake_fez_mthree"),
]
targets = {
    "exact": (0.98, None),
    "shots1024": (0.975, None),
    "fake_torino": (0.975, 0.95),
    "fake_torino_mthree": (0.975, 0.95),
    "sweep:device:fake_sherbrooke@8192": (0.96, None),
    "fake_sherbrooke_mthree": (0.96, None),
    "sweep:device:fake_fez@8192": (0.97, None),
    "fake_fez_mthree": (0.97, None),
}
groups = [("runs/hw/mnist_hardware_seed", 0), ("runs/hw_compact/mnist_hardware_compact_seed", 1)]
print("| evaluation | mnist_hardware (1,296 trainable) | target | mnist_hardware_compact (566) | target |")
print("|---|---|---|---|---|")
for label, key in rows:
    cells = []
    for g, i in groups:
        text, m = fmt([load(f"{g}{s}", key) for s in (0, 1, 2)])
        t = targets.get(key, (None, None))[i]
        if t is None:
            tt = "-"
        elif m is None:
            tt = f">= {100 * t:.1f}%"
        else:
            tt = f">= {100 * t:.1f}%: " + ("met" if m >= t else f"missed by {100 * (t - m):.2f}")
        cells += [text, tt]
    print(f"| {label} | " + " | ".join(cells) + " |")
tr = [json.load(open(f"runs/hw/mnist_hardware_seed{s}/summary.json"))["train_seconds"] for s in (0, 1, 2)]
tc = [
    json.load(open(f"runs/hw_compact/mnist_hardware_compact_seed{s}/summary.json"))["train_seconds"] for s in (0, 1, 2)
]
print(
    f"| training time (s, 2 runs at a time) | {st.mean(tr):.0f} ({min(tr):.0f}-{max(tr):.0f}) | <= 600: met | {st.mean(tc):.0f} ({min(tc):.0f}-{max(tc):.0f}) | - |"
)
