"""Step-time measurement: a real training step (forward, backward, clip, Adam) on the seed config.

Inputs are random tensors of the dataset's shape: step time does not depend on pixel values, and
the benchmark then needs no data on disk. `time_scaling` repeats the measurement for targets of
about 2^N weights, one fresh process per N, so that each N's peak memory is its own.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import backends
from .build import build_backend, build_circuit, build_model, resolve_device
from .config import Config
from .stepper import Stepper
from .targets import mlp_for_qubits


def peak_rss_mib() -> float:
    """The largest resident set size of this process image so far, in MiB.

    Linux's VmHWM, not ``getrusage``'s max RSS: the latter carries over, through fork and exec,
    the RSS of the parent that spawned the process, which would hide every smaller peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def training_step(config: Config) -> tuple[Any, Callable[[], None]]:
    """The configured model and one real training step on random inputs of the dataset's shape."""
    device = resolve_device(config.execution.device)
    torch.manual_seed(config.train.seed)
    model = build_model(config, device)
    stepper = Stepper(model, config.train.lr, config.train.clip, device)
    x = torch.randn(config.train.batch_size, *INPUT_SHAPES[config.data.dataset], device=device)
    y = torch.randint(0, 10, (config.train.batch_size,), device=device)

    def step() -> None:  # what the trainer does per step, less its bookkeeping
        _, _, norms = stepper.backward(x, y)
        stepper.update(norms)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return model, step


def time_steps(config: Config, steps: int, warmup: int = 3) -> dict[str, Any]:
    """Median and spread of ``steps`` timed training steps after ``warmup`` untimed ones."""
    device = resolve_device(config.execution.device)
    rss_before = peak_rss_mib()
    model, step = training_step(config)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    # inclusive: within the measured range (the default extrapolates below the fastest step for few steps)
    quartiles = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {
        "backend": config.execution.backend,
        "grad": config.execution.grad,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "num_qubits": model.mapping.num_qubits,
        "num_blocks": config.circuit.blocks,
        "batch_size": config.train.batch_size,
        "steps": steps,
        "median_step_ms": statistics.median(times),
        "p25_step_ms": quartiles[0],
        "p75_step_ms": quartiles[2],
        "target": config.model.target,
        "mapping_chunk": config.model.mapping_chunk,
        "precision": config.execution.precision,
        "rss_before_model_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        **model.parameter_counts(),
    }


def time_scaling(config: Config, qubits: Sequence[int], steps: int, warmup: int) -> list[dict[str, Any]]:
    """`time_steps` with the target ``mlp_for_qubits(N)`` (M just under 2^N) for each N in ``qubits``.

    Each N runs in a fresh spawned process: max RSS only ever grows, so a process shared between
    sizes would report the largest one's peak for all of them.
    """
    results = []
    for num_qubits in qubits:
        point = copy.deepcopy(config)
        point.model.target, point.circuit.qubits = mlp_for_qubits(num_qubits), None
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(time_steps, point, steps, warmup).result())
    return results


def time_evaluations(config: Config, repeats: int, run: str | None = None) -> dict[str, Any]:
    """One-time preparation and the median time of one circuit evaluation (the circuit sampled once).

    With ``run`` (a run directory) its best angles are sampled and each evaluation is also scored as
    `scripts/evaluate.py` does: the weights regenerated from the sampled P and tested on the test split
    (``median_scored_evaluation_s``: circuit, weights and test together, preparation excluded).
    """
    from .targets import build_target, count_parameters

    if run is not None:
        return _time_run_evaluations(config, repeats, run)
    circuit = build_circuit(config, count_parameters(build_target(config.model.target)))
    values = np.random.default_rng(config.train.seed).uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    start = time.perf_counter()
    backend = build_backend(config, resolve_device(config.execution.device))
    backend.prepare(circuit)
    prepare_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.probabilities(circuit, values)
        times.append(time.perf_counter() - start)
    return {**_evaluation_header(config, backend, circuit, repeats), "prepare_s": prepare_s,
            "median_evaluation_s": statistics.median(times)}  # fmt: skip


def _evaluation_header(config: Config, backend: Any, circuit: Any, repeats: int) -> dict[str, Any]:
    """What was timed: the backend with the options it reads (noise, shots, sampling, ...), the circuit."""
    return {
        "backend": config.execution.backend,
        **dataclasses.asdict(backends.options_for(config.execution.backend, config.execution)),
        "shots": None if backend.exact else config.execution.shots,
        "num_qubits": circuit.num_qubits,
        "num_blocks": config.circuit.blocks,
        "repeats": repeats,
    }


