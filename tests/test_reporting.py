"""The reporting package and --help: the tables under docs/results/ regenerate from the files kept
there, the README's row picks the best control by hand-checkable rules, and --help is one line per
option, grouped by section, no line wider than helptext.WIDTH."""

import csv
import importlib
import re

import pytest

from qtrain_qiskit.cli import run_main
from qtrain_qiskit.commands import table
from qtrain_qiskit.config import TOP_LEVEL, _fields, build_parser
from qtrain_qiskit.helptext import WIDTH
from qtrain_qiskit.reporting.comparison import comparison_table
from qtrain_qiskit.reporting.results import table as results_table
from qtrain_qiskit.reporting.runs import RunResult, group_runs, runs_from_csv
from qtrain_qiskit.reporting.shipped import shipped_table

from .conftest import REPO

RESULTS = REPO / "docs" / "results"
KEPT = sorted(path.parent for path in RESULTS.glob("comparison_*/results.csv"))


@pytest.mark.parametrize("folder", KEPT, ids=lambda p: p.name)
def test_kept_csv_regenerates_its_results_and_comparison_tables(folder):
    groups = group_runs(runs_from_csv(folder / "results.csv"))
    assert results_table(groups) == (folder / "results.md").read_text()
    assert comparison_table(groups) == (folder / "comparison.md").read_text()


# the devices the noise-aware mnist_quantum runs were read on, the trained-under one first
SIX_DEVICES = "fake_torino,fake_sherbrooke,fake_fez,fake_kingston,fake_marrakesh,fake_brisbane"


