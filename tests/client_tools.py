"""pip and uv as the tests run them: isolated from any configuration or index of the machine,
with caches inside the test's own folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")


def client_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
    )
    return env


def run_client(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False
    )


def pip(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_client([sys.executable, "-m", "pip", *args], client_env(tmp_path))


def uv_venv(tmp_path: Path, env: dict[str, str]) -> Path:
    """A fresh venv for uv to install into; returns its python."""
    venv = tmp_path / "uv-venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    return venv / "bin" / "python"


def uv_installed(python: Path, env: dict[str, str]) -> dict[str, str]:
    """Name -> version of what is installed for ``python``."""
    out = subprocess.run(
        [UV, "pip", "list", "--format", "json", "--python", str(python)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return {row["name"]: row["version"] for row in json.loads(out)}