def _time_run_evaluations(config: Config, repeats: int, path: str) -> dict[str, Any]:
    from .data import load_dataset, resolve_data_dir
    from .evaluation import score
    from .rundir import BEST_CHECKPOINT, RunDir, load_model_state

    run = RunDir.existing(path)
    state = run.load_checkpoint(BEST_CHECKPOINT)["model"]
    data = load_dataset(
        config.data.dataset, resolve_data_dir(config.data.data_dir), train=False, download=config.data.download
    )
    start = time.perf_counter()
    model = build_model(config, resolve_device(config.execution.device))  # the backend is prepared here
    load_model_state(model, state, f"of {path}")
    prepare_s = time.perf_counter() - start
    circuit_times, scored_times, accuracies = [], [], []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            probs = model.quantum()
            sampled = time.perf_counter()
            _, accuracy = score(model, data, config.train.eval_batch_size, probs=probs)
            circuit_times.append(sampled - start)
            scored_times.append(time.perf_counter() - start)
            accuracies.append(accuracy)
    quantum = model.quantum
    circuit = quantum.circuit if hasattr(quantum, "circuit") else quantum.neural_network.circuit
    return {
        "run": str(path),
        **_evaluation_header(config, getattr(quantum, "backend", None) or quantum.neural_network.backend, circuit,
                             repeats),
        "prepare_s": prepare_s,
        "median_evaluation_s": statistics.median(circuit_times),
        "median_scored_evaluation_s": statistics.median(scored_times),
        "evaluation_s": circuit_times,
        "scored_evaluation_s": scored_times,
        "test_accuracies": accuracies,
    }  # fmt: skip


# The side-by-side comparison: (label, config file, flags, label of the step it is compared with).
# Config files are read from the checkout's configs/ folder; None is the defaults (the seed's
# reference, as configs/mnist.yaml) and "main" the train command's main job.
SUITE = (
    ("classical step, reference CNN", None, {"method": "classical"}, None),
    ("QT reference, torch_statevector + adjoint", None, {"backend": "torch_statevector", "grad": "adjoint"},
     "classical step, reference CNN"),
    ("QT reference, aer_statevector (the card's path)", None, {"backend": "aer_statevector"},
     "classical step, reference CNN"),
    ("mnist_hardware as shipped, --train-shots 8192", "mnist_hardware.yaml", {"train_shots": 8192},
     "classical step, reference CNN"),
    ("mnist_hardware under fake_torino noise (torch_density)", "mnist_hardware.yaml",
     {"train_shots": 8192, "backend": "torch_density", "noise": "fake_torino"}, "classical step, reference CNN"),
    ("mnist_hardware under fake_torino noise (torch_density, float64)", "mnist_hardware.yaml",
     {"train_shots": 8192, "backend": "torch_density", "noise": "fake_torino", "density_precision": "float64"},
     "classical step, reference CNN"),
    ("main job (mnist_hardware settings on aer_statevector)", "main", {}, "classical step, reference CNN"),
)  # fmt: skip
CIFAR_SUITE = (
    ("classical step, qt_cifar_cnn", "cifar10_qt.yaml", {"method": "classical"}, None),
    ("QT cifar10_qt (19 qubits), torch_statevector", "cifar10_qt.yaml", {}, "classical step, qt_cifar_cnn"),
)


def suite_config(source: str | None, flags: dict[str, Any], configs: Path, common: dict[str, Any]) -> Config:
    """One suite entry's configuration: its file (or the defaults, or the main job), its flags, ``common``."""
    from .commands.train import MAIN_JOB
    from .config import apply, load_yaml, validate

    config = Config()
    if source == "main":
        apply(config, MAIN_JOB, "MAIN_JOB")
    elif source is not None:
        apply(config, load_yaml(configs / source), source)
    return validate(apply(apply(config, flags, "suite"), common, "command line"))


