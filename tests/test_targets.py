"""targets.py: which files install on which target, tested with literal filenames."""

from __future__ import annotations

import importlib

import pytest
from packaging.markers import Marker

from fullmirror.targets import Target, parse_targets

LINUX = Target("cp311-manylinux_2_28_x86_64", (3, 11), "manylinux_2_28_x86_64")
WIN = Target("cp312-win_amd64", (3, 12), "win_amd64")
WIN32 = Target("cp311-win32", (3, 11), "win32")
MAC = Target("cp311-macosx_11_0_arm64", (3, 11), "macosx_11_0_arm64")
MUSL = Target("cp311-musllinux_1_2_x86_64", (3, 11), "musllinux_1_2_x86_64")
ARM = Target("cp310-manylinux_2_17_aarch64", (3, 10), "manylinux_2_17_aarch64")


@pytest.mark.parametrize(
    ("target", "filename", "expected"),
    [
        # Pure wheels run everywhere the Python version fits.
        (LINUX, "demo-1.0-py3-none-any.whl", True),
        (WIN, "demo-1.0-py3-none-any.whl", True),
        (LINUX, "demo-1.0-py2.py3-none-any.whl", True),
        (LINUX, "demo-1.0-py2-none-any.whl", False),
        (LINUX, "demo-1.0-py311-none-any.whl", True),
        (LINUX, "demo-1.0-py312-none-any.whl", False),
        (LINUX, "demo-1.0-cp311-none-any.whl", True),
        # manylinux: everything at or below the target's glibc, legacy aliases included.
        (LINUX, "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl", True),
        (LINUX, "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", True),
        (LINUX, "demo-1.0-cp311-cp311-manylinux2014_x86_64.whl", True),
        (LINUX, "demo-1.0-cp311-cp311-manylinux2010_x86_64.whl", True),
        (LINUX, "demo-1.0-cp311-cp311-manylinux1_x86_64.whl", True),
        (LINUX, "demo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl", False),
        (LINUX, "demo-1.0-cp311-cp311-manylinux_2_28_aarch64.whl", False),
        (LINUX, "demo-1.0-cp311-cp311-musllinux_1_2_x86_64.whl", False),
        (LINUX, "demo-1.0-cp311-cp311-linux_x86_64.whl", False),
        (
            LINUX,
            "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            True,
        ),
        (
            LINUX,
            "demo-1.0-cp311-cp311-manylinux_2_34_x86_64.manylinux_2_28_x86_64.whl",
            True,
        ),
        # Interpreter and ABI: a cp312 build is not a cp311 one; abi3 from older CPython is.
        (LINUX, "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", False),
        (LINUX, "demo-1.0-cp310-cp310-manylinux_2_17_x86_64.whl", False),
        (LINUX, "demo-1.0-cp38-abi3-manylinux_2_17_x86_64.whl", True),
        (LINUX, "demo-1.0-cp312-abi3-manylinux_2_17_x86_64.whl", False),
        (LINUX, "demo-1.0-cp311-cp311d-manylinux_2_17_x86_64.whl", False),
        (LINUX, "demo-1.0-cp311-cp311t-manylinux_2_17_x86_64.whl", False),
        (LINUX, "demo-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl", False),
        (LINUX, "demo-1.0-cp37.cp38.cp39.cp310.cp311-cp311-manylinux1_x86_64.whl", True),
        # aarch64 has no manylinux before glibc 2.17.
        (ARM, "demo-1.0-cp310-cp310-manylinux2014_aarch64.whl", True),
        (ARM, "demo-1.0-cp310-cp310-manylinux_2_28_aarch64.whl", False),
        # musllinux: older musl minors run, glibc builds do not.
        (MUSL, "demo-1.0-cp311-cp311-musllinux_1_1_x86_64.whl", True),
        (MUSL, "demo-1.0-cp311-cp311-musllinux_1_2_x86_64.whl", True),
        (MUSL, "demo-1.0-cp311-cp311-musllinux_1_3_x86_64.whl", False),
        (MUSL, "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),
        # macOS: older releases and fat binaries that contain the architecture.
        (MAC, "demo-1.0-cp311-cp311-macosx_11_0_arm64.whl", True),
        (MAC, "demo-1.0-cp311-cp311-macosx_10_9_universal2.whl", True),
        (MAC, "demo-1.0-cp311-cp311-macosx_10_9_x86_64.whl", False),
        (MAC, "demo-1.0-cp311-cp311-macosx_14_0_arm64.whl", False),
        # Windows: the bitness is part of the tag.
        (WIN, "demo-1.0-cp312-cp312-win_amd64.whl", True),
        (WIN, "demo-1.0-cp312-cp312-win32.whl", False),
        (WIN, "demo-1.0-cp311-cp311-win_amd64.whl", False),
        (WIN, "demo-1.0-cp39-abi3-win_amd64.whl", True),
        (WIN32, "demo-1.0-cp311-cp311-win32.whl", True),
        (WIN32, "demo-1.0-cp311-cp311-win_amd64.whl", False),
        # Sdists go by Requires-Python alone; legacy formats never install.
        (LINUX, "demo-1.0.tar.gz", True),
        (WIN, "demo-1.0.zip", True),
        (LINUX, "demo-1.0-py3.11.egg", False),
        (WIN, "demo-1.0.win-amd64-py3.12.exe", False),
        (WIN, "demo-1.0.win-amd64.msi", False),
        (LINUX, "demo-1.0-1.x86_64.rpm", False),
        (MAC, "demo-1.0.dmg", False),
        (LINUX, "demo-1.0.tar.bz2", False),
        # Unparseable wheel names are not candidates for pip either.
        (LINUX, "not-a-wheel.whl", False),
        (LINUX, "demo-1.0-py3-none.whl", False),
    ],
)
def test_supports_file(target: Target, filename: str, expected: bool) -> None:
    assert target.supports_file(filename, None) is expected


@pytest.mark.parametrize(
    ("requires_python", "expected"),
    [
        (None, True),
        ("", True),
        (">=3.8", True),
        (">=3.11", True),
        (">=3.12", False),
        ("<3.11", False),
        ("~=3.11", True),
        ("==3.11.*", True),
        (">=3.11.4", False),  # pip treats --python-version 3.11 as 3.11.0
        (">=3.8, !=3.11.*", False),
        ("not a specifier", True),  # pip ignores an invalid Requires-Python
        (">=3.99", False),
    ],
)
def test_supports_python(requires_python: str | None, expected: bool) -> None:
    assert LINUX.supports_python(requires_python) is expected
    assert LINUX.supports_file("demo-1.0-py3-none-any.whl", requires_python) is expected
    assert LINUX.supports_file("demo-1.0.tar.gz", requires_python) is expected


def test_incompatible_wheel_stays_out_whatever_requires_python_says() -> None:
    assert not WIN.supports_file("demo-1.0-cp311-cp311-win_amd64.whl", ">=3.8")


def test_parse_targets_splits_on_any_whitespace_and_drops_duplicates() -> None:
    text = "cp311-manylinux_2_28_x86_64  cp312-win_amd64\n\tcp311-manylinux_2_28_x86_64\n"
    targets = parse_targets(text)
    assert [t.spec for t in targets] == ["cp311-manylinux_2_28_x86_64", "cp312-win_amd64"]
    assert targets[0] == LINUX
    assert targets[1].python_version == (3, 12)
    assert targets[1].platform == "win_amd64"
    assert parse_targets("  \n") == ()


def test_parse_accepts_each_platform_family() -> None:
    text = (
        "cp39-manylinux2014_aarch64 cp310-manylinux1_x86_64 cp313-musllinux_1_1_aarch64 "
        "cp311-macosx_10_9_x86_64 cp312-macosx_14_0_universal2 cp311-win_arm64 "
        "cp311-linux_armv7l cp313t-manylinux_2_28_x86_64 cp310-win32"
    )
    targets = parse_targets(text)
    assert [t.python_version for t in targets] == [
        (3, 9),
        (3, 10),
        (3, 13),
        (3, 11),
        (3, 12),
        (3, 11),
        (3, 11),
        (3, 13),
        (3, 10),
    ]
    free = targets[7]
    assert free.free_threaded
    assert free.supports_file("demo-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl", None)
    assert not free.supports_file("demo-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", None)
    # abi3 is for the GIL build only before 3.15.
    assert not free.supports_file("demo-1.0-cp38-abi3-manylinux_2_17_x86_64.whl", None)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("cp311", "expected INTERPRETER-PLATFORM"),
        ("cp311-", "expected INTERPRETER-PLATFORM"),
        ("manylinux_2_28_x86_64", "expected INTERPRETER-PLATFORM"),
        ("py311-manylinux_2_28_x86_64", "interpreter must be"),
        ("pp310-manylinux_2_28_x86_64", "interpreter must be"),
        ("cp27-manylinux1_x86_64", "interpreter must be"),
        ("3.11-win_amd64", "interpreter must be"),
        ("cp312t-manylinux_2_28_x86_64", "free-threaded builds start at cp313t"),
        ("cp311-windows", "unknown platform"),
        ("cp311-any", "unknown platform"),
        ("cp311-manylinux_3_0_x86_64", "not a manylinux baseline"),
        ("cp311-macosx_9_0_x86_64", "runs no wheels"),
    ],
)
def test_bad_tokens_say_which_and_why(token: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_targets(f"cp312-win_amd64 {token}")
    message = str(info.value)
    assert message.startswith(f"{token}: ")
    assert why in message
    assert message.endswith("; write it like cp311-manylinux_2_28_x86_64")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (LINUX, ("linux", "Linux", "posix", "x86_64")),
        (ARM, ("linux", "Linux", "posix", "aarch64")),
        (MUSL, ("linux", "Linux", "posix", "x86_64")),
        (WIN, ("win32", "Windows", "nt", "AMD64")),
        (WIN32, ("win32", "Windows", "nt", "x86")),
        (MAC, ("darwin", "Darwin", "posix", "arm64")),
    ],
)
def test_markers_describe_the_target(target: Target, expected: tuple[str, ...]) -> None:
    env = target.markers()
    assert (env["sys_platform"], env["platform_system"], env["os_name"]) == expected[:3]
    assert env["platform_machine"] == expected[3]
    assert env["implementation_name"] == "cpython"
    assert env["platform_python_implementation"] == "CPython"
    major, minor = target.python_version
    assert env["python_version"] == f"{major}.{minor}"
    assert env["python_full_version"] == f"{major}.{minor}.0"


