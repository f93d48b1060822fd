"""closure.py: dependency closure over an in-memory upstream, tested with literals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName

from fullmirror.closure import Closure, resolve
from fullmirror.models import ReleaseFile
from fullmirror.targets import Target

N = NormalizedName
LINUX = Target("cp311-manylinux_2_17_x86_64", (3, 11), "manylinux_2_17_x86_64")
WIN = Target("cp312-win_amd64", (3, 12), "win_amd64")
BOTH = (LINUX, WIN)


def pure(name: str, version: str, **kw: object) -> ReleaseFile:
    stem = name.replace("-", "_")
    return rf(f"{stem}-{version}-py3-none-any.whl", **kw)


def rf(filename: str, requires_python: object = None, yanked: object = False) -> ReleaseFile:
    assert requires_python is None or isinstance(requires_python, str)
    assert isinstance(yanked, bool)
    return ReleaseFile(
        filename=filename,
        url=f"https://files.invalid/{filename}",
        hashes=(),
        requires_python=requires_python,
        yanked=yanked,
    )


class Upstream:
    """Literal projects; counts every call so tests can hold resolve to its I/O budget."""

    def __init__(
        self,
        projects: Mapping[str, Mapping[str, tuple[ReleaseFile, ...]]],
        requires: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
        per_file: Mapping[str, tuple[str, ...] | None] | None = None,
    ) -> None:
        self.projects = {name: dict(versions) for name, versions in projects.items()}
        self.deps = dict(requires or {})
        self.per_file = dict(per_file or {})
        self.release_calls: Counter[str] = Counter()
        self.require_calls: Counter[tuple[str, str, str]] = Counter()

    def releases(self, name: NormalizedName) -> Mapping[str, tuple[ReleaseFile, ...]] | None:
        self.release_calls[name] += 1
        return self.projects.get(name)

    def requires(
        self, name: NormalizedName, version: str, file: ReleaseFile
    ) -> tuple[str, ...] | None:
        self.require_calls[(name, version, file.filename)] += 1
        if file.filename in self.per_file:
            return self.per_file[file.filename]
        return self.deps.get((name, version))


def simple(deps: Mapping[str, tuple[str, ...]], versions: tuple[str, ...] = ("1.0",)) -> Upstream:
    """Each project has ``versions``, each a pure wheel, all with the same Requires-Dist."""
    projects = {name: {v: (pure(name, v),) for v in versions} for name in deps}
    requires = {(name, v): lines for name, lines in deps.items() for v in versions}
    return Upstream(projects, requires)


def wanted(closure: Closure) -> dict[str, list[str]]:
    return {name: sorted(versions) for name, versions in closure.wanted.items()}


def test_deep_chain_reaches_the_bottom_and_records_the_path() -> None:
    up = simple({"a": ("b",), "b": ("c>=1",), "c": ("D_D",), "d-d": ()})
    closure = resolve(["a"], BOTH, up)
    assert wanted(closure) == {"a": ["1.0"], "b": ["1.0"], "c": ["1.0"], "d-d": ["1.0"]}
    assert closure.chains[N("d-d")] == ("d-d", "c", "b", "a")
    assert closure.chains[N("a")] == ("a",)
    assert closure.chain_text(N("d-d")) == "d-d <- c <- b <- a"
    assert closure.problems == ()


def test_platform_marker_applies_on_its_target_only() -> None:
    up = simple({"app": ('winonly; sys_platform == "win32"',), "winonly": ()})
    assert "winonly" in resolve(["app"], BOTH, up).wanted
    assert "winonly" in resolve(["app"], [WIN], up).wanted
    assert "winonly" not in resolve(["app"], [LINUX], up).wanted


def test_python_version_marker() -> None:
    up = simple(
        {
            "app": ('backport; python_version < "3.12"', 'never; python_version < "3.0"'),
            "backport": (),
            "never": (),
        }
    )
    assert wanted(resolve(["app"], BOTH, up)) == {"app": ["1.0"], "backport": ["1.0"]}
    assert wanted(resolve(["app"], [WIN], up)) == {"app": ["1.0"]}


def test_extra_pulls_its_dependency_only_when_requested() -> None:
    up = simple({"app": ("lib", 'speedups; extra == "fast"'), "lib": (), "speedups": ()})
    assert set(resolve(["app"], BOTH, up).wanted) == {"app", "lib"}
    closure = resolve(["app[fast]"], BOTH, up)
    assert set(closure.wanted) == {"app", "lib", "speedups"}
    assert closure.chains[N("speedups")] == ("speedups", "app")


def test_extra_requested_by_an_intermediate_dependency() -> None:
    up = simple(
        {
            "app": ("tool[CLI]",),
            "tool": ('click; extra == "cli"', 'rich; extra == "pretty"'),
            "click": (),
            "rich": (),
        }
    )
    assert set(resolve(["app"], BOTH, up).wanted) == {"app", "tool", "click"}


def test_extra_requested_after_the_version_was_visited_is_still_followed() -> None:
    up = simple({"app": ("tool[cli]",), "tool": ('click; extra == "cli"',), "click": ()})
    # "tool" is reached first without extras, then again through app with [cli].
    closure = resolve(["tool", "app"], BOTH, up)
    assert set(closure.wanted) == {"app", "tool", "click"}
    assert closure.chains[N("click")] == ("click", "tool")


def test_project_requiring_its_own_extra_keeps_to_the_same_version() -> None:
    up = simple({"pkg": ('pkg[fast]; extra == "all"', 'speedups; extra == "fast"'), "speedups": ()})
    up.projects["pkg"] = {v: (pure("pkg", v),) for v in ("1.0", "2.0")}
    closure = resolve(["pkg[all]==1.0"], [LINUX], up)
    assert wanted(closure) == {"pkg": ["1.0"], "speedups": ["1.0"]}


def test_specifier_narrows_versions_and_only_their_dependencies_are_followed() -> None:
    up = Upstream(
        {
            "app": {"1.0": (pure("app", "1.0"),)},
            "lib": {v: (pure("lib", v),) for v in ("1.0", "2.0", "2.5", "3.0")},
            "old": {"1.0": (pure("old", "1.0"),)},
            "new": {"1.0": (pure("new", "1.0"),)},
        },
        {
            ("app", "1.0"): ("lib>=2,<3",),
            ("lib", "1.0"): ("old",),
            ("lib", "2.0"): (),
            ("lib", "2.5"): ("new",),
            ("lib", "3.0"): ("old",),
        },
    )
    assert wanted(resolve(["app"], BOTH, up)) == {
        "app": ["1.0"],
        "lib": ["2.0", "2.5"],
        "new": ["1.0"],
    }


def test_yanked_only_when_pinned() -> None:
    up = Upstream(
        {
            "lib": {
                "1.0": (pure("lib", "1.0"),),
                "2.0": (pure("lib", "2.0", yanked=True),),
            }
        }
    )
    assert wanted(resolve(["lib"], BOTH, up)) == {"lib": ["1.0"]}
    assert wanted(resolve(["lib==2.0"], BOTH, up)) == {"lib": ["2.0"]}
    assert wanted(resolve(["lib===2.0"], BOTH, up)) == {"lib": ["2.0"]}
    prefix = resolve(["lib==2.*"], [LINUX], up)
    assert prefix.wanted == {}
    assert prefix.problems == (
        "seed lib==2.* on cp311-manylinux_2_17_x86_64: only yanked versions match",
    )


def test_prereleases_only_when_named_or_nothing_final_matches() -> None:
    up = Upstream({"pre": {v: (pure("pre", v),) for v in ("1.0", "2.0b1")}})
    assert wanted(resolve(["pre"], BOTH, up)) == {"pre": ["1.0"]}
    assert wanted(resolve(["pre>=2.0b1"], BOTH, up)) == {"pre": ["2.0b1"]}
    assert wanted(resolve(["pre>1.0"], BOTH, up)) == {"pre": ["2.0b1"]}
    # Per target: with no final build for Windows, the pre-release is what pip falls back to.
    up.projects["pre"]["1.0"] = (rf("pre-1.0-cp311-cp311-manylinux2014_x86_64.whl"),)
    assert wanted(resolve(["pre"], [WIN], up)) == {"pre": ["2.0b1"]}


def test_cycles_terminate() -> None:
    up = simple({"a": ("b",), "b": ("a>=1",)})
    closure = resolve(["a"], BOTH, up)
    assert set(closure.wanted) == {"a", "b"}
    assert closure.chains == {"a": ("a",), "b": ("b", "a")}


def test_missing_project_and_missing_metadata_are_reported() -> None:
    up = simple({"app": ("ghost", "lib", "bare"), "lib": ("lib2>=9",), "lib2": (), "bare": ()})
    del up.deps[("bare", "1.0")]
    closure = resolve(["app", "nowhere"], [LINUX], up)
    assert set(closure.wanted) == {"app", "lib", "bare"}
    assert closure.problems == (
        "bare 1.0: no metadata, its dependencies are unknown",
        "ghost: not found upstream",
        "lib2>=9 (needed by lib 1.0 on cp311-manylinux_2_17_x86_64): no version matches",
        "seed nowhere: not found upstream",
    )


def test_platform_only_project_follows_its_files() -> None:
    up = Upstream(
        {
            "app": {"1.0": (pure("app", "1.0"),)},
            "native": {
                "0.9": (rf("native-0.9-cp312-cp312-win_amd64.whl"),),
                "1.0": (
                    rf("native-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
                ),
            },
            "linuxdep": {"1.0": (pure("linuxdep", "1.0"),)},
            "windep": {"1.0": (pure("windep", "1.0"),)},
        },
        {
            ("app", "1.0"): ("native",),
            ("native", "1.0"): ("linuxdep",),
            ("native", "0.9"): ("windep",),
            ("linuxdep", "1.0"): (),
            ("windep", "1.0"): (),
        },
    )
    closure = resolve(["app"], BOTH, up)
    assert wanted(closure)["native"] == ["0.9", "1.0"]
    assert {"linuxdep", "windep"} <= set(closure.wanted)
    assert closure.problems == ()
    # A version with nothing for the target is not selected there, and pip would fail.
    windows = resolve(["app", "native>=1"], [WIN], up)
    assert windows.problems == (
        "seed native>=1 on cp312-win_amd64: no file installs on cp312-win_amd64",
    )
    assert wanted(windows)["native"] == ["0.9"]


def test_requires_python_selects_versions_per_target() -> None:
    up = Upstream(
        {
            "lib": {
                "1.0": (pure("lib", "1.0", requires_python=">=3.8"),),
                "2.0": (pure("lib", "2.0", requires_python=">=3.12"),),
            }
        }
    )
    assert wanted(resolve(["lib"], [LINUX], up)) == {"lib": ["1.0"]}
    assert wanted(resolve(["lib"], BOTH, up)) == {"lib": ["1.0", "2.0"]}


def test_release_without_files_is_a_problem() -> None:
    up = Upstream({"empty": {"1.0": ()}})
    closure = resolve(["empty"], [LINUX], up)
    assert closure.wanted == {}
    assert closure.problems == (
        "seed empty on cp311-manylinux_2_17_x86_64: the matching versions have no files",
    )


def test_sdist_only_release_counts_by_requires_python() -> None:
    up = Upstream(
        {"lib": {"1.0": (rf("lib-1.0.tar.gz", requires_python=">=3.12"),)}},
        {("lib", "1.0"): ("dep",)},
    )
    up.projects["dep"] = {"1.0": (pure("dep", "1.0"),)}
    assert wanted(resolve(["lib"], [WIN], up)) == {"dep": ["1.0"], "lib": ["1.0"]}
    assert resolve(["lib"], [LINUX], up).wanted == {}


def test_seed_marker_limits_the_seed_to_its_targets() -> None:
    up = simple({"pywin": ()})
    closure = resolve(['pywin; sys_platform == "win32"'], [LINUX], up)
    assert closure == Closure(wanted={}, chains={}, problems=())
    assert set(resolve([Requirement('pywin; os_name == "nt"')], BOTH, up).wanted) == {"pywin"}


def test_metadata_prefers_the_targets_wheel_and_falls_back_to_other_files() -> None:
    linux = "lib-1.0-cp311-cp311-manylinux2014_x86_64.whl"
    win = "lib-1.0-cp312-cp312-win_amd64.whl"
    up = Upstream(
        {
            "lib": {"1.0": (rf(win), rf(linux), rf("lib-1.0.tar.gz"))},
            "a": {"1.0": (pure("a", "1.0"),)},
            "b": {"1.0": (pure("b", "1.0"),)},
        },
        per_file={linux: ("a",), win: None, "lib-1.0.tar.gz": ("b",)},
    )
    assert set(resolve(["lib"], [LINUX], up).wanted) == {"lib", "a"}
    assert up.require_calls[("lib", "1.0", win)] == 0
    # Windows' own wheel has no metadata; its sdist comes next, before the Linux wheel.
    assert set(resolve(["lib"], [WIN], up).wanted) == {"lib", "b"}


def test_each_answer_is_asked_for_once() -> None:
    up = simple(
        {
            "app": ("lib", 'lib[x]; extra == "fast"', "util"),
            "lib": ("util", 'core; extra == "x"'),
            "util": ("core",),
            "core": ("app",),
        },
        versions=("1.0", "1.1"),
    )
    resolve(["app", "app[fast]", "lib>=1.1"], BOTH, up)
    assert up.release_calls and max(up.release_calls.values()) == 1
    assert len(up.require_calls) == 8
    assert max(up.require_calls.values()) == 1


def test_output_is_sorted_and_independent_of_seed_order() -> None:
    up = simple({"zeta": ("alpha",), "alpha": ("mid",), "mid": (), "beta": ("ghost", "mid")})
    one = resolve(["zeta", "beta"], BOTH, up)
    two = resolve(["beta", "zeta"], tuple(reversed(BOTH)), up)
    assert one.wanted == two.wanted
    assert one.chains == two.chains
    assert list(one.wanted) == sorted(one.wanted)
    assert list(one.problems) == sorted(one.problems)
    # mid is two hops from both seeds: the tie goes to the first in sort order.
    assert one.chains[N("mid")] == ("mid", "beta")


def test_shortest_chain_wins() -> None:
    up = simple({"app": ("x", "z"), "x": ("y",), "y": ("z",), "z": ()})
    assert resolve(["app"], [LINUX], up).chains[N("z")] == ("z", "app")


@pytest.mark.parametrize(
    ("seed", "problem"),
    [
        ("not a requirement!", "seed 'not a requirement!': not a requirement"),
        ("pkg @ https://example.invalid/pkg.whl", "seed pkg: comes from a URL"),
    ],
)
def test_bad_seeds_are_problems(seed: str, problem: str) -> None:
    closure = resolve([seed], BOTH, simple({}))
    assert closure.wanted == {}
    assert closure.problems[0].startswith(problem)


def test_bad_requires_dist_lines_are_reported_and_skipped() -> None:
    up = simple({"app": ("lib", "bad line!", 'other; python_version ~= "x"'), "lib": ()})
    up.projects["other"] = {"1.0": (pure("other", "1.0"),)}
    closure = resolve(["app"], [LINUX], up)
    assert set(closure.wanted) == {"app", "lib"}
    assert len(closure.problems) == 2
    assert closure.problems[0].startswith(
        "app 1.0: cannot evaluate 'other; python_version ~= \"x\"': "
    )
    assert closure.problems[1] == "app 1.0: ignoring invalid Requires-Dist 'bad line!'"
