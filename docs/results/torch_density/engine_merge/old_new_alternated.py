"""The noisy engine's forward + backward on mnist_hardware's circuit under fake_torino noise: the engine
of commit 8d7e76a ("old") and the working tree's ("new"), alternated in one process, CPU time of one thread.

    OMP_NUM_THREADS=1 python docs/results/torch_density/engine_merge/old_new_alternated.py float64
"""

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import qtrain_qiskit.backends.registry as registry
import qtrain_qiskit.backends.torch_density as new
import torch

from qtrain_qiskit.benchmark import suite_config
from qtrain_qiskit.build import build_model

torch.set_num_threads(1)
source = subprocess.run(
    ["git", "show", "8d7e76a:backends/torch_density.py"], capture_output=True, text=True, check=True
)
path = Path(tempfile.mkdtemp()) / "old_torch_density.py"
path.write_text(source.stdout)
spec = importlib.util.spec_from_file_location("qtrain_qiskit.backends._old_torch_density", path)
old = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = old
register, registry.register = registry.register, lambda cls: cls  # the old class is not registered again
spec.loader.exec_module(old)
registry.register = register

flags = {"train_shots": 8192, "backend": "torch_density", "noise": "fake_torino"}
config = suite_config("mnist_hardware.yaml", flags, Path("configs"), {"batch_size": 64})
model = build_model(config, torch.device("cpu"))
simulation = model.quantum.backend.reference.prepare(model.quantum.circuit)
dtype = getattr(torch, sys.argv[1] if len(sys.argv) > 1 else "float64")
engines = {
    name: (m, m.compile_noisy(simulation, dtype, torch.device("cpu"))) for name, m in (("old", old), ("new", new))
}
values, weights = torch.randn(1, 56, dtype=dtype), torch.randn(1, 128, dtype=dtype)


def step(module, program):
    tensor = values.clone().requires_grad_(True)
    probs = module.simulate_noisy(program, tensor, dtype)
    probs.backward(weights)
    return probs.detach(), tensor.grad


(p_old, g_old), (p_new, g_new) = (step(*engines[name]) for name in ("old", "new"))
print(f"{dtype}: max |P new - P old| {(p_new - p_old).abs().max():.1e}, gradient {(g_new - g_old).abs().max():.1e}")
times = {name: [] for name in engines}
for _ in range(21):
    for name, engine in engines.items():
        step(*engine)
        start = time.process_time()
        for _ in range(10):
            step(*engine)
        times[name].append((time.process_time() - start) / 10 * 1e3)
for name, values_ms in times.items():
    q = statistics.quantiles(values_ms, n=4)
    print(f"{name}: forward + backward {statistics.median(values_ms):.2f} CPU ms (p25-p75 {q[0]:.2f}-{q[2]:.2f})")
