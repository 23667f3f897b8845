"""The hardware path on fake IBM devices: layout mapping, retries, job ledger, budgets, secrets."""

import json

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError
from qiskit_ibm_runtime.fake_provider import FakeGuadalupeV2
from qtrain_qiskit.backends import BackendError
from qtrain_qiskit.backends.devices import fake_device, fake_device_names, to_isa

from qtrain_qiskit import backends
from qtrain_qiskit.ansatz import build_ansatz
from qtrain_qiskit.evaluation import evaluate_exported
from qtrain_qiskit.rundir import JobLedgerFile

from .conftest import run_script_inprocess

# a short SPSA trial on a local fake device, 32 images a step
SPSA_TRIAL = [
    "--backend",
    "ibm_runtime",
    "--ibm-backend",
    "fake_guadalupe",
    "--grad",
    "spsa",
    "--blocks",
    "1",
    "--batch-size",
    "32",
]


def routed_basis_state_circuit() -> QuantumCircuit:
    """RY(theta) on 5 qubits, then CX from qubits 1 and 3 to every other qubit: more connectivity
    than a heavy-hex device has, so layout and routing move qubits. With theta = (pi, 0, pi, 0, 0)
    the controls are |0>, every CX acts trivially and the outcome is the basis state 0b00101."""
    theta = ParameterVector("t", 5)
    circuit = QuantumCircuit(5)
    for q in range(5):
        circuit.ry(theta[q], q)
    for control in (1, 3):
        for target in (0, 2, 4, 3 if control == 1 else 1):
            circuit.cx(control, target)
    return circuit


def test_fake_devices_by_name():
    assert {"fake_torino", "fake_sherbrooke", "fake_guadalupe"} <= set(fake_device_names())
    assert fake_device("fake_guadalupe").num_qubits == 16
    with pytest.raises(ValueError, match="unknown fake device 'fake_nowhere'; available: fake_aachen"):
        fake_device("fake_nowhere")


def test_counts_map_back_to_logical_outcomes_through_a_non_trivial_layout():
    circuit = routed_basis_state_circuit()
    isa = to_isa(circuit, FakeGuadalupeV2(), seed=0)
    assert isa.layout.routing_permutation() != list(range(16))  # routing moved qubits: not the identity
    values = np.array([[np.pi, 0, np.pi, 0, 0]])
    for backend in (
        backends.get_backend("ibm_runtime", ibm_backend="fake_guadalupe", shots=1000, seed=1),
        backends.get_backend("aer_noisy", noise="fake_guadalupe", shots=1000, seed=1),
    ):
        probs = backend.probabilities(circuit, values)[0]
        assert probs.shape == (32,)
        assert probs.argmax() == 0b00101 and probs[0b00101] > 0.6, backend.name  # noise leaves the peak


def sampling_tvd_quantile(probs: np.ndarray, shots: int, exact: bool, draws: int = 4000) -> float:
    """The 99.9% quantile (0.1% false alarms) of the distance between a `shots`-sample estimate of
    `probs` and `probs` itself (`exact`) or a second such estimate: sampling error alone, drawn
    from the multinomial rather than a normal approximation."""
    rng = np.random.default_rng(0)
    a = rng.multinomial(shots, probs, size=draws) / shots
    b = probs if exact else rng.multinomial(shots, probs, size=draws) / shots
    return float(np.quantile(0.5 * np.abs(a - b).sum(axis=1), 0.999))


def test_ibm_runtime_on_a_fake_device_is_close_to_the_noisy_simulation():
    """The runtime path (sampler, layout, bit order) samples the device's noisy distribution as
    aer_noisy computes it (aer_density: its exact distribution), and the noise is visible."""
    circuit = build_ansatz(4, 4)
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (2, circuit.num_parameters))
    shots = 16000
    runtime = backends.get_backend("ibm_runtime", ibm_backend="fake_guadalupe", shots=shots, seed=2)
    sampled = runtime.probabilities(circuit, values)
    assert sampled.shape == (2, 16) and np.allclose(sampled.sum(axis=1), 1)
    noisy = backends.get_backend("aer_density", noise="fake_guadalupe", seed=2).probabilities(circuit, values)
    noiseless = backends.get_backend("aer_statevector").probabilities(circuit, values)
    for row in range(2):
        # Sampling error (its 99.9% quantile at these shots) plus the gap between two simulations of
        # one fake device: its own `run` and AerSimulator.from_backend, which local mode may use,
        # differ by up to ~0.02 in TVD on this circuit at 100k shots (measured), so 0.03 is allowed.
        assert 0.5 * np.abs(sampled[row] - noisy[row]).sum() < sampling_tvd_quantile(noisy[row], shots, True) + 0.03
        # The noise (~0.09 here) is larger than sampling error around the noiseless distribution.
        assert 0.5 * np.abs(sampled[row] - noiseless[row]).sum() > sampling_tvd_quantile(noiseless[row], shots, True)
        assert 0.5 * np.abs(noisy[row] - noiseless[row]).sum() > sampling_tvd_quantile(noisy[row], shots, True) + 0.03


