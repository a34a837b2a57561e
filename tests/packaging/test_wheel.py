"""The layer installs without the service: the wheel, installed alone into a clean
virtualenv with Starlette and httpx, brings none of the service's dependencies, runs a
Starlette app that the layer defends, and its ``bastion`` command says what is missing
instead of ending in a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_APP = Path(__file__).with_name("layer_app.py")


def _uv() -> str:
    """The uv that ``make install`` used (on PATH, or the project's private one)."""
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: uv is not installed: run make install")
        pytest.skip("uv is not installed: run make install")
    return found


def _run(command: list[str], *, timeout: float = 60, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def layer_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the wheel without extras, Starlette and httpx (uv: seconds,
    from its cache)."""
    uv = _uv()
    folder = tmp_path_factory.mktemp("wheel")
    _run([uv, "build", "--wheel", "--quiet", "--out-dir", str(folder / "dist")], timeout=90)
    (wheel,) = (folder / "dist").glob("bastion-*.whl")
    venv = folder / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = str(venv / "bin" / "python")
    _run([uv, "pip", "install", "--quiet", "--python", python, str(wheel), "starlette", "httpx"])
    return venv


def test_the_layer_runs_a_starlette_app_without_the_services_dependencies(
    layer_venv: Path,
) -> None:
    # Run from the venv, not the checkout: ``src/bastion`` must not be what is imported.
    out = _run([str(layer_venv / "bin" / "python"), str(LAYER_APP)], cwd=layer_venv)
    assert out.strip() == "layer ok"


def test_the_bastion_command_names_the_missing_extra_instead_of_a_traceback(
    layer_venv: Path,
) -> None:
    done = subprocess.run(
        [str(layer_venv / "bin" / "bastion"), "--version"],
        cwd=layer_venv,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "pip install 'bastion[service]'" in done.stderr
