"""Real clients install from the mirror through a file:// index and no other index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI

pytestmark = pytest.mark.clients


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
    )
    return env


@pytest.fixture
def mirrored(tmp_path: Path, upstream: FakePyPI) -> str:
    config = write_config(tmp_path, upstream.url)
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    return (tmp_path / "mirror" / "web" / "simple").as_uri() + "/"


def test_pip_installs_with_dependencies_from_file_index(tmp_path: Path, mirrored: str) -> None:
    target = tmp_path / "pip-target"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--index-url",
            mirrored,
            "--target",
            str(target),
            "--only-binary",
            ":all:",
            "demo-app[fast]",
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = {p.name.split("-")[0].lower() for p in target.glob("*.dist-info")}
    assert {"demo_app", "demo_lib", "demo_core", "demo_utils", "demo_speedups"} <= installed
    assert "demo_never" not in installed


def test_uv_installs_with_dependencies_from_file_index(tmp_path: Path, mirrored: str) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv = tmp_path / "uv-venv"
    env = _env(tmp_path)
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env, timeout=120
    )
    result = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            mirrored,
            "demo-app",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = subprocess.run(
        [uv, "pip", "list", "--python", str(venv / "bin" / "python")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    for name in ("demo-app", "demo-lib", "demo-core", "demo-utils"):
        assert name in listed