def test_markers_never_fall_back_to_the_host() -> None:
    # Every PEP 508 variable is set, so nothing comes from the machine running the mirror.
    keys = {
        "implementation_name",
        "implementation_version",
        "os_name",
        "platform_machine",
        "platform_release",
        "platform_system",
        "platform_version",
        "python_full_version",
        "platform_python_implementation",
        "python_version",
        "sys_platform",
    }
    assert set(WIN.markers()) == keys
    win_only = Marker('sys_platform == "win32" and python_version >= "3.12"')
    assert win_only.evaluate(WIN.markers())
    assert not win_only.evaluate(LINUX.markers())
    assert Marker('platform_machine == "AMD64"').evaluate(WIN.markers())
    assert not Marker('python_full_version >= "3.11.1"').evaluate(LINUX.markers())


def test_pip_args() -> None:
    args = MAC.pip_args()
    assert args == [
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--platform",
        "macosx_11_0_arm64",
    ]
    linux = LINUX.pip_args()
    platforms = [linux[i + 1] for i, arg in enumerate(linux) if arg == "--platform"]
    assert platforms[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert "manylinux_2_29_x86_64" not in platforms


@pytest.mark.parametrize(
    "spec",
    [
        "cp311-manylinux_2_28_x86_64",
        "cp312-win_amd64",
        "cp311-win32",
        "cp311-macosx_11_0_arm64",
        "cp310-macosx_10_9_universal2",
        "cp311-musllinux_1_2_aarch64",
        "cp39-manylinux2014_x86_64",
        "cp313t-manylinux_2_17_aarch64",
        "cp311-linux_x86_64",
    ],
)
def test_tags_equal_what_pip_accepts_for_pip_args(spec: str) -> None:
    # The promise behind pip_args: pip given these flags accepts exactly our tag set, so a
    # `pip download --only-binary=:all:` from the mirror finds the files we kept.
    compat = importlib.import_module("pip._internal.utils.compatibility_tags")
    (target,) = parse_targets(spec)
    args = target.pip_args()
    flags: dict[str, list[str]] = {}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        flags.setdefault(flag, []).append(value)
    pip_tags = compat.get_supported(
        version=flags["--python-version"][0].replace(".", ""),
        platforms=flags["--platform"],
        impl=flags["--implementation"][0],
        abis=flags["--abi"],
    )
    assert {str(tag) for tag in pip_tags} == {str(tag) for tag in target.tags}
