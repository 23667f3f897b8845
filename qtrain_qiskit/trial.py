"""A hardware trial of a trained run, as one batch: plan, jobs, the device's P, fine-tune, report.

What a person with an Open Plan account (10 QPU minutes per 28 days, no session mode) needs from one
submission, in this order:

1. checks before anything is submitted: the run is a trained model, the trial folder is this run's,
   the mode is one the plan allows, the account and the device answer; then the plan (every job:
   circuits, shots, an estimate of QPU seconds) is printed and held against ``--max-qpu-seconds``;
2. the jobs, in one batch: M3's calibration, then the model's circuit raw, with dynamical decoupling
   and with measurement twirling, ``repeats`` times each. Every job id goes to the trial's ledger
   when it is submitted; every finished job's P is kept in the trial folder, so a rerun after a
   crash collects what finished (from the folder, or from IBM by the recorded job id) instead of
   paying again;
3. with no further QPU time: the mapping fine-tuned on the first repeat's estimates (the circuit
   kept; `qtrain_qiskit.finetune`, on the run's training split), judged on the later repeats, which
   it never saw;
4. a report (``trial.md``, ``trial.png``): test accuracy per variant with and without M3 and after the
   fine-tune, beside the exact accuracy and the snapshot's prediction (the fake device of the same
   name, exact noisy distribution by `torch_density`), and the total-variation distance between the
   device's P and the snapshot's.

QPU-time estimate (IBM bills a job's time on the QPU; these are assumptions, printed with the plan):
a fixed `PER_JOB_SECONDS` per job for loading and readout set-up, plus per shot the device's
``rep_delay`` (250 us on current devices when it does not say) and the circuit's duration estimated
from the device target's gate durations. Twirling and dynamical decoupling are taken to cost no more
shots (twirling spreads the same shots over randomizations).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ConfigError, apply, validate
from .data import load_dataset, resolve_data_dir, train_val_split
from .evaluation import EXACT_EXECUTION, total_variation
from .finetune import FinetuneSettings, accuracy, finetune_mapping, recovered, search, write_search
from .rundir import BEST_CHECKPOINT, JobLedgerFile, RunDir, load_model_state

PER_JOB_SECONDS = 2.0  # assumed fixed QPU time of a job (circuit loading, set-up), whatever its shots
DEFAULT_REP_DELAY = 250e-6  # seconds between shots when the device does not state its default
ALLOWED_MODES = ("batch", "job")  # the Open Plan has no session mode
VARIANTS = {"raw": (False, False), "dd": (True, False), "twirling": (False, True)}  # (DD, twirling)
TRIAL_FILE, REPORT_FILE, PLOT_FILE, CALIBRATION_FILE, JOBS_FILE = (
    "trial.json",
    "trial.md",
    "trial.png",
    "m3_calibration.json",
    "jobs.jsonl",
)


class TrialError(ConfigError):
    """A trial that must not start (one line; nothing is submitted or overwritten)."""


@dataclass(frozen=True)
class TrialSettings:
    run: str  # a trained run directory
    device: str  # IBM device name, or fake_* for the local rehearsal
    out: str  # the trial folder
    shots: int = 8192
    calibration_shots: int = 2048  # per M3 calibration circuit
    repeats: int = 2  # of each variant; the fine-tune trains on repeat 0 and is judged on the others
    max_qpu_seconds: float = 600.0  # the Open Plan's 10 minutes
    mode: str = "batch"
    # the mapping's fine-tune on the measured P (`qtrain_qiskit.finetune`): of the settings tried, the best
    # validation recovery (docs/hardware.md): fresh draws from the estimates' mean, 1,000 steps of 256 images, lr 1e-3
    finetune_steps: int = 1000
    finetune_lr: float = 1e-3
    finetune_source: str = "resample"
    finetune_params: str = "mapping"
    finetune_prox: float = 0.0
    finetune_batch: int = 256
    finetune_search: bool = False  # also run the reported search (`finetune.SEARCH`) on these estimates
    seed: int = 0
    # torch's intra-op threads for the trial (fine-tune, scoring): its operations are small, and on the
    # shared 2-core machine two threads made the fine-tune 11x the CPU time of one (docs/hardware.md)
    threads: int = 1

    def finetune(self) -> FinetuneSettings:
        """The fine-tune these settings ask for (its resampled draws have the trial's shots)."""
        return FinetuneSettings(
            steps=self.finetune_steps,
            lr=self.finetune_lr,
            params=self.finetune_params,
            source=self.finetune_source,
            prox=self.finetune_prox,
            shots=self.shots,
            batch=self.finetune_batch,
            seed=self.seed,
        )


@dataclass
class PlannedJob:
    purpose: str  # "mthree", or a variant
    repeat: int
    circuits: int
    shots: int  # per circuit
    qpu_seconds: float


def snapshot_name(device: str) -> str:
    """The fake device that snapshots ``device`` (ibm_torino -> fake_torino); a fake one is its own."""
    return device if device.startswith("fake_") else "fake_" + device.removeprefix("ibm_")


def qpu_seconds(circuits: int, shots: int, duration: float, rep_delay: float) -> float:
    """Estimated QPU time of one job (see the module's assumptions)."""
    return PER_JOB_SECONDS + circuits * shots * (rep_delay + duration)


def plan_jobs(settings: TrialSettings, isa: Any, device: Any, calibration_method: str) -> list[PlannedJob]:
    """Every job of the trial, in submission order, with its estimated QPU seconds."""
    from .backends.mitigation import calibration_shots

    rep_delay = getattr(device, "default_rep_delay", None) or DEFAULT_REP_DELAY
    duration = isa.estimate_duration(device.target, unit="s")
    measured = isa.num_clbits
    spent = calibration_shots(calibration_method, measured, settings.calibration_shots)
    cal_circuits = 2 * measured if calibration_method == "independent" else max(1, spent // settings.calibration_shots)
    calibration = PlannedJob("mthree", 0, cal_circuits, spent // cal_circuits, 0.0)
    calibration.qpu_seconds = qpu_seconds(cal_circuits, calibration.shots, 0.0, rep_delay)
    jobs = [calibration]
    for repeat in range(settings.repeats):
        for variant in VARIANTS:
            jobs.append(
                PlannedJob(variant, repeat, 1, settings.shots, qpu_seconds(1, settings.shots, duration, rep_delay))
            )
    return jobs


def format_plan(jobs: list[PlannedJob], settings: TrialSettings) -> str:
    total_shots = sum(job.circuits * job.shots for job in jobs)
    total = sum(job.qpu_seconds for job in jobs)
    lines = [f"plan: {len(jobs)} jobs in one {settings.mode} on {settings.device}"]
    lines += [
        f"  {job.purpose:<9} repeat {job.repeat}: {job.circuits} circuit(s) x {job.shots:,} shots, "
        f"~{job.qpu_seconds:.1f} QPU s"
        for job in jobs
    ]
    lines.append(
        f"total: {total_shots:,} shots, ~{total:.0f} QPU s (assumed {PER_JOB_SECONDS:.0f} s a job + rep_delay and "
        f"circuit duration a shot); limit --max-qpu-seconds {settings.max_qpu_seconds:.0f}"
    )
    return "\n".join(lines)


def check_run(path: str) -> RunDir:
    """The run directory of a trained Quantum-Train model with a circuit, or a one-line refusal."""
    try:
        run = RunDir.existing(path)
    except Exception as exc:
        raise TrialError(f"{path} is not a trained model: {exc}") from None
    config = run.config()
    if not run.file(BEST_CHECKPOINT).is_file():
        raise TrialError(f"{path} is not a trained model (no {BEST_CHECKPOINT})")
    if config.model.method != "quantum_train" or config.model.quantum not in ("trained", "frozen", "separable"):
        raise TrialError(f"{path} executes no circuit ({config.model.method}, quantum {config.model.quantum})")
    return run


def open_trial_folder(settings: TrialSettings, *, create: bool) -> Path:
    """The trial folder for this run and device (made with ``create``), or refused if it belongs to another."""
    out = Path(settings.out)
    record = {"run": str(Path(settings.run).resolve()), "device": settings.device, "shots": settings.shots}
    existing = out / TRIAL_FILE
    if existing.is_file():
        held = json.loads(existing.read_text())
        if {key: held.get(key) for key in record} != record:
            raise TrialError(
                f"trial folder {out} belongs to another trial (run {held.get('run')}, device {held.get('device')}, "
                f"shots {held.get('shots')}); choose another --out"
            )
    elif out.exists() and any(out.iterdir()):
        raise TrialError(f"{out} exists and is not a trial folder; choose another --out")
    if not create:
        return out
    out.mkdir(parents=True, exist_ok=True)
    if not existing.is_file():
        existing.write_text(json.dumps({**record, "settings": asdict(settings)}, indent=2) + "\n")
    return out


def connect(settings: TrialSettings, ledger: JobLedgerFile) -> Any:
    """The runtime backend of the trial, its account and device checked (one line each on failure)."""
    from .backends import BackendError
    from .backends.devices import check_device_name
    from .backends.ibm_runtime import IBMRuntimeBackend, IBMRuntimeOptions

    if settings.mode not in ALLOWED_MODES:
        raise TrialError(
            f"ibm_mode {settings.mode}: a trial runs in {' or '.join(ALLOWED_MODES)} "
            "(the Open Plan has no session mode)"
        )
    unknown = check_device_name(settings.device)
    if unknown:
        raise TrialError(unknown)
    options = IBMRuntimeOptions(ibm_backend=settings.device, shots=settings.shots, ibm_mode=settings.mode)
    backend = IBMRuntimeBackend(options, seed=settings.seed, job_ledger=ledger)
    try:
        device = backend.device()
    except BackendError as exc:  # no account: the backend's own one-line advice
        raise TrialError(str(exc)) from None
    except Exception as exc:  # the account answered, the device did not
        raise TrialError(f"device {settings.device}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    status = getattr(device, "status", None)
    if callable(status) and not backend.local and not getattr(status(), "operational", True):
        raise TrialError(f"device {settings.device} is not operational now; nothing was submitted")
    return backend


def measure(
    settings: TrialSettings, backend: Any, circuit: Any, angles: np.ndarray, out: Path, mitigator: Any
) -> dict[str, dict[str, list[np.ndarray]]]:
    """Each variant's P per repeat, raw and M3-corrected; finished jobs are read from ``out``."""
    measured: dict[str, dict[str, list[np.ndarray]]] = {"raw": {}, "mthree": {}}
    for repeat in range(settings.repeats):
        for variant, (dd, twirling) in VARIANTS.items():
            path = out / f"p_{variant}_{repeat}.npy"
            if path.is_file():  # finished before: collected, not paid again
                probs = np.load(path)
            else:
                backend.error_suppression(dynamical_decoupling=dd, twirling=twirling)
                backend.request_tag = f"trial:{variant}:{repeat}"
                probs = backend.probabilities(circuit, angles[None])[0]
                np.save(path, probs)
            measured["raw"].setdefault(variant, []).append(probs)
            measured["mthree"].setdefault(variant, []).append(mitigator.correct(probs, settings.shots)[0])
    return measured


def load_model(run: RunDir) -> tuple[Any, Any]:
    """The run's model on the exact torch engine (float64) with its best weights, and its config."""
    from .build import build_model

    config = validate(apply(run.config(), dict(EXACT_EXECUTION, device="cpu"), "trial"))
    model = build_model(config, torch.device("cpu"))
    load_model_state(model, run.load_checkpoint(BEST_CHECKPOINT)["model"], f"of {run.path}")
    return model.eval(), config


def _summaries(model: Any, tuned: Any, test: Any, measured: dict, exact: float) -> dict[str, Any]:
    """Accuracy of every variant (mean over repeats), with and without M3, and the fine-tune's figures."""
    rows = {}
    for variant in VARIANTS:
        raw = [accuracy(model, test, p) for p in measured["raw"][variant]]
        mthree = [accuracy(model, test, p) for p in measured["mthree"][variant]]
        rows[variant] = {"raw": float(np.mean(raw)), "mthree": float(np.mean(mthree)), "raw_each": raw}
    fresh = [p for variant in VARIANTS for p in measured["raw"][variant][1:]]
    if not fresh:
        return {"variants": rows, "finetune": None}
    return {
        "variants": rows,
        "finetune": {**recovered(model, tuned, test, fresh, exact), "fresh_estimates": len(fresh)},
    }


def run_trial(settings: TrialSettings, echo: Any = print) -> dict[str, Any]:
    """The whole trial (see the module); returns what the report shows, also kept in ``trial.json``.

    Runs with ``settings.threads`` torch threads (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _run_trial(settings, echo)
    finally:
        torch.set_num_threads(threads)


def _run_trial(settings: TrialSettings, echo: Any) -> dict[str, Any]:
    from .backends.mitigation import ReadoutMitigator, calibration_method

    clock = _Clock()
    run = check_run(settings.run)
    open_trial_folder(settings, create=False)
    model, config = load_model(run)
    circuit, angles = model.quantum.circuit, model.quantum.weight.detach().double().numpy()
    backend = connect(settings, JobLedgerFile(Path(settings.out) / JOBS_FILE))
    isa = backend.prepare(circuit)
    jobs = plan_jobs(settings, isa, backend.device(), calibration_method(backend.device().name))
    echo(format_plan(jobs, settings))
    total = sum(job.qpu_seconds for job in jobs)
    if total > settings.max_qpu_seconds:
        raise TrialError(f"the plan needs ~{total:.0f} QPU s, above --max-qpu-seconds {settings.max_qpu_seconds:.0f}")
    out = open_trial_folder(settings, create=True)
    backend.ledger = JobLedgerFile(out / JOBS_FILE)
    clock.lap("checks and plan (model, transpilation)")
    target = backend.calibration_target()
    clock.lap("device simulator (local: the device's noise model)" if backend.local else "device")
    mitigator = ReadoutMitigator(
        target,
        isa,
        settings.calibration_shots,
        runtime_mode=backend.runtime_mode(),
        ledger=backend.ledger,
        cals_file=out / CALIBRATION_FILE,
    )
    measured = measure(settings, backend, circuit, angles, out, mitigator)
    clock.lap("jobs (M3 calibration, variants x repeats)")
    result = {
        "run": str(Path(settings.run).resolve()),
        "device": settings.device,
        "shots": settings.shots,
        "snapshot": snapshot_name(settings.device),
        "local": backend.local,
        "settings": asdict(settings),
        "plan": [asdict(job) for job in jobs],
        "planned_qpu_seconds": total,
        "shots_in_all": sum(job.circuits * job.shots for job in jobs),
        "measured_qubits": sorted(mitigator.qubits.values()),  # physical qubits of the device
        **analyse(settings, model, config, measured, backend.options.optimization_level, clock),
        "seconds": clock.laps,
    }
    (out / TRIAL_FILE).write_text(json.dumps(result, indent=2) + "\n")
    write_report(out, result)
    return result


class _Clock:
    """Wall and CPU seconds of each phase: where a rehearsal's time goes, kept in the report."""

    def __init__(self) -> None:
        import time

        self._time, self.laps = time, {}
        self._last = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        now = (self._time.perf_counter(), self._time.process_time())
        self.laps[name] = {"wall": now[0] - self._last[0], "cpu": now[1] - self._last[1]}
        self._last = now


def analyse(
    settings: TrialSettings, model: Any, config: Any, measured: dict, optimization_level: int, clock: _Clock
) -> dict[str, Any]:
    """Exact, snapshot and device accuracies, distances, and the fine-tune: no QPU time."""
    from .backends.torch_density import TorchDensityBackend, TorchDensityOptions

    circuit, angles = model.quantum.circuit, model.quantum.weight.detach().double().numpy()
    snapshot = snapshot_name(settings.device)
    options = TorchDensityOptions(noise=snapshot, optimization_level=optimization_level)
    density = TorchDensityBackend(options, seed=settings.seed)
    predicted = density.probabilities(circuit, angles[None])[0]
    with torch.no_grad():
        exact_probs = model.quantum().double().numpy()
    clock.lap("snapshot's prediction (torch_density)")
    root = resolve_data_dir(config.data.data_dir)
    test = load_dataset(config.data.dataset, root, train=False, download=config.data.download)
    full = load_dataset(config.data.dataset, root, train=True, download=config.data.download)
    train, val = train_val_split(full, config.data.val_fraction, config.data.split_seed)  # the run's own split
    estimates = [measured["raw"][v][0] for v in VARIANTS]
    tuned = finetune_mapping(model, estimates, train, settings.finetune())
    clock.lap("fine-tune of the mapping")
    if settings.finetune_search:
        fresh = [p for variant in VARIANTS for p in measured["raw"][variant][1:]]
        write_search(Path(settings.out), search(model, estimates, {"train": train, "val": val, "test": test}, fresh))
        clock.lap("fine-tune search (validation, then test for the report)")
    exact = accuracy(model, test, exact_probs)
    device_p = np.mean(measured["raw"]["raw"], axis=0)
    result = {
        "exact_accuracy": exact,
        "snapshot_accuracy": accuracy(model, test, predicted),
        "tvd_device_snapshot": total_variation(device_p, predicted),
        "tvd_device_exact": total_variation(device_p, exact_probs),
        "tvd_snapshot_exact": total_variation(predicted, exact_probs),
        **_summaries(model, tuned, test, measured, exact),
    }
    if result["finetune"] is not None:
        result["finetune"]["setting"] = settings.finetune().label()
    clock.lap("test accuracies")
    return result


def write_report(out: Path, result: dict[str, Any]) -> None:
    """``trial.md`` (the figures) and ``trial.png`` (accuracy per variant beside exact and the snapshot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pct = lambda value: f"{100 * value:.2f}%"  # noqa: E731
    variants, tune = result["variants"], result["finetune"]
    lines = [
        f"# Trial of `{result['run']}` on `{result['device']}`" + (" (local rehearsal)" if result["local"] else ""),
        "",
        f"{result['shots_in_all']:,} shots in all, ~{result['planned_qpu_seconds']:.0f} QPU s planned; "
        f"{result['settings']['repeats']} repeat(s) of each variant at {result['settings']['shots']:,} shots.",
        "",
        "| P from | test accuracy | with M3 |",
        "|---|---|---|",
        f"| exact (noiseless) | {pct(result['exact_accuracy'])} | - |",
        f"| snapshot's prediction (`{result['snapshot']}`, exact noisy P) | {pct(result['snapshot_accuracy'])} | - |",
    ]
    lines += [f"| device, {name} | {pct(row['raw'])} | {pct(row['mthree'])} |" for name, row in variants.items()]
    if tune is not None:
        recovered = "-" if tune["drop_recovered"] is None else f"{100 * tune['drop_recovered']:.0f}%"
        lines += [
            f"| device, fresh repeats, before the fine-tune | {pct(tune['before'])} | - |",
            f"| device, fresh repeats, after the fine-tune | {pct(tune['after'])} | - |",
            "",
            f"Fine-tune ({tune.get('setting', '')}): the mapping trained on repeat 0 of each variant, judged on "
            f"the {tune['fresh_estimates']} later estimates it never saw: {recovered} of the exact-to-device drop "
            "recovered.",
        ]
    lines += [
        "",
        f"Total variation distance: device P (raw, mean of repeats) to the snapshot's "
        f"{result['tvd_device_snapshot']:.3f}, to exact {result['tvd_device_exact']:.3f}; snapshot to exact "
        f"{result['tvd_snapshot_exact']:.3f}.",
    ]
    lines += ["", "| phase | wall s | CPU s |", "|---|---|---|"]
    lines += [f"| {name} | {t['wall']:.1f} | {t['cpu']:.1f} |" for name, t in result["seconds"].items()]
    (out / REPORT_FILE).write_text("\n".join(lines) + "\n")
    names = ["exact", "snapshot", *(f"{v}\nraw" for v in variants), *(f"{v}\nM3" for v in variants)]
    values = [result["exact_accuracy"], result["snapshot_accuracy"], *(r["raw"] for r in variants.values())]
    values += [r["mthree"] for r in variants.values()]
    if tune is not None:
        names, values = [*names, "fresh\nbefore", "fresh\nafter FT"], [*values, tune["before"], tune["after"]]
    figure, axes = plt.subplots(figsize=(1.0 * len(names) + 1, 3.5))
    axes.bar(range(len(names)), [100 * v for v in values], color="tab:blue")
    axes.set_xticks(range(len(names)), names, fontsize=8)
    axes.set_ylim(max(0, 100 * min(values) - 2), 100)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"{Path(result['run']).name} on {result['device']}")
    figure.tight_layout()
    figure.savefig(out / PLOT_FILE, dpi=120)
    plt.close(figure)