@pytest.mark.parametrize(
    ("argv", "kept"),
    [
        (["shipped", str(RESULTS / "shipped.yaml")], "shipped.md"),
        (["targets", str(RESULTS / "hardware" / "runs")], "hardware/targets.md"),
        (["device-in-the-loop", str(RESULTS / "hardware" / "device_in_the_loop")], None),
        (["device-in-the-loop", str(RESULTS / "hardware" / "device_in_the_loop"), "--level2"], None),
        (["noise-aware", str(RESULTS / "noise_aware")], "noise_aware/table.md"),
        (
            ["noise-aware", str(RESULTS / "noise_aware_quantum"), "--devices", SIX_DEVICES],
            "noise_aware_quantum/table.md",
        ),
        (["steps-to-val", "0.9", *map(str, sorted(RESULTS.glob("start/runs_hb/mnist_425_hb4_seed?")))], None),
    ],
    ids=["shipped", "targets", "device-in-the-loop", "level2", "noise-aware", "noise-aware-quantum", "steps-to-val"],
)
def test_table_command_writes_the_kept_table(tmp_path, argv, kept):
    """--out writes what is printed; where the file is one command's whole output, it is the kept file."""
    out = tmp_path / "table.md"
    assert run_main(table.main, [*argv, "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("| ") and text.count("\n") >= 3
    if kept:
        assert text == (RESULTS / kept).read_text()


def write_csv(path, rows):
    fields = list(RunResult.__dataclass_fields__)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for name, method, target, quantum, seed, accuracy, trainable in rows:
            counts = dict(quantum_params=0, mapping_params=0, target_params=100, num_qubits=3, num_blocks=1)
            run = RunResult(
                f"r/{name}{seed}", name, method, seed, accuracy, accuracy, trainable, **counts, hidden="4", epochs=1,
                train_seconds=1.0, target=target, quantum=quantum, group="g",
            )  # fmt: skip
            writer.writerow(vars(run))


def test_shipped_row_takes_the_best_control_and_leaves_the_full_cnn_out(tmp_path):
    rows = []
    for seed, (trained, frozen, cnn, full) in enumerate([(0.90, 0.89, 0.50, 0.99), (0.92, 0.90, 0.60, 0.99)]):
        rows += [
            ("g_trained", "quantum_train", "mnist_cnn", "trained", seed, trained, 40),
            ("g_frozen", "quantum_train", "mnist_cnn", "frozen", seed, frozen, 30),
            ("g_cnn_1_1_0", "classical", "cnn_1_1_0", "trained", seed, cnn, 41),
            ("g_mnist_cnn", "classical", "mnist_cnn", "trained", seed, full, 100),  # full size: no control
        ]
    write_csv(tmp_path / "results.csv", rows)
    (tmp_path / "shipped.yaml").write_text("- {config: toy, results: results.csv, group: g, device: {note: none}}\n")
    row = shipped_table(tmp_path / "shipped.yaml").splitlines()[2]
    # differences trained - frozen: +1.0 and +2.0 points; the 4 exact resamples' means: 1.0, 1.5, 1.5, 2.0
    assert row == "| `toy` | 40 | 91.00 ± 1.41% | frozen: 89.50 ± 0.71% | +1.50 [+1.00, +2.00] | none |"


def test_help_groups_every_flag_by_section_one_line_each():  # a help longer than WIDTH goes on below
    text = build_parser("test").format_help()
    lines = text.splitlines()
    assert lines[0] == f"usage: {build_parser('test').prog} [--config FILE] [options]"
    titles = [line[:-1] for line in lines if re.fullmatch(r"[a-z][a-z_: ,()\-]*:", line)]
    sections = [t for t in titles if not t.startswith("execution: ")]
    assert sections == ["options", "model", "circuit", "execution", "training", "data", "output"]
    assert [t for t in titles if t.startswith("execution: ")], "no subgroup per backend"
    for key, (_, field, _) in _fields().items():
        flag = f"--{key.replace('_', '-')} "
        found = [line for line in lines if line.lstrip().startswith(flag)]
        help_text = TOP_LEVEL.get(key) or field.metadata["help"]
        assert len(found) == 1 and help_text[:30] in found[0], key


def test_every_key_is_explained_in_full_in_the_docs():
    """--help keeps one line per key; the why of each key lives in docs/usage.md (the epilog says where)."""
    section = (REPO / "docs" / "usage.md").read_text().split("## Configuration keys in full")[1].split("\n## ")[0]
    missing = [key for key in _fields() if f"| `{key}` |" not in section]
    assert not missing, f"add a row to docs/usage.md, 'Configuration keys in full', for {missing}"


# pyproject's [project.scripts]: name = "module:function" (tomllib is 3.11+, the package supports 3.10)
SCRIPTS = (REPO / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
COMMANDS = dict(re.findall(r'^([\w-]+) = "([\w.]+):\w+"', SCRIPTS, re.MULTILINE))


def wrapped_help_lines(lines: list[str]) -> list[str]:
    """The lines of a --help that continue an option's help: indented to (or past) the help column,
    which the ``-h, --help`` line shows. An option, a positional or a subcommand starts further left."""
    (first,) = [line for line in lines if line.lstrip().startswith("-h, --help ")]
    column = first.index("show this help")
    return [line for line in lines if line.strip() and len(line) - len(line.lstrip()) >= column]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_fits_the_width_in_groups(command, capsys):
    """Each console script's --help (in-process: its main, as the entry point calls it): one usage line,
    no line wider than WIDTH, every option's help on its own line (a help that wraps onto a second line
    is too long: the full text belongs in docs/usage.md), and more than a dozen flags come in named
    groups, not one flat list."""
    module = importlib.import_module(COMMANDS[command])
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("usage: ") and not lines[1].strip(), lines[:2]
    assert max(map(len, lines)) <= WIDTH, [line for line in lines if len(line) > WIDTH]
    assert not wrapped_help_lines(lines), f"{command}: a help text wraps onto a second line"
    titles = [line for line in lines if re.fullmatch(r"[a-z][a-z_: ,()\-]*:", line)]
    flags = [line for line in lines if line.startswith("  --")]
    assert len(flags) <= 12 or len(titles) >= 3, f"{command}: {len(flags)} flags in {titles}"


def test_noise_aware_table_names_the_missing_readings_in_one_line(tmp_path, capsys):
    for name in ("eval_shots.jsonl", "eval_noise.jsonl"):
        (tmp_path / name).write_text((RESULTS / "noise_aware_quantum" / name).read_text())
    assert run_main(table.main, ["noise-aware", str(tmp_path), "--devices", "fake_torino,fake_nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no reading of fake_nowhere seed 0" in err, err
