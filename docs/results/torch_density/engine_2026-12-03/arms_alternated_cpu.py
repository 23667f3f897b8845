"""The noise-aware step beside the noiseless and classical steps of mnist_hardware, alternated in one
process on one thread: python arms_alternated_cpu.py STEPS (docs/hardware.md)."""

import json
import sys

import torch

from qtrain_qiskit.benchmark import alternate, training_step
from qtrain_qiskit.config import from_yaml_and_flags, validate

torch.set_num_threads(1)
arms = {
    "noiseless": {},
    "noisy": {"backend": "torch_density", "noise": "fake_torino"},
    "classical": {"method": "classical", "train_shots": None},
}
steps = {k: training_step(validate(from_yaml_and_flags("configs/mnist_hardware.yaml", v)))[1] for k, v in arms.items()}
r = alternate(steps, int(sys.argv[1]), 3)
out = {k: {"wall": round(v["median_ms"], 2), "cpu": round(v["median_cpu_ms"], 2)} for k, v in r.items()}
out["ratio_wall"] = round(r["noisy"]["median_ms"] / r["classical"]["median_ms"], 2)
out["ratio_cpu"] = round(r["noisy"]["median_cpu_ms"] / r["classical"]["median_cpu_ms"], 2)
out["noisy_over_noiseless_cpu"] = round(r["noisy"]["median_cpu_ms"] / r["noiseless"]["median_cpu_ms"], 2)
print(json.dumps(out))
