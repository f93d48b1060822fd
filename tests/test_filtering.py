"""Filters end to end: the real CLI against the fake PyPI, then the pages and the disk are
compared with what the filters should have kept; changed filters apply on the next run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from fullmirror.models import ProjectPage, version_from_filename
from fullmirror.parse import parse_project_json
from fullmirror.plan import upload_epoch
from fullmirror.releasefilters import release_versions
from mirror_checks import JSON, assert_mirror_equals_upstream, assert_tree_sound

Keep = Callable[[str, str], bool]


def _configure(tmp_path: Path, upstream: FakePyPI, sections: str, **options: object) -> Path:
    path = write_config(tmp_path, upstream.url, **options)
    with path.open("a") as out:
        out.write("\n" + sections)
    return path


def _mirror(config: Path) -> str:
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    return result.stderr


def _pages(upstream: FakePyPI) -> dict[str, ProjectPage]:
    """Every upstream project page, as the mirror parses it."""
    pages: dict[str, ProjectPage] = {}
    with httpx.Client(headers={"Accept": JSON}) as client:
        for name in upstream.index.project_names():
            r = client.get(f"{upstream.url}/simple/{name}/")
            pages[name] = parse_project_json(
                r.content, project=name, page_url=str(r.url), header_serial=None
            ).page
    return pages


def _served(web: Path) -> dict[str, set[str]]:
    root = json.loads((web / "simple/index.v1_json").read_bytes())
    served: dict[str, set[str]] = {}
    for entry in root["projects"]:
        name = canonicalize_name(entry["name"])
        page = json.loads((web / "simple" / name / "index.v1_json").read_bytes())
        served[name] = {f["filename"] for f in page["files"]}
    return served


def _on_disk(web: Path) -> set[str]:
    return {
        p.name for p in (web / "packages").rglob("*") if p.is_file() and p.suffix != ".metadata"
    }


def _expect(upstream: FakePyPI, web: Path, allowed: Callable[[str], bool], keep: Keep) -> None:
    """Pages and disk hold exactly the upstream files ``keep`` accepts, of ``allowed`` projects."""
    index = upstream.index
    want = {
        name: {f for f in index.filenames(name) if keep(name, f)}
        for name in index.project_names()
        if allowed(name)
    }
    assert _served(web) == want
    assert _on_disk(web) == set().union(*want.values())
    assert_tree_sound(web)


def _all(name: str) -> bool:
    return True


def _every(name: str, filename: str) -> bool:
    return True


@pytest.fixture
def web(tmp_path: Path) -> Path:
    return tmp_path / "mirror" / "web"


def test_without_plugins_enabled_the_sections_filter_nothing(
    tmp_path: Path, upstream: FakePyPI, web: Path
) -> None:
    config = _configure(tmp_path, upstream, "[blocklist]\npackages = demo-core\n")
    _mirror(config)
    assert_mirror_equals_upstream(web, upstream.url)


def test_blocklist_of_projects_and_releases(tmp_path: Path, upstream: FakePyPI, web: Path) -> None:
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled =\n    blocklist_project\n    blocklist_release\n"
        "[blocklist]\npackages =\n    demo_utils\n    demo-lib>=1.5\n",
    )
    _mirror(config)
    _expect(
        upstream,
        web,
        lambda n: n != "demo-utils",
        lambda n, f: not (n == "demo-lib" and ("-1.5" in f or "-2.0" in f)),
    )
    versions = json.loads((web / "simple/demo-lib/index.v1_json").read_bytes())["versions"]
    assert sorted(versions) == ["1.0", "1.2"]


def test_allowlist_then_a_name_added_is_fetched_next_run(
    tmp_path: Path, upstream: FakePyPI, web: Path
) -> None:
    plugins = "[plugins]\nenabled =\n    allowlist_project\n    allowlist_release\n"
    config = _configure(
        tmp_path, upstream, plugins + "[allowlist]\npackages =\n    demo-lib<1.5\n    demo-core\n"
    )
    _mirror(config)

    def lib_below_15(name: str, filename: str) -> bool:
        return name != "demo-lib" or "-1.0" in filename or "-1.2" in filename

    _expect(upstream, web, lambda n: n in ("demo-lib", "demo-core"), lib_below_15)

    # No upstream change at all: the new name is fetched because the allowlist changed.
    config = _configure(
        tmp_path,
        upstream,
        plugins + "[allowlist]\npackages =\n    demo-lib<1.5\n    demo-core\n    demo-app\n",
    )
    _mirror(config)
    _expect(upstream, web, lambda n: n in ("demo-lib", "demo-core", "demo-app"), lib_below_15)


def test_regex_prerelease_and_latest_release(tmp_path: Path, upstream: FakePyPI, web: Path) -> None:
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled =\n    regex_project\n    regex_release\n    prerelease_release\n"
        "    latest_release\n"
        "[filter_regex]\npackages =\n    demo-n.*\nreleases =\n    1\\.0$\n"
        "[latest_release]\nkeep = 1\n",
    )
    _mirror(config)
    served = _served(web)
    assert "demo-native" not in served and "demo-never" not in served
    assert all("-1.0" not in f for files in served.values() for f in files)
    assert {version_from_filename(f) for f in served["demo-core"]} == {"1.1"}
    # demo-pre: 1.0 matches the regex and 2.0b1 is a pre-release, so nothing is left.
    assert served["demo-pre"] == set()
    # demo-lib: the newest version is 2.0, but it is yanked: the current version is 1.2.
    assert {version_from_filename(f) for f in served["demo-lib"]} == {"1.2"}
    assert_tree_sound(web)


def test_exclude_platform(tmp_path: Path, upstream: FakePyPI, web: Path) -> None:
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled = exclude_platform\n[blocklist]\nplatforms =\n    windows\n    macos\n",
    )
    _mirror(config)
    _expect(upstream, web, _all, lambda n, f: "win_amd64" not in f and "macosx" not in f)
    assert any("musllinux" in f for f in _served(web)["demo-native"])


def test_targets_then_sdists_off_leave_pages_and_disk(
    tmp_path: Path, upstream: FakePyPI, web: Path
) -> None:
    targets = "[targets]\nenvironments = cp311-manylinux_2_17_x86_64\n"
    config = _configure(tmp_path, upstream, targets)
    _mirror(config)

    def fits(name: str, filename: str) -> bool:
        if name == "demo-future" and "-2.0" in filename:
            return False  # Requires-Python >=3.99
        if filename.endswith((".tar.gz", "-py3-none-any.whl")):
            return True
        return "-cp311-" in filename and "manylinux" in filename

    _expect(upstream, web, _all, fits)
    native = _served(web)["demo-native"]
    assert len(native) == 2  # the cp311 manylinux wheel and the sdist

    config = _configure(tmp_path, upstream, targets + "sdists = false\n")
    _mirror(config)
    _expect(upstream, web, _all, lambda n, f: fits(n, f) and not f.endswith(".tar.gz"))


def test_size_and_version_count(tmp_path: Path, upstream: FakePyPI, web: Path) -> None:
    pages = _pages(upstream)
    sizes = {name: sum(f.size or 0 for f in page.files) for name, page in pages.items()}
    versions = {name: len(release_versions(page)) for name, page in pages.items()}
    limit = sizes["demo-core"]
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled =\n    size_project_metadata\n    versions_count_project_metadata\n"
        f"[size_project_metadata]\nmax_package_size = {limit}\n"
        "[allowlist]\npackages = demo-native\n"
        "[versions_count_project_metadata]\nmin_versions = 1\nmax_versions = 3\n",
    )
    _mirror(config)

    def allowed(name: str) -> bool:
        small = sizes[name] <= limit or name == "demo-native"
        return small and 1 <= versions[name] <= 3

    assert any(not allowed(name) for name in sizes)
    _expect(upstream, web, allowed, _every)


def test_requirements_files_pin_releases(tmp_path: Path, upstream: FakePyPI, web: Path) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "base.txt").write_text(
        "# pinned\n-r other.txt\n--index-url http://elsewhere/\n"
        "demo-core==1.0 --hash=sha256:00\ndemo_app  # any version\n"
    )
    config = _configure(
        tmp_path,
        upstream,
        "[plugins]\nenabled =\n    project_requirements\n    project_requirements_pinned\n"
        "[allowlist]\nrequirements_path = reqs\nrequirements =\n    b*.txt\n",
    )
    _mirror(config)
    _expect(
        upstream,
        web,
        lambda n: n in ("demo-core", "demo-app"),
        lambda n, f: n != "demo-core" or "-1.0" in f,
    )


def test_min_age_holds_a_new_release_until_it_is_old_enough(
    tmp_path: Path, upstream: FakePyPI, web: Path
) -> None:
    new = set(upstream.index.add_release("demo-core", "2.0", kinds=("wheel", "sdist")))
    page = _pages(upstream)["demo-core"]
    born = min(upload_epoch(f.upload_time) or 0 for f in page.files if f.filename in new)
    wait = 8.0
    min_age = int(time.time() - born + wait)
    config = _configure(tmp_path, upstream, "", min_age=f"{min_age}s")
    _mirror(config)
    assert time.time() < born + min_age, "the first run took too long for this test"
    _expect(upstream, web, _all, lambda n, f: f not in new)

    time.sleep(max(0.0, born + min_age - time.time()) + 0.5)
    # No upstream change, same config: the held release is due, so the project is checked.
    _mirror(config)
    assert_mirror_equals_upstream(web, upstream.url)


@pytest.mark.parametrize("method", ["xmlrpc", "simple"])
def test_loosen_then_tighten_without_upstream_changes(
    tmp_path: Path, upstream: FakePyPI, web: Path, method: str
) -> None:
    tight = (
        "[plugins]\nenabled =\n    blocklist_project\n    exclude_platform\n"
        "[blocklist]\npackages = demo-utils\nplatforms = windows\n"
    )
    config = _configure(tmp_path, upstream, tight, api_method=method)
    _mirror(config)
    _expect(upstream, web, lambda n: n != "demo-utils", lambda n, f: "win_amd64" not in f)

    config = _configure(tmp_path, upstream, "", api_method=method)
    _mirror(config)
    assert_mirror_equals_upstream(web, upstream.url)

    config = _configure(tmp_path, upstream, tight, api_method=method)
    _mirror(config)
    _expect(upstream, web, lambda n: n != "demo-utils", lambda n, f: "win_amd64" not in f)
    assert not (web / "simple" / "demo-utils").exists()
