"""The dependency closure end to end: seeds with deep and conditional dependencies, extras and
markers, two targets; the mirror holds exactly what installs them, pip and uv resolve the
seeds for each target from the mirror alone, and the closure follows upstream and the config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from client_tools import UV, client_env
from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from fullmirror.models import version_from_filename
from fullmirror.serve import MirrorServer
from fullmirror.targets import parse_targets
from mirror_checks import assert_tree_sound

TARGETS = "cp311-manylinux_2_17_x86_64 cp312-win_amd64"
#: What installing demo-top needs on the two targets.
CLOSURE = {
    "demo-top",  # the seed
    "demo-app",  # demo-top -> demo-app[fast]
    "demo-lib",  # demo-app -> demo-lib -> demo-core
    "demo-core",
    "demo-utils",  # demo-app, python_version >= "3.8"
    "demo-speedups",  # demo-app's extra "fast"
    "demo-winonly",  # demo-top, sys_platform == "win32": the Windows target only
}


@pytest.fixture
def upstream() -> Iterator[FakePyPI]:
    with FakePyPI.start(projects=24, seed=7) as up:
        up.index.create_project("demo-winonly")
        up.index.add_release("demo-winonly", "1.0", kinds=("wheel",))
        up.index.create_project("demo-top")
        up.index.add_release(
            "demo-top",
            "1.0",
            requires_dist=("demo-app[fast]>=1.0", 'demo-winonly; sys_platform == "win32"'),
            kinds=("wheel", "sdist"),
        )
        yield up


def _config(tmp_path: Path, upstream: FakePyPI, packages: str) -> Path:
    path = write_config(tmp_path, upstream.url)
    with path.open("a") as out:
        out.write(
            "\n[plugins]\nenabled = allowlist_project\n"
            f"[allowlist]\npackages = {packages}\ndependencies = true\n"
            f"[targets]\nenvironments = {TARGETS}\n"
        )
    return path


def _projects(web: Path) -> set[str]:
    root = json.loads((web / "simple/index.v1_json").read_bytes())
    names: set[str] = {canonicalize_name(p["name"]) for p in root["projects"]}
    folders = {p.name for p in (web / "simple").iterdir() if p.is_dir()}
    assert names == folders
    return names


def _files(web: Path, name: str) -> set[str]:
    page = json.loads((web / "simple" / name / "index.v1_json").read_bytes())
    return {f["filename"] for f in page["files"]}


def test_closure_mirrors_exactly_what_installs_on_each_target(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    config = _config(tmp_path, upstream, "demo-top")
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    web = tmp_path / "mirror" / "web"
    assert_tree_sound(web)
    assert _projects(web) == CLOSURE
    # Yanked demo-lib releases are not needed by `demo-lib>=1.0`; the marker-false demo-never
    # and every project nobody depends on stay out.
    assert {version_from_filename(f) for f in _files(web, "demo-lib")} == {"1.0", "1.2"}
    speedups = _files(web, "demo-speedups")
    assert any("cp311" in f and "manylinux" in f for f in speedups)
    assert any("cp312" in f and "win_amd64" in f for f in speedups)
    assert not any("macosx" in f for f in speedups)

    env = client_env(tmp_path)
    with MirrorServer(web, port=0, log=lambda line: None) as server:
        index = server.url + "/simple/"
        for target in parse_targets(TARGETS):
            dest = tmp_path / f"dl-{target.spec}"
            pip = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--isolated",
                    "--no-input",
                    "--only-binary=:all:",
                    *target.pip_args(),
                    "--index-url",
                    index,
                    "--dest",
                    str(dest),
                    "demo-top",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                check=False,
            )
            assert pip.returncode == 0, target.spec + pip.stdout + pip.stderr
            got = {canonicalize_name(f.split("-")[0]) for f in os.listdir(dest)}
            assert {"demo-top", "demo-app", "demo-lib", "demo-core", "demo-speedups"} <= got
        # pip judges markers by the machine it runs on; uv evaluates them for the target, so
        # it proves the Windows-only dependency is there for the Windows target.
        uv = subprocess.run(
            [
                UV,
                "pip",
                "compile",
                "-",
                "--python-version",
                "3.12",
                "--only-binary",
                ":all:",
                "--python-platform",
                "x86_64-pc-windows-msvc",
                "--index-url",
                index,
            ],
            input="demo-top\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert uv.returncode == 0, uv.stdout + uv.stderr
        assert "demo-winonly==1.0" in uv.stdout


def test_closure_follows_new_releases_and_config_changes(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    config = _config(tmp_path, upstream, "demo-top")
    assert run_cli(config, "mirror").returncode == 0
    web = tmp_path / "mirror" / "web"

    # A new release deep in the closure needs a project nobody needed before.
    upstream.index.create_project("demo-newdep")
    upstream.index.add_release("demo-newdep", "1.0", kinds=("wheel",))
    upstream.index.add_release("demo-core", "1.2", requires_dist=("demo-newdep",))
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert _projects(web) == CLOSURE | {"demo-newdep"}
    assert any("-1.2-" in f for f in _files(web, "demo-core"))

    # A narrower seed list shrinks the mirror on the next run, files and all.
    config = _config(tmp_path, upstream, "demo-lib")
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert _projects(web) == {"demo-lib", "demo-core", "demo-newdep"}
    assert_tree_sound(web)
    linked = {p.name for p in (web / "packages").rglob("*") if p.is_file()}
    assert not any(n.startswith(("demo_app", "demo_top", "demo_speedups")) for n in linked)


def test_closure_needs_targets(tmp_path: Path, upstream: FakePyPI) -> None:
    path = write_config(tmp_path, upstream.url)
    with path.open("a") as out:
        out.write("\n[plugins]\nenabled = allowlist_project\n")
        out.write("[allowlist]\npackages = demo-top\ndependencies = true\n")
    result = run_cli(path, "mirror")
    assert result.returncode == 2
    assert "[targets] environments" in result.stderr


def test_plan_shows_the_chain_that_pulled_a_project_in(tmp_path: Path, upstream: FakePyPI) -> None:
    config = _config(tmp_path, upstream, "demo-top")
    result = run_cli(config, "plan")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("  +")}
    assert set(lines) == CLOSURE
    assert "demo-core <- demo-lib <- demo-app <- demo-top" in lines["demo-core"]
    assert "demo-winonly <- demo-top" in lines["demo-winonly"]
    assert not (tmp_path / "mirror" / "web" / "packages").exists() or not any(
        (tmp_path / "mirror" / "web" / "packages").rglob("*.whl")
    )


def test_readme_worked_example_requirements_carried_offline(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    """README, "Partial mirrors": a requirements.txt for two platforms, carried as a tarball
    to a machine with no network, installed there from a file:// index."""
    (tmp_path / "requirements.txt").write_text("demo-top==1.0\n")
    config = write_config(tmp_path, upstream.url)
    with config.open("a") as out:
        out.write(
            f"\n[plugins]\nenabled = project_requirements\n"
            f"[allowlist]\nrequirements_path = {tmp_path}\nrequirements = requirements.txt\n"
            f"dependencies = true\n[targets]\nenvironments = {TARGETS}\n"
        )
    assert run_cli(config, "mirror").returncode == 0
    assert _projects(tmp_path / "mirror" / "web") == CLOSURE

    archive = shutil.make_archive(str(tmp_path / "carry"), "gztar", tmp_path / "mirror", "web")
    offline = tmp_path / "offline"
    shutil.unpack_archive(archive, offline)
    upstream.stop()  # the offline machine reaches nothing
    index = (offline / "web" / "simple").as_uri() + "/"
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--isolated", "--no-input"),
            *("--index-url", index, "--target", str(target)),
            *("-r", str(tmp_path / "requirements.txt")),
        ],
        capture_output=True,
        text=True,
        env=client_env(tmp_path),
        timeout=300,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    installed = {p.name.split("-")[0] for p in target.glob("*.dist-info")}
    assert {"demo_top", "demo_app", "demo_lib", "demo_core", "demo_speedups"} <= installed