class FlakySampler:
    def __init__(self, failures, inner):
        self.failures, self.inner, self.calls = failures, inner, 0

    def run(self, pubs, shots=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeJobFailureError("injected transient failure")
        return self.inner.run(pubs, shots=shots)


def flaky_backend(failures, max_retries):
    backend = backends.get_backend(
        "ibm_runtime", ibm_backend="fake_guadalupe", shots=200, seed=0, max_retries=max_retries, retry_backoff=0.0
    )
    real = backend._sampler()
    flaky = FlakySampler(failures, real)
    backend._sampler = lambda: flaky
    return backend, flaky


def test_transient_failures_are_retried():
    backend, flaky = flaky_backend(failures=2, max_retries=3)
    probs = backend.probabilities(build_ansatz(2, 1), np.zeros((1, 2)))
    assert flaky.calls == 3 and probs[0, 0] > 0.8


def test_persistent_failures_stop_with_one_clear_error():
    backend, flaky = flaky_backend(failures=10, max_retries=2)
    with pytest.raises(BackendError, match="ibm_runtime job failed after 3 attempt"):
        backend.probabilities(build_ansatz(2, 1), np.zeros((1, 2)))
    assert flaky.calls == 3


class StubService:
    """Stands in for QiskitRuntimeService: a named device, and finished jobs fetched by id."""

    def __init__(self):
        self.jobs, self.fetched = {}, []

    def backend(self, name):
        return FakeGuadalupeV2()

    def job(self, job_id):
        self.fetched.append(job_id)
        return self.jobs[job_id]


def test_interrupted_run_fetches_recorded_jobs_instead_of_paying_again(tmp_path):
    service = StubService()
    circuit, values = build_ansatz(3, 1), np.full((1, 3), 0.4)

    def process():  # what a (re)started run builds: the same request, the ledger read from disk
        return backends.get_backend(
            "ibm_runtime",
            ibm_backend="ibm_somewhere",
            shots=300,
            seed=4,
            service=service,
            job_ledger=JobLedgerFile(tmp_path / "jobs.jsonl"),
        )

    first = process()
    sampler = first._sampler()
    submit = sampler.run

    def recording_run(pubs, shots=None):
        job = submit(pubs, shots=shots)
        service.jobs[job.job_id()] = job
        return job

    sampler.run = recording_run
    first._sampler = lambda: sampler
    expected = first.probabilities(circuit, values)
    lines = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["job_id"] in service.jobs and lines[0]["circuits"] == 1

    # A new process (the resumed run) asks for the same thing: it must fetch, not submit.
    resumed = process()
    resumed._sampler = lambda: pytest.fail("a recorded job was submitted again")
    np.testing.assert_array_equal(resumed.probabilities(circuit, values), expected)
    assert service.fetched == [lines[0]["job_id"]]

    # Another request (other angles) is never answered by a recorded job: it is submitted.
    other = process()
    other._sampler = lambda: sampler
    other.probabilities(circuit, values + 0.1)
    assert service.fetched == [lines[0]["job_id"]] and len(service.jobs) == 2

    # A recorded job the service no longer has is submitted again, and the new id recorded.
    service.jobs.clear()
    vanished = process()
    vanished._sampler = lambda: sampler
    vanished.probabilities(circuit, values)
    lines = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[2]["key"] == lines[0]["key"] and lines[2]["job_id"] in service.jobs


class Recorder:
    """Stands in for a runtime class: keeps what it was built with."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.mark.parametrize(
    ("mode", "flags"), [("job", (False, False)), ("batch", (True, False)), ("session", (False, True))]
)
def test_mode_dynamical_decoupling_and_twirling_reach_the_sampler(monkeypatch, mode, flags):
    """Local mode drops these options, so what a real device's sampler is given is inspected."""
    import qiskit_ibm_runtime
    from qiskit_ibm_runtime import executor_sampler

    class Batch(Recorder):
        pass

    class Session(Recorder):
        pass

    for name, cls in (("Batch", Batch), ("Session", Session), ("Sampler", Recorder)):
        monkeypatch.setattr(executor_sampler if name == "Sampler" else qiskit_ibm_runtime, name, cls)
    decoupling, twirling = flags
    backend = backends.get_backend(
        "ibm_runtime", ibm_backend="ibm_somewhere", shots=300, ibm_mode=mode, service=StubService(),
        dynamical_decoupling=decoupling, twirling=twirling,
    )  # fmt: skip
    sampler = backend._sampler()
    device = backend.device()
    opened = {"job": device, "batch": Batch, "session": Session}[mode]
    assert sampler.kwargs["mode"] is opened if mode == "job" else type(sampler.kwargs["mode"]) is opened
    if mode != "job":
        assert sampler.kwargs["mode"].kwargs == {"backend": device}
    options = sampler.kwargs["options"]
    # the real sampler accepts them (it refuses unknown option names) and reads them as set
    monkeypatch.undo()
    real = executor_sampler.Sampler(mode=FakeGuadalupeV2(), options=options)
    assert (real.options.dynamical_decoupling.enable, real.options.twirling.enable_measure) == flags
    assert real.options.default_shots == 300


class LeastBusyService(StubService):
    def __init__(self):
        super().__init__()
        self.asked = []

    def least_busy(self, **kwargs):
        self.asked.append(kwargs)
        return FakeGuadalupeV2()


def test_without_a_device_name_the_least_busy_device_big_enough_is_chosen():
    service = LeastBusyService()
    backend = backends.get_backend("ibm_runtime", service=service)
    assert backend.prepare(build_ansatz(7, 1)).num_qubits == 16
    assert service.asked == [{"operational": True, "simulator": False, "min_num_qubits": 7}]


def test_circuits_are_split_into_jobs_of_at_most_max_circuits_per_job():
    theta = ParameterVector("t", 2)
    circuit = QuantumCircuit(2)
    circuit.ry(theta[0], 0)
    circuit.ry(theta[1], 1)
    values = np.array([[0, 0], [np.pi, 0], [0, np.pi], [np.pi, np.pi], [np.pi, 0]])
    backend = backends.get_backend(
        "ibm_runtime", ibm_backend="ibm_somewhere", shots=200, seed=0, max_circuits_per_job=2, service=StubService()
    )
    sampler, sizes = backend._sampler(), []
    submit = sampler.run

    def recording_run(pubs, shots=None):
        sizes.append(len(pubs[0][1]))
        return submit(pubs, shots=shots)

    sampler.run = recording_run
    backend._sampler = lambda: sampler
    probs = backend.probabilities(circuit, values)
    assert sizes == [2, 2, 1]
    assert list(probs.argmax(axis=1)) == [0b00, 0b01, 0b10, 0b11, 0b01]  # each row back in its place


def test_missing_account_is_one_clear_error(monkeypatch, tmp_path):
    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account either
    backend = backends.get_backend("ibm_runtime", ibm_backend="ibm_somewhere")
    with pytest.raises(BackendError, match=r"no usable IBM Quantum account .* set QISKIT_IBM_TOKEN"):
        backend.prepare(build_ansatz(2, 1))


def test_too_small_device_is_refused_before_running():
    backend = backends.get_backend("ibm_runtime", ibm_backend="fake_guadalupe")
    with pytest.raises(BackendError, match="fake_guadalupe has 16 qubits; the circuit needs 17"):
        backend.prepare(build_ansatz(17, 1))


def test_budget_refusal_and_estimate(mnist_root, tmp_path):
    status, _, err = run_script_inprocess(
        "train.py",
        "--backend",
        "aer_shots",
        "--shots",
        "1000",
        "--max-shots",
        "100000",
        "--data-dir",
        str(mnist_root),
        "--run-dir",
        str(tmp_path / "r"),
    )
    assert status == 2
    assert err.startswith("error: estimated ") and "exceed the cap of 100,000 (--max-shots)" in err
    assert not (tmp_path / "r" / "config.yaml").exists()
    status, _, err = run_script_inprocess(
        "train.py",
        "--backend",
        "ibm_runtime",
        "--ibm-backend",
        "fake_guadalupe",
        "--data-dir",
        str(mnist_root),
        "--run-dir",
        str(tmp_path / "r2"),
    )
    assert status == 2 and "exceed the cap of 10,000,000" in err  # hardware runs have a default cap


def test_hardware_trial_trains_k_steps_records_jobs_and_writes_no_secret(mnist_root, tmp_path, monkeypatch):
    secret = "sentinel-token-3f9c2a"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:sentinel-instance-77")
    run_dir = tmp_path / "trial"
    status, out, err = run_script_inprocess(
        "train.py",
        *SPSA_TRIAL,
        "--shots",
        "256",
        "--max-steps",
        "2",
        "--epochs",
        "3",
        "--train-subset",
        "64",
        "--eval-batch-size",
        "5000",
        "--data-dir",
        str(mnist_root),
        "--run-dir",
        str(run_dir),
    )
    assert status == 0, err
    assert "cost: 3 circuits and 768 shots per step; 2 steps + 2 evaluations = 8 circuits in 6 jobs, 2,048 shots" in out
    jobs = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
    assert [job["step"] for job in jobs[:4]] == [1, 1, 2, 2]  # forward + SPSA pair per step
    assert len(jobs) == 6  # as estimated: + one validation and one test (the export reuses the test's sample)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["gradient"] == "spsa" and summary["backend"] == "ibm_runtime"
    # the exported classical model is the tested one: its weights come from the test's own sample
    exported = evaluate_exported(
        run_dir / "classical_model.pt", target="mnist_cnn", dataset="mnist", data_dir=str(mnist_root)
    )
    assert exported["test_accuracy"] == summary["test_accuracy"]
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and b"sentinel-instance" not in data, path


def test_compacted_device_noise_matches_the_whole_device_simulation():
    circuit = build_ansatz(3, 2)
    values = np.random.default_rng(5).uniform(-np.pi, np.pi, (1, circuit.num_parameters))
    shots = 20000
    ours = backends.get_backend("aer_noisy", noise="fake_guadalupe", shots=shots, seed=6).probabilities(circuit, values)
    isa = to_isa(circuit, FakeGuadalupeV2(), seed=6)  # the same pass manager and seed as the backend's
    reference = FakeGuadalupeV2()  # the device's own whole-device simulation (its run), readout included
    counts = reference.run(isa.assign_parameters(values[0]), shots=shots, seed_simulator=7).result().get_counts()
    theirs = np.zeros(8)
    for key, count in counts.items():
        theirs[int(key, 2)] += count / shots
    exact = backends.get_backend("aer_statevector").probabilities(circuit, values)[0]
    tvd = lambda p, q: 0.5 * np.abs(p - q).sum()  # noqa: E731
    # two 20k-shot samples of one 8-outcome distribution differ by ~0.01 in TVD; 0.03 is far out
    assert tvd(ours[0], theirs) < 0.03
    assert tvd(ours[0], exact) > 0.02 and tvd(theirs, exact) > 0.02  # and the noise is really there


def test_device_readout_keeps_the_snapshots_asymmetry():
    """fake_sherbrooke's qubit 6 misreads a prepared 0 half the time and a 1 about once in a hundred:
    the compacted simulation reads it as the device itself does (Aer's target-based model: 26% both ways)."""
    from qiskit import QuantumCircuit, transpile
    from qiskit_ibm_runtime.fake_provider import FakeSherbrooke
    from qtrain_qiskit.backends.devices import device_noise_model
    from qtrain_qiskit.backends.noisy_simulation import device_simulation, sample

    device = FakeSherbrooke()
    properties = device.properties()
    p10, p01 = (properties.qubit_property(6, name)[0] for name in ("prob_meas1_prep0", "prob_meas0_prep1"))
    assert p10 > 0.4 and p01 < 0.05  # the snapshot's asymmetry this test is about
    shots, rng = 4000, np.random.default_rng(0)
    for prepared, misread in ((0, p10), (1, p01)):
        circuit = QuantumCircuit(1, 1)
        if prepared:
            circuit.x(0)
        circuit.measure(0, 0)
        isa = transpile(circuit, device, initial_layout=[6], optimization_level=0)
        simulation = device_simulation(isa, device_noise_model(device))
        ours = sample(simulation, simulation.simulator(), np.zeros((1, 0)), shots, rng)[0][1 - prepared]
        counts = device.run(isa, shots=shots, seed_simulator=3).result().get_counts()
        theirs = counts.get(str(1 - prepared), 0) / shots
        assert abs(ours - theirs) < 0.04 and abs(ours - misread) < 0.04, (prepared, ours, theirs, misread)


def test_a_job_that_keeps_failing_stops_training_cleanly(mnist_root, tmp_path, monkeypatch):
    from qtrain_qiskit.backends.ibm_runtime import IBMRuntimeBackend

    from qtrain_qiskit.rundir import LAST_CHECKPOINT, load_checkpoint_file

    real = IBMRuntimeBackend._run_with_retries
    calls = {"n": 0}

    def fails_from_the_fifth_job(self, *args):
        calls["n"] += 1
        if calls["n"] >= 5:
            raise BackendError("ibm_runtime job failed after 4 attempt(s): injected")
        return real(self, *args)

    monkeypatch.setattr(IBMRuntimeBackend, "_run_with_retries", fails_from_the_fifth_job)
    run_dir = tmp_path / "trial"
    status, _, err = run_script_inprocess(
        "train.py",
        *SPSA_TRIAL,
        "--shots",
        "64",
        "--epochs",
        "1",
        "--train-subset",
        "128",
        "--data-dir",
        str(mnist_root),
        "--run-dir",
        str(run_dir),
    )
    assert status == 1 and err.strip() == "error: ibm_runtime job failed after 4 attempt(s): injected"
    state = load_checkpoint_file(run_dir / LAST_CHECKPOINT)  # checkpointed after every paid step
    assert state["tally"]["steps"] == 2  # steps 1 and 2 used jobs 1-4; step 3 failed and saved nothing


def test_device_layout_avoids_broken_couplers_and_bad_readout():
    """fake_sherbrooke's qubits 0..6 hold a broken coupler (ECR 6-5, error 1.0) and a qubit that
    misreads 26% of shots: the trivial layout the 7-qubit chain fits on. The device path must not
    choose it (level 1 did, and the model read there fell to 61%)."""
    from qiskit_ibm_runtime.fake_provider import FakeSherbrooke

    device = FakeSherbrooke()
    isa = to_isa(build_ansatz(7, 8), device, seed=0)
    target = device.target
    two_qubit = [
        target["ecr"][tuple(isa.find_bit(q).index for q in ins.qubits)].error
        for ins in isa.data
        if ins.operation.name == "ecr"
    ]
    readout = [target["measure"][(q,)].error for q in isa.layout.final_index_layout()]
    assert len(two_qubit) == 48  # the chain needs no swaps on heavy hex
    assert max(two_qubit) < 0.02 and max(readout) < 0.05


def test_optimization_level_reaches_both_device_paths():
    """--optimization-level 1 brings back the trivial layout on fake_sherbrooke (qubit 6 misreads a 0
    half the time) in the noisy simulation and in ibm_runtime's ISA circuit; the default avoids it."""
    circuit = build_ansatz(7, 1)

    def worst_readout(**options) -> float:
        simulation = backends.get_backend("aer_noisy", noise="fake_sherbrooke", **options).prepare(circuit)
        return simulation.readout[:, [0, 1], [1, 0]].max()

    def layout(**options) -> list[int]:
        runtime = backends.get_backend("ibm_runtime", ibm_backend="fake_sherbrooke", seed=0, **options)
        return runtime.prepare(circuit).layout.final_index_layout()

    assert worst_readout(optimization_level=1) > 0.4 and worst_readout() < 0.1
    assert layout(optimization_level=1) == list(range(7)) and layout() != list(range(7))


def test_noise_model_restricted_to_qubits_equals_the_whole_devices_on_them():
    """`device_noise_model(device, qubits)` (what local mode, aer_noisy and aer_density build: seconds less
    than the whole device's) has exactly the whole model's errors on those qubits and none elsewhere,
    and a circuit on them simulates to the same distribution."""
    from qtrain_qiskit.backends.devices import device_noise_model, fake_device, to_isa
    from qtrain_qiskit.backends.noisy_simulation import (
        active_qubits,
        density_program,
        device_simulation,
        exact_distribution,
    )

    from qtrain_qiskit.ansatz import build_ansatz

    device = fake_device("fake_guadalupe")
    isa = to_isa(build_ansatz(4, 2), device, seed=0)
    kept = active_qubits(isa)
    whole, restricted = device_noise_model(device), device_noise_model(device, kept)
    assert device._props_dict["gates"] and len(whole._local_quantum_errors["cx"]) > 2 * len(kept)  # device untouched
    for name, errors in whole._local_quantum_errors.items():
        ours = restricted._local_quantum_errors.get(name, {})
        assert set(ours) == {qubits for qubits in errors if set(qubits) <= set(kept)}, name
        for qubits, error in ours.items():
            assert error == errors[qubits], (name, qubits)
    assert restricted._local_readout_errors == whole._local_readout_errors
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (2, isa.num_parameters))
    probs = [exact_distribution(density_program(device_simulation(isa, m)), values) for m in (whole, restricted)]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-14)
