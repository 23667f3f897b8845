"""The suite's own machinery: every module sits in exactly one tier, `-m e2e` leaves the slow tests
out, and the data fixture follows QTRAIN_DATA_DIR as the README tells a user."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from . import conftest
from .conftest import E2E_MODULES, REPO, UNIT_MODULES, make_fake_mnist, real_mnist_root


def test_every_test_module_is_assigned_to_exactly_one_tier():
    modules = {path.stem for path in (REPO / "tests").glob("test_*.py")}
    unassigned = sorted(modules - E2E_MODULES - UNIT_MODULES)
    assert not unassigned, f"add each to UNIT_MODULES or E2E_MODULES in tests/conftest.py: {unassigned}"
    assert not E2E_MODULES & UNIT_MODULES, E2E_MODULES & UNIT_MODULES


def test_e2e_tier_leaves_the_slow_tests_out():
    """Collected as a user runs the tier: the fake_torino rehearsal is e2e and slow."""
    module = "tests/test_hardware_configs.py"
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", module]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # the outer run's selection
    e2e = subprocess.run([*args, "-m", "e2e"], capture_output=True, text=True, cwd=REPO, env=env)
    assert e2e.returncode == 0, e2e.stdout + e2e.stderr
    assert "fake_guadalupe" in e2e.stdout and "fake_torino" not in e2e.stdout


class Item(SimpleNamespace):
    def get_closest_marker(self, name):
        return name if name in self.marks else None

    def add_marker(self, mark):
        self.marks.add(mark.name)


@pytest.mark.parametrize(
    ("markexpr", "kept"),
    [
        ("", ["fast"]),
        ("e2e", ["fast"]),
        ("not e2e", ["fast"]),
        ("slow", ["fast", "long"]),
        ("e2e and (slow)", ["fast", "long"]),
    ],
)
def test_slow_tests_run_only_when_the_marker_expression_names_them(markexpr, kept):
    items = [
        Item(name=name, module=SimpleNamespace(__name__=f"tests.{module}"), marks=set(marks))
        for name, module, marks in (("fast", "test_training", ()), ("long", "test_training", ("slow",)))
    ]
    deselected = []
    config = SimpleNamespace(
        option=SimpleNamespace(markexpr=markexpr),
        hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)),
    )
    conftest.pytest_collection_modifyitems(config, items)
    assert [item.name for item in items] == kept
    assert len(deselected) == 2 - len(kept)
    assert all("e2e" in item.marks for item in items)  # test_training is an e2e module


def test_mnist_root_follows_qtrain_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "no_shared")
    monkeypatch.setenv("QTRAIN_DATA_DIR", str(tmp_path / "empty"))
    assert real_mnist_root() is None
    root = make_fake_mnist(tmp_path / "mine", n_train=10, n_test=10)
    monkeypatch.setenv("QTRAIN_DATA_DIR", str(root))
    assert real_mnist_root() == root
    monkeypatch.delenv("QTRAIN_DATA_DIR")
    monkeypatch.setattr(conftest, "SHARED_DATA", root)
    assert real_mnist_root() == root
