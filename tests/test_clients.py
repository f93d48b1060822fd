"""Real clients install from the mirror through a file:// index and no other index."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_tools import UV, client_env, pip, run_client, uv_installed, uv_venv
from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI

pytestmark = pytest.mark.clients


@pytest.fixture
def mirrored(tmp_path: Path, upstream: FakePyPI) -> str:
    config = write_config(tmp_path, upstream.url)
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    return (tmp_path / "mirror" / "web" / "simple").as_uri() + "/"


def test_pip_installs_with_dependencies_from_file_index(tmp_path: Path, mirrored: str) -> None:
    target = tmp_path / "pip-target"
    result = pip(
        tmp_path,
        *("install", "--index-url", mirrored, "--target", str(target)),
        *("--only-binary", ":all:", "demo-app[fast]"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = {p.name.split("-")[0].lower() for p in target.glob("*.dist-info")}
    assert {"demo_app", "demo_lib", "demo_core", "demo_utils", "demo_speedups"} <= installed
    assert "demo_never" not in installed


def test_uv_installs_with_dependencies_from_file_index(tmp_path: Path, mirrored: str) -> None:
    env = client_env(tmp_path)
    python = uv_venv(tmp_path, env)
    result = run_client([UV, "pip", "install", "-p", str(python), "-i", mirrored, "demo-app"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"demo-app", "demo-lib", "demo-core", "demo-utils"} <= set(uv_installed(python, env))
