"""The package as a user installs it: a built wheel in a fresh virtual environment carries
`qtrain_qiskit.backends` (no top-level `backends` package) and the qtrain-* commands."""

import json
import subprocess
import sys
import venv
from pathlib import Path

from .conftest import REPO

PROBE = """
import importlib.util, json, sys
import qtrain_qiskit, qtrain_qiskit.backends as backends
print(json.dumps({
    "package": qtrain_qiskit.__file__,
    "backends": backends.__file__,
    "top_level_backends": importlib.util.find_spec("backends") is not None,
    "available": backends.available(),
}))
"""


def test_wheel_installs_backends_inside_the_package_with_console_commands(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("qtrain_qiskit-*.whl")
    env_dir = tmp_path / "venv"
    # The heavy dependencies (torch, qiskit) come from the interpreter running the tests; the
    # package itself only from the wheel.
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = subprocess.run([python, "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path)
    found = json.loads(probe.stdout)
    site = str(env_dir)
    assert found["package"].startswith(site) and found["backends"].startswith(site), found
    assert Path(found["backends"]).parent.parent.name == "qtrain_qiskit"
    assert not found["top_level_backends"], "a top-level 'backends' package is importable"
    assert {"aer_statevector", "torch_statevector", "ibm_runtime"} <= set(found["available"])
    commands = ("train", "evaluate", "benchmark", "noise-sweep", "grid", "report")
    assert all((env_dir / "bin" / f"qtrain-{command}").is_file() for command in commands)
    result = subprocess.run([env_dir / "bin" / "qtrain-train", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "usage:" in result.stdout