def alternate(steps: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Each step timed ``repeats`` times, the steps taking turns, so that a change in the machine's
    load falls on all of them alike; wall and CPU (all threads of this process) milliseconds."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    wall: dict[str, list[float]] = {label: [] for label in steps}
    cpu: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(repeats):
        for label, step in steps.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            wall[label].append((time.perf_counter() - start) * 1e3)
            cpu[label].append((time.process_time() - start_cpu) * 1e3)
    out = {}
    for label in steps:
        quartiles = statistics.quantiles(wall[label], n=4, method="inclusive") if repeats > 1 else [wall[label][0]] * 3
        out[label] = {"median_ms": statistics.median(wall[label]), "p25_ms": quartiles[0], "p75_ms": quartiles[2],
                      "median_cpu_ms": statistics.median(cpu[label])}  # fmt: skip
    return out


def part_steps(model: Any) -> dict[str, Callable[[], None]]:
    """The two parts a QT step adds to the classical one, each forward and backward on its own.

    ``circuit``: angles -> P (with the train-shot draw where configured), then the backend's reverse
    pass for a fixed random cotangent. ``mapping``: a fixed P -> generated weights (centring and
    scale included) and back. The classical step plus both is what a QT step cannot go below
    whatever the glue between them costs: the floor its ratio is measured against.
    """
    from .shot_noise import straight_through_shots

    model.train()
    probs = model.quantum().detach()
    probs_cotangent = torch.randn_like(probs)
    weights_cotangent = torch.randn_like(model.weights_from_probabilities(probs).detach())

    def circuit() -> None:
        out = model.quantum()
        out = straight_through_shots(out, model.train_shots) if model.train_shots else out
        (out * probs_cotangent).sum().backward()

    def mapping() -> None:
        (model.weights_from_probabilities(probs) * weights_cotangent).sum().backward()

    return {"circuit": circuit, "mapping": mapping}


def compare_steps(entries: Sequence[tuple], configs: Path, common: dict[str, Any], repeats: int, warmup: int,
                  threads: int | None = None, parts: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """The entries' training steps alternated in this process; each row with its ratio to its baseline.

    ``threads`` sets torch's intra-op threads (None: torch's default) before anything is built.
    ``parts``: every QT entry's circuit and mapping (`part_steps`) are timed in the same turns, as
    rows "<label> / circuit" and "<label> / mapping" with their ratios to the same baseline.
    """
    if threads:
        torch.set_num_threads(threads)
    built = {label: training_step(suite_config(source, flags, configs, common)) for label, source, flags, _ in entries}
    steps = {label: step for label, (_, step) in built.items()}
    part_rows = []
    for label, source, flags, baseline in entries:
        if parts and baseline is not None:
            for part, step in part_steps(built[label][0]).items():
                steps[f"{label} / {part}"] = step
                part_rows.append((f"{label} / {part}", source, {**flags, "part": part}, baseline))
    timed = alternate(steps, repeats, warmup)
    rows = []
    for label, source, flags, baseline in [*entries, *part_rows]:
        row = {"step": label, "config": source or "defaults (configs/mnist.yaml)", "flags": flags, **timed[label]}
        if baseline is not None:
            row["ratio"] = timed[label]["median_ms"] / timed[baseline]["median_ms"]
            row["cpu_ratio"] = timed[label]["median_cpu_ms"] / timed[baseline]["median_cpu_ms"]
        model = built[label.split(" / ")[0]][0]
        rows.append({**row, "trainable_params": model.parameter_counts()["trainable_params"],
                     "torch_threads": torch.get_num_threads()})  # fmt: skip
    return rows


def peak_memory(entry: tuple, configs: Path, common: dict[str, Any], steps: int) -> dict[str, Any]:
    """Peak resident memory of a few steps of one entry, in a fresh process of its own (see `time_scaling`)."""
    label, source, flags, _ = entry
    config = suite_config(source, flags, configs, common)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = pool.submit(time_steps, config, steps, 1).result()
    return {
        "step": label,
        "peak_rss_mib": result["peak_rss_mib"],
        "rss_before_model_mib": result["rss_before_model_mib"],
    }


def run_suite(
    configs: Path, repeats: int, warmup: int, threads: int | None, cifar: bool, parts: bool = False
) -> dict[str, Any]:
    """The MNIST suite alternated in one spawned process and, with ``cifar``, the CIFAR pair in another,
    with each CIFAR step's peak memory from a process of its own (``parts``: see `compare_steps`)."""
    common = {"batch_size": 64}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        result = {"mnist": pool.submit(compare_steps, SUITE, configs, common, repeats, warmup, threads, parts).result()}
    if cifar:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            result["cifar10"] = pool.submit(
                compare_steps, CIFAR_SUITE, configs, common, repeats, warmup, threads, parts
            ).result()
        result["cifar10_memory"] = [peak_memory(entry, configs, common, 2) for entry in CIFAR_SUITE]
    return result


def suite_table(result: dict[str, Any]) -> str:
    """The suite as a markdown table: medians, quartiles, CPU time and the ratios side by side."""
    lines = ["| step (batch 64) | median ms (p25-p75) | ratio | median CPU ms | CPU ratio |", "|---|---|---|---|---|"]
    for group in ("mnist", "cifar10"):
        for row in result.get(group, []):
            ratio = f"{row['ratio']:.2f}x" if "ratio" in row else "1.00"
            cpu_ratio = f"{row['cpu_ratio']:.2f}x" if "cpu_ratio" in row else "1.00"
            lines.append(f"| {row['step']} | {row['median_ms']:.2f} ({row['p25_ms']:.2f}-{row['p75_ms']:.2f}) | "
                         f"{ratio} | {row['median_cpu_ms']:.2f} | {cpu_ratio} |")  # fmt: skip
    for row in result.get("cifar10_memory", []):
        lines.append(f"\npeak memory, {row['step']}: {row['peak_rss_mib']:.0f} MiB "
                     f"({row['rss_before_model_mib']:.0f} MiB before the model)")  # fmt: skip
    return "\n".join(lines)
