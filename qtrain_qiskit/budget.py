"""What a run will execute on a sampled backend, estimated before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, ConfigError


@dataclass(frozen=True)
class ShotBudget:
    circuits_per_step: int  # the forward circuit plus the gradient's
    shots_per_circuit: int
    steps: int
    evaluations: int  # one circuit per validation pass and for the final test
    calibration_shots: int = 0  # readout-mitigation calibration, once per (re)started process
    jobs_per_step: int = 1  # the forward, and the gradient's circuits as one more (ibm_runtime: a job each)

    @property
    def total_jobs(self) -> int:
        return self.steps * self.jobs_per_step + self.evaluations + (1 if self.calibration_shots else 0)

    @property
    def total_circuits(self) -> int:
        return self.steps * self.circuits_per_step + self.evaluations

    @property
    def total_shots(self) -> int:
        return self.total_circuits * self.shots_per_circuit + self.calibration_shots

    def describe(self) -> str:
        calibration = self.calibration_shots
        return (
            f"cost: {self.circuits_per_step} circuits and {self.circuits_per_step * self.shots_per_circuit:,} shots "
            f"per step; {self.steps:,} steps + {self.evaluations} evaluations = {self.total_circuits:,} circuits "
            f"in {self.total_jobs:,} jobs, {self.total_circuits * self.shots_per_circuit:,} shots"
            + (f" + {calibration:,} M3 calibration shots = {self.total_shots:,} shots in all" if calibration else "")
        )


def estimate(
    config: Config, steps_per_epoch: int, num_angles: int, done_steps: int = 0, *, measured_qubits: int = 0
) -> ShotBudget | None:
    """The remaining run's circuits and shots; None on exact backends (no shots).

    The gradient gives the circuits; the backend, asked with its options, gives the shots each
    circuit draws and what calibrating the ``measured_qubits`` costs (M3, once per process).
    """
    from . import backends
    from .build import build_gradient

    backend = backends.backend_class(config.execution.backend)
    if backend.exact:
        return None
    options = backends.options_for(backend.name, config.execution)
    # A frozen circuit (no trainable angles, e.g. fine-tuning only the mapping) runs its forward alone.
    gradient_circuits = build_gradient(config).circuits_per_step(num_angles) if num_angles else 0
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    steps = max(total_steps - done_steps, 0)
    epochs_left = -(-steps // steps_per_epoch)
    calibration = backend.calibration_shots(options, measured_qubits)
    jobs_per_step = 1 + (gradient_circuits > 0)
    shots = backend.shots_per_circuit(options)
    return ShotBudget(1 + gradient_circuits, shots, steps, epochs_left + 1, calibration, jobs_per_step)


def check(budget: ShotBudget | None, config: Config) -> None:
    """Refuse a run estimated above --max-shots (or the backend's default cap), in one line."""
    from . import backends

    if budget is None:
        return
    cap = config.execution.max_shots or backends.backend_class(config.execution.backend).default_max_shots
    if cap is not None and budget.total_shots > cap:
        raise ConfigError(
            f"estimated {budget.total_shots:,} shots exceed the cap of {cap:,} (--max-shots); "
            "lower --shots, --epochs or --max-steps, or raise --max-shots"
        )
