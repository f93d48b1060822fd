"""Shared fixtures: a fake PyPI on 127.0.0.1 and a way to run the real CLI against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fullmirror.fakepypi import FakePyPI

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk to 127.0.0.1 only; a proxy from the environment must never be used.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def upstream() -> Iterator[FakePyPI]:
    with FakePyPI.start(projects=24, seed=7) as up:
        yield up


def write_config(directory: Path, master: str, **options: object) -> Path:
    """A config file for a mirror in ``directory``; options use config-key spelling."""
    values: dict[str, object] = {
        "directory": directory / "mirror",
        "master": master,
        "allow-non-https": "true",
        "xmlrpc-delay": "0",
        "workers": "4",
        "retries": "2",
        "timeout": "5",
    }
    values.update(
        {
            k.replace("_", "-") if k not in ("root_uri", "digest_name") else k: v
            for k, v in options.items()
        }
    )
    lines = ["[mirror]"] + [f"{k} = {v}" for k, v in values.items()]
    path = directory / "fullmirror.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


RunCli = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process, as cron would run it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "fullmirror", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
