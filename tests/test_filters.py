"""The filter rules with literal pages: one test (or a few) per rule, plus the selection's
bookkeeping (reasons, counts, versions, held-back releases)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from packaging.utils import NormalizedName

from fullmirror.filters import (
    FilterSettings,
    VersionRule,
    fingerprint,
    project_allowed,
    select,
)
from fullmirror.models import ProjectPage, ReleaseFile
from fullmirror.plan import upload_epoch
from fullmirror.releasefilters import is_sdist, packagetype
from fullmirror.targets import parse_targets

NAME = NormalizedName("demo")
DAY = 86400.0
NOW = upload_epoch("2024-02-01T00:00:00Z") or 0.0


def rf(
    filename: str, *, when: str = "2024-01-01T00:00:00Z", size: int = 10, **kw: object
) -> ReleaseFile:
    return ReleaseFile(filename, f"https://files.example/{filename}", (), size, when, **kw)  # type: ignore[arg-type]


def page(*files: ReleaseFile, versions: tuple[str, ...] = (), name: str = "demo") -> ProjectPage:
    return ProjectPage(NormalizedName(name), 1, files, versions)


def on(*plugins: str, **fields: object) -> FilterSettings:
    return replace(FilterSettings(enabled=plugins), **fields)  # type: ignore[arg-type]


def rule(text: str, spec: str = "") -> VersionRule:
    return VersionRule(NormalizedName(text), spec)


def kept(settings: FilterSettings, p: ProjectPage, now: float = NOW) -> list[str]:
    return [f.filename for f in select(settings, p, now).files]


RELEASES = page(
    rf("demo-1.0.tar.gz"),
    rf("demo-1.0-py3-none-any.whl"),
    rf("demo-1.5rc1.tar.gz"),
    rf("demo-2.0.tar.gz"),
    rf("demo-2.1.dev3.tar.gz"),
    versions=("1.0", "1.5rc1", "2.0", "2.1.dev3", "3.0"),
)


# --- project stage -------------------------------------------------------------------


def test_nothing_enabled_keeps_everything_even_with_lists() -> None:
    settings = FilterSettings(blocklist=(rule("demo"),), allowlist=(rule("other"),))
    assert project_allowed(settings, NAME)
    selection = select(settings, RELEASES, NOW)
    assert selection.files == RELEASES.files
    assert selection.versions == RELEASES.versions
    assert selection.dropped == () and selection.held_until is None


def test_allowlist_project() -> None:
    settings = on("allowlist_project", allowlist=(rule("demo", ">=2"),))
    assert project_allowed(settings, NAME)
    assert not project_allowed(settings, NormalizedName("other"))
    assert project_allowed(settings, NormalizedName("other"), extra=[NormalizedName("other")])
    assert project_allowed(on("allowlist_project"), NormalizedName("other"))  # empty list


def test_blocklist_project_ignores_lines_with_a_specifier() -> None:
    settings = on("blocklist_project", blocklist=(rule("demo"), rule("other", "<2")))
    assert not project_allowed(settings, NAME)
    assert project_allowed(settings, NormalizedName("other"))


def test_regex_project_uses_match_from_the_start() -> None:
    settings = on("regex_project", project_patterns=(r"de",))
    assert not project_allowed(settings, NAME)
    assert project_allowed(settings, NormalizedName("code"))


def test_project_requirements() -> None:
    settings = on("project_requirements", requirements=(rule("demo", "==1.0"),))
    assert project_allowed(settings, NAME)
    assert not project_allowed(settings, NormalizedName("other"))


def test_a_refused_project_is_dropped_whole() -> None:
    selection = select(on("blocklist_project", blocklist=(rule("demo"),)), RELEASES, NOW)
    assert not selection.kept
    assert selection.files == () and selection.dropped == (("project", 5),)


# --- metadata stage ------------------------------------------------------------------


def test_size_limit_and_the_allowlist_exemption() -> None:
    settings = on("size_project_metadata", max_package_size=49)
    selection = select(settings, RELEASES, NOW)
    assert selection.project_reason is not None
    assert selection.project_reason.startswith("size_project_metadata: 50 bytes")
    assert selection.dropped == (("size_project_metadata", 5),)
    assert select(replace(settings, max_package_size=50), RELEASES, NOW).kept
    assert select(replace(settings, allowlist=(rule("demo"),)), RELEASES, NOW).kept


@pytest.mark.parametrize(
    ("low", "high", "ok"), [(5, 0, True), (6, 0, False), (0, 5, True), (0, 4, False)]
)
def test_version_count_range(low: int, high: int, ok: bool) -> None:
    # Five releases: the four with files and 3.0, listed with none.
    settings = on("versions_count_project_metadata", min_versions=low, max_versions=high)
    assert select(settings, RELEASES, NOW).kept is ok


# --- release stage -------------------------------------------------------------------


def test_blocklist_release() -> None:
    settings = on("blocklist_release", blocklist=(rule("demo", "==2.0"), rule("other", "<9")))
    assert kept(settings, RELEASES) == [
        "demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-1.5rc1.tar.gz",
        "demo-2.1.dev3.tar.gz",
    ]  # fmt: skip


def test_allowlist_release_allows_prereleases_and_drops_unlisted_projects() -> None:
    settings = on("allowlist_release", allowlist=(rule("demo", ">1.0,<3"),))
    assert kept(settings, RELEASES) == [
        "demo-1.5rc1.tar.gz", "demo-2.0.tar.gz", "demo-2.1.dev3.tar.gz",
    ]  # fmt: skip
    assert kept(settings, page(rf("x-1.0.tar.gz"), name="x")) == []


def test_regex_release_and_prerelease() -> None:
    assert kept(on("regex_release", release_patterns=(r"2\.",)), RELEASES) == [
        "demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-1.5rc1.tar.gz",
    ]  # fmt: skip
    assert kept(on("prerelease_release"), RELEASES) == [
        "demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-2.0.tar.gz",
    ]  # fmt: skip
    only_other = on("prerelease_release", prerelease_projects=(NormalizedName("other"),))
    assert len(kept(only_other, RELEASES)) == 5


def test_latest_release_by_version_and_by_time() -> None:
    p = page(
        rf("demo-1.0.tar.gz", when="2024-01-03T00:00:00Z"),
        rf("demo-2.0.tar.gz", when="2024-01-01T00:00:00Z"),
        rf("demo-3.0b1.tar.gz", when="2024-01-02T00:00:00Z"),
    )
    by_version = on("latest_release", latest_keep=2)
    assert kept(by_version, p) == ["demo-2.0.tar.gz", "demo-3.0b1.tar.gz"]
    by_time = replace(by_version, latest_sort_by="time")
    # The two most recently uploaded are 1.0 and 3.0b1; 2.0, the current version, replaces
    # the older of them (3.0b1, which sorts first by upload time).
    assert kept(by_time, p) == ["demo-1.0.tar.gz", "demo-2.0.tar.gz"]


def test_latest_release_keeps_the_current_version() -> None:
    p = page(rf("demo-1.0.tar.gz"), rf("demo-2.0.tar.gz"), rf("demo-3.0b1.tar.gz"))
    # keep = 1 would keep only 3.0b1; the newest final release, 2.0, takes its place.
    assert kept(on("latest_release", latest_keep=1), p) == ["demo-2.0.tar.gz"]
    yanked = page(rf("demo-1.0.tar.gz"), rf("demo-2.0.tar.gz", yanked=True))
    assert kept(on("latest_release", latest_keep=1), yanked) == ["demo-1.0.tar.gz"]


def test_pinned_requirements_decide_alone() -> None:
    settings = on(
        "project_requirements_pinned",
        "prerelease_release",
        requirements=(rule("demo", "==1.5rc1"), rule("other")),
    )
    assert kept(settings, RELEASES) == ["demo-1.5rc1.tar.gz"]
    other = page(rf("other-1.0.tar.gz"), rf("other-2.0a1.tar.gz"), name="other")
    assert kept(settings, other) == ["other-1.0.tar.gz"]  # no pin: the other rules apply
    assert kept(settings, page(rf("third-1.0.tar.gz"), name="third")) == []


# --- file stage ----------------------------------------------------------------------

NATIVE = page(
    rf("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
    rf("demo-1.0-cp311-cp311-win_amd64.whl"),
    rf("demo-1.0-cp312-cp312-macosx_11_0_arm64.whl"),
    rf("demo-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
    rf("demo-1.0.win32.exe"),
    rf("demo-1.0.tar.gz"),
    versions=("1.0",),
)


def test_exclude_platform_never_drops_sdists() -> None:
    settings = on(
        "exclude_platform",
        platform_patterns=(".win32", "-win32", "win_amd64", "win-amd64", "-cp312-"),
        platform_packagetypes=("bdist_wininst",),
    )
    selection = select(settings, NATIVE, NOW)
    assert [f.filename for f in selection.files] == [
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "demo-1.0.tar.gz",
    ]
    assert selection.dropped == (("exclude_platform", 4),)
    assert selection.versions == ("1.0",)


def test_targets_keep_compatible_files_and_sdists() -> None:
    settings = FilterSettings(targets=parse_targets("cp311-manylinux_2_17_x86_64"))
    assert kept(settings, NATIVE) == [
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "demo-1.0.tar.gz",
    ]
    assert kept(replace(settings, sdists=False), NATIVE) == [
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ]


def test_targets_drop_releases_no_target_python_satisfies() -> None:
    p = page(
        rf("demo-1.0.tar.gz", requires_python=">=3.8"),
        rf("demo-2.0.tar.gz", requires_python=">=3.99"),
        rf("demo-2.0-py3-none-any.whl", requires_python=">=3.99"),
        versions=("1.0", "2.0"),
    )
    selection = select(FilterSettings(targets=parse_targets("cp311-win_amd64")), p, NOW)
    assert [f.filename for f in selection.files] == ["demo-1.0.tar.gz"]
    assert selection.versions == ("1.0",)
    assert selection.dropped_releases == (("2.0", "targets-python"),)
    assert selection.dropped == (("targets-python", 2),)


# --- min-age -------------------------------------------------------------------------


def test_min_age_holds_young_releases_and_says_until_when() -> None:
    p = page(
        rf("demo-1.0.tar.gz", when="2024-01-01T00:00:00Z"),
        rf("demo-2.0.tar.gz", when="2024-01-30T00:00:00Z"),
        rf("demo-2.0-py3-none-any.whl", when="2024-01-31T00:00:00Z"),
        rf("demo-3.0.tar.gz", when=None),  # type: ignore[arg-type]
        versions=("1.0", "2.0", "3.0"),
    )
    settings = FilterSettings(min_age=7 * DAY)
    selection = select(settings, p, NOW)
    assert [f.filename for f in selection.files] == ["demo-1.0.tar.gz", "demo-3.0.tar.gz"]
    assert selection.held_until == (upload_epoch("2024-01-30T00:00:00Z") or 0) + 7 * DAY
    assert selection.dropped == (("min-age", 2),)
    assert len(kept(settings, p, now=selection.held_until)) == 4


def test_min_age_before_latest_release() -> None:
    p = page(
        rf("demo-1.0.tar.gz", when="2024-01-01T00:00:00Z"),
        rf("demo-2.0.tar.gz", when="2024-01-31T00:00:00Z"),
    )
    assert kept(on("latest_release", latest_keep=1, min_age=7 * DAY), p) == ["demo-1.0.tar.gz"]


# --- bookkeeping ---------------------------------------------------------------------


def test_versions_keep_releases_without_files_and_drop_emptied_ones() -> None:
    settings = on("exclude_platform", platform_patterns=("win_amd64",))
    p = page(rf("demo-1.0-cp311-cp311-win_amd64.whl"), versions=("1.0", "0.9"))
    selection = select(settings, p, NOW)
    assert selection.files == ()
    assert selection.versions == ("0.9",)


def test_fingerprint_is_stable_and_sees_every_change() -> None:
    base = FilterSettings(targets=parse_targets("cp311-win_amd64"))
    assert fingerprint(base) == fingerprint(
        FilterSettings(targets=parse_targets("cp311-win_amd64"))
    )
    assert fingerprint(base) != fingerprint(replace(base, min_age=1.0))
    assert fingerprint(base) != fingerprint(replace(base, enabled=("latest_release",)))


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("demo-1.0.tar.gz", "sdist"),
        ("demo-1.0.zip", "sdist"),
        ("demo-1.0.linux-x86_64.tar.gz", "bdist_dumb"),
        ("demo-1.0-py3-none-any.whl", "bdist_wheel"),
        ("demo-1.0.win32.exe", "bdist_wininst"),
        ("demo-1.0.msi", "bdist_msi"),
        ("demo-1.0-py2.7.egg", "bdist_egg"),
    ],
)
def test_packagetype_from_the_filename(filename: str, kind: str) -> None:
    assert packagetype(filename) == kind
    assert is_sdist(filename) is (kind == "sdist")
