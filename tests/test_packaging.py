"""The package as a user installs it: a built wheel in a fresh virtual environment carries
`qtrain_qiskit.backends` (no top-level `backends` package), the qtrain-* commands, and finds a
third-party backend through the entry-point group."""

import json
import site
import subprocess
import sys
import sysconfig
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

# A third-party backend as a distribution installs it: a module and a dist-info folder whose
# entry_points.txt names the module in the qtrain_qiskit.backends group.
PLUGIN = """
from qtrain_qiskit.backends import Backend, register


@register
class PluginBackend(Backend):
    name = "plugin_probe"

    def _probabilities(self, circuit, values):
        raise NotImplementedError
"""
COMMANDS = ("train", "evaluate", "benchmark", "noise-sweep", "grid", "report", "start-stats", "sweep-table")


def dependency_paths() -> list[str]:
    """Where the interpreter running the tests finds torch and qiskit. A venv's system_site_packages
    would point at the base interpreter's site-packages instead, which lacks them when the tests
    themselves run in a virtual environment (the README's install)."""
    paths = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    return list(dict.fromkeys(path for path in paths if Path(path).is_dir()))


def install_plugin(site_packages: Path) -> None:
    (site_packages / "qtrain_plugin_probe.py").write_text(PLUGIN)
    info = site_packages / "qtrain_plugin_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qtrain-plugin-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[qtrain_qiskit.backends]\nprobe = qtrain_plugin_probe\n")


def test_wheel_installs_backends_inside_the_package_with_console_commands(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("qtrain_qiskit-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    own_site = Path(
        subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )  # fmt: skip
    # The heavy dependencies (torch, qiskit) come from the interpreter running the tests, listed
    # after the venv's own site-packages (a .pth adds paths without running the .pth files there,
    # so an editable install of this checkout stays invisible); the package only from the wheel.
    (own_site / "zz_test_dependencies.pth").write_text("\n".join(dependency_paths()) + "\n")
    install_plugin(own_site)
    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    site_dir = str(env_dir)
    assert found["package"].startswith(site_dir) and found["backends"].startswith(site_dir), found
    assert Path(found["backends"]).parent.parent.name == "qtrain_qiskit"
    assert not found["top_level_backends"], "a top-level 'backends' package is importable"
    assert {"aer_statevector", "torch_statevector", "ibm_runtime", "plugin_probe"} <= set(found["available"])
    # started together: each imports torch, so one after another would cost seconds apiece
    helps = {
        command: subprocess.Popen([env_dir / "bin" / f"qtrain-{command}", "--help"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        for command in COMMANDS
    }  # fmt: skip
    for command, process in helps.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0 and "usage:" in out, (command, err)
