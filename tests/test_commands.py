"""``plan`` and ``sync`` through the CLI: a plan names exactly what the next run fetches and
removes, and changes nothing; ``sync`` brings named projects up to date at once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI


def _configure(tmp_path: Path, upstream: FakePyPI, sections: str) -> Path:
    path = write_config(tmp_path, upstream.url)
    with path.open("a") as out:
        out.write("\n" + sections)
    return path


def _tree(web: Path) -> dict[str, str]:
    return {
        str(p.relative_to(web)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in web.rglob("*")
        if p.is_file()
    }


def _packages(web: Path) -> set[str]:
    return {k for k in _tree(web) if k.startswith("packages/")}


def _plan(config: Path) -> dict[str, object]:
    result = run_cli(config, "plan", "--json")
    assert result.returncode == 0, result.stderr
    plan: dict[str, object] = json.loads(result.stdout)
    return plan


def _planned(plan: dict[str, object]) -> tuple[set[str], set[str]]:
    projects = plan["projects"]
    assert isinstance(projects, list)
    fetch = {f["location"] for p in projects for f in p["fetch"]}
    remove = {loc for p in projects for loc in p["remove"]}
    return fetch, remove


def test_plan_agrees_with_the_run_that_follows(tmp_path: Path, upstream: FakePyPI) -> None:
    web = tmp_path / "mirror" / "web"
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled = blocklist_project\n[blocklist]\npackages = demo-lib\n",
    )
    # A fresh mirror: the plan is the whole first run.
    fetch, remove = _planned(_plan(config))
    assert not (tmp_path / "mirror" / "status").exists()
    assert run_cli(config, "mirror").returncode == 0
    assert fetch == _packages(web) and not remove

    # Upstream changes and a changed filter (demo-lib allowed, demo-core refused) at once.
    upstream.index.add_release("demo-utils", "2.0", kinds=("wheel",))
    upstream.index.remove_release("demo-app", "1.0")
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled = blocklist_project\n[blocklist]\npackages = demo-core\n",
    )
    before = _tree(web)
    plan = _plan(config)
    assert _tree(web) == before, "plan changed the mirror"
    fetch, remove = _planned(plan)
    result = run_cli(config, "plan")
    assert (
        result.returncode == 0 and "demo-core" in result.stdout and "filtered out" in result.stdout
    )

    assert run_cli(config, "mirror").returncode == 0
    after = _packages(web)
    old = {k for k in before if k.startswith("packages/")}
    assert after - old == fetch
    assert old - after == remove
    assert any("demo_utils-2.0" in f for f in fetch)
    assert any("demo_lib" in f for f in fetch)
    assert any("demo_core" in f for f in remove)
    assert any("demo_app-1.0" in f for f in remove)
    # Once the run is done, nothing is left to plan.
    assert _planned(_plan(config)) == (set(), set())


def test_plan_compares_the_simple_listing_and_leaves_the_state_alone(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    config = write_config(tmp_path, upstream.url, api_method="simple")
    assert run_cli(config, "mirror").returncode == 0
    upstream.index.add_release("demo-utils", "2.0", kinds=("wheel",))
    upstream.index.remove_project("demo-lib")
    mirror = tmp_path / "mirror"
    before = {p.name: p.read_bytes() for p in mirror.iterdir() if p.is_file()}
    plan = _plan(config)
    assert {p.name: p.read_bytes() for p in mirror.iterdir() if p.is_file()} == before
    projects = plan["projects"]
    assert isinstance(projects, list)
    actions = {p["name"]: p["action"] for p in projects}
    assert actions == {"demo-utils": "update", "demo-lib": "remove"}
    assert plan["serial_to"] == upstream.index.last_serial
    fetch, remove = _planned(plan)
    assert any("demo_utils-2.0" in f for f in fetch) and remove
    assert run_cli(config, "mirror").returncode == 0
    assert _planned(_plan(config)) == (set(), set())


def test_sync_named_projects_now(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url)
    web = tmp_path / "mirror" / "web"
    assert run_cli(config, "mirror").returncode == 0
    status = (tmp_path / "mirror" / "status").read_text()

    upstream.index.add_release("demo-core", "3.0", kinds=("wheel",))
    upstream.index.add_release("demo-utils", "3.0", kinds=("wheel",))
    result = run_cli(config, "sync", "Demo_Core")
    assert result.returncode == 0, result.stderr
    page = json.loads((web / "simple/demo-core/index.v1_json").read_text())
    assert any("-3.0-" in f["filename"] for f in page["files"])
    utils = json.loads((web / "simple/demo-utils/index.v1_json").read_text())
    assert not any("-3.0-" in f["filename"] for f in utils["files"]), "only named projects"
    assert (tmp_path / "mirror" / "status").read_text() == status

    # A deleted project comes back when asked for by name.
    assert run_cli(config, "delete", "demo-lib").returncode == 0
    assert not (web / "simple/demo-lib").exists()
    assert run_cli(config, "sync", "demo-lib").returncode == 0
    assert (web / "simple/demo-lib/index.v1_json").exists()
    assert "demo-lib" in (web / "simple/index.v1_json").read_text()

    missing = run_cli(config, "sync", "no-such-project")
    assert missing.returncode == 1 and "no-such-project" in missing.stderr
    bad = run_cli(config, "sync", "../etc")
    assert bad.returncode == 2 and "not a valid project name" in bad.stderr
