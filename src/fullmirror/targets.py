"""Target environments: which release files install on a given Python and platform.

A target is written ``cp311-manylinux_2_28_x86_64``: a CPython version and one platform tag.
Compatibility is decided from the parsed wheel tags and Requires-Python, never from lists of
known filenames, so a platform tag nobody had heard of when this was written still works as
long as it follows its family's naming scheme.

The tag set a target accepts is what pip computes for the flags :meth:`Target.pip_args`
returns. pip expands ``--platform`` only for macOS (older versions, fat binaries) and the
legacy ``manylinux2014``/``manylinux2010`` names; it takes ``manylinux_2_28_x86_64`` or
``musllinux_1_2_x86_64`` literally. A real glibc 2.28 system also runs ``manylinux_2_17`` and
``manylinux2014`` wheels, so the target expands those families itself (the way
:mod:`packaging.tags` does for the running system) and hands pip every expanded platform.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

__all__ = ["Target", "parse_targets"]

_HINT = "write it like cp311-manylinux_2_28_x86_64"

_INTERPRETER = re.compile(r"cp3(\d{1,2})(t?)")
_GLIBC = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_LEGACY_GLIBC = re.compile(r"manylinux(1|2010|2014)_(\w+)")
_MUSL = re.compile(r"musllinux_(\d+)_(\d+)_(\w+)")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")
_LINUX = re.compile(r"linux_(\w+)")

# PEP 513/571/599 names for the glibc versions of CentOS 5, 6 and 7.
_LEGACY_TO_GLIBC = {"1": 5, "2010": 12, "2014": 17}
_GLIBC_TO_LEGACY = {glibc: name for name, glibc in _LEGACY_TO_GLIBC.items()}
# manylinux1 and manylinux2010 only ever existed for x86; other architectures start at 2.17.
_OLDEST_GLIBC_X86 = 5
_OLDEST_GLIBC = 17

# platform.machine() as each OS spells the CPU the platform tag names.
_WINDOWS_MACHINE = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}
_MAC_MACHINE = {"arm64": "arm64", "x86_64": "x86_64", "universal2": "arm64"}

# Sdists and wheels are the only formats pip installs; .egg, .exe, .msi, .rpm and .dmg
# uploads are never candidates for it.
_SDIST_SUFFIXES = (".tar.gz", ".zip")


def _manylinux(glibc_minor: int, arch: str) -> list[str]:
    """Every manylinux platform a glibc 2.<glibc_minor> system on ``arch`` runs, newest first."""
    oldest = _OLDEST_GLIBC_X86 if arch in ("x86_64", "i686") else _OLDEST_GLIBC
    platforms: list[str] = []
    for minor in range(glibc_minor, oldest - 1, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        if minor in _GLIBC_TO_LEGACY:
            platforms.append(f"manylinux{_GLIBC_TO_LEGACY[minor]}_{arch}")
    return platforms


@dataclass(frozen=True, slots=True)
class _Platform:
    """What one platform tag expands to and what a machine carrying it reports."""

    expanded: tuple[str, ...]
    #: Platforms to pass pip as ``--platform``: pip expands macOS itself, nothing else.
    pip_platforms: tuple[str, ...]
    sys_platform: str
    platform_system: str
    os_name: str
    machine: str


def _parse_platform(platform: str) -> _Platform:
    """Expand a platform tag; ValueError with the reason when it names no known family."""
    if m := _GLIBC.fullmatch(platform):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        if major != 2:
            raise ValueError(f"glibc {major}.x is not a manylinux baseline")
        expanded = tuple(_manylinux(minor, arch)) or (platform,)
        return _Platform(expanded, expanded, "linux", "Linux", "posix", arch)
    if m := _LEGACY_GLIBC.fullmatch(platform):
        arch = m[2]
        expanded = tuple(_manylinux(_LEGACY_TO_GLIBC[m[1]], arch)) or (platform,)
        return _Platform(expanded, expanded, "linux", "Linux", "posix", arch)
    if m := _MUSL.fullmatch(platform):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        expanded = tuple(f"musllinux_{major}_{n}_{arch}" for n in range(minor, -1, -1))
        return _Platform(expanded, expanded, "linux", "Linux", "posix", arch)
    if m := _MACOS.fullmatch(platform):
        version, arch = (int(m[1]), int(m[2])), m[3]
        # The same call pip makes for --platform macosx_*, so both agree on the expansion.
        expanded = tuple(mac_platforms(version, arch))
        if not expanded:
            raise ValueError(f"macOS {version[0]}.{version[1]} on {arch} runs no wheels")
        machine = _MAC_MACHINE.get(arch, arch)
        return _Platform(expanded, (platform,), "darwin", "Darwin", "posix", machine)
    if platform in _WINDOWS_MACHINE:
        machine = _WINDOWS_MACHINE[platform]
        return _Platform((platform,), (platform,), "win32", "Windows", "nt", machine)
    if m := _LINUX.fullmatch(platform):
        # Plain linux_* wheels promise nothing about the libc; pip takes the tag literally.
        return _Platform((platform,), (platform,), "linux", "Linux", "posix", m[1])
    raise ValueError(
        "unknown platform: use a manylinux_2_Y_ARCH, musllinux_1_Y_ARCH, macosx_X_Y_ARCH, "
        "win32, win_amd64, win_arm64 or linux_ARCH tag"
    )


@dataclass(frozen=True, slots=True)
class Target:
    """One environment the mirror serves: a CPython version on one platform."""

    #: As written in the configuration, e.g. ``cp311-manylinux_2_28_x86_64``.
    spec: str
    python_version: tuple[int, int]
    platform: str
    #: Free-threaded build (``cp313t``): its own ABI, and no abi3 before 3.15.
    free_threaded: bool = False
    _platform: _Platform = field(init=False, repr=False, compare=False)
    _tags: frozenset[Tag] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        info = _parse_platform(self.platform)
        object.__setattr__(self, "_platform", info)
        # Computed once: supports_file runs for every file of every project.
        object.__setattr__(self, "_tags", frozenset(self._iter_tags(info.expanded)))

    @property
    def abi(self) -> str:
        major, minor = self.python_version
        return f"cp{major}{minor}{'t' if self.free_threaded else ''}"

    @property
    def python_full_version(self) -> str:
        # pip pads --python-version 3.11 to 3.11.0 when it checks Requires-Python; using the
        # same point release keeps our choice of files identical to what it will accept.
        major, minor = self.python_version
        return f"{major}.{minor}.0"

    def _iter_tags(self, platforms: tuple[str, ...]) -> Iterator[Tag]:
        # abis is explicit so the host's build (debug, free-threaded) cannot leak in, which is
        # also why pip_args passes --abi.
        yield from cpython_tags(self.python_version, abis=[self.abi], platforms=platforms)
        interpreter = f"cp{self.python_version[0]}{self.python_version[1]}"
        yield from compatible_tags(self.python_version, interpreter, platforms)

    @property
    def tags(self) -> frozenset[Tag]:
        return self._tags

    def supports_python(self, requires_python: str | None) -> bool:
        if not requires_python:
            return True
        try:
            specifier = SpecifierSet(requires_python)
        except InvalidSpecifier:
            # pip logs and ignores an invalid Requires-Python rather than skipping the file;
            # skipping it here would leave out a file pip then asks the mirror for.
            return True
        return specifier.contains(Version(self.python_full_version), prereleases=True)

    def supports_file(self, filename: str, requires_python: str | None) -> bool:
        """Whether pip on this target would consider installing ``filename``."""
        if filename.endswith(".whl"):
            try:
                _, _, _, file_tags = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                return False
            if self._tags.isdisjoint(file_tags):
                return False
        elif not filename.endswith(_SDIST_SUFFIXES):
            return False
        return self.supports_python(requires_python)

    def markers(self) -> dict[str, str]:
        """The full PEP 508 environment of this target.

        Every key is set: :meth:`packaging.markers.Marker.evaluate` fills missing keys from
        the machine running the mirror, which is not the target. The kernel release and
        version are unknowable from a wheel tag and left empty.
        """
        info = self._platform
        full = self.python_full_version
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": info.os_name,
            "platform_machine": info.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": info.platform_system,
            "platform_version": "",
            "python_full_version": full,
            "python_version": f"{self.python_version[0]}.{self.python_version[1]}",
            "sys_platform": info.sys_platform,
        }

    def pip_args(self) -> list[str]:
        """pip flags that make pip accept exactly :attr:`tags` (add ``--only-binary=:all:``).

        ``--implementation`` and ``--abi`` pin what pip would otherwise take from the
        interpreter it runs on.
        """
        major, minor = self.python_version
        args = ["--python-version", f"{major}.{minor}", "--implementation", "cp"]
        args += ["--abi", self.abi]
        for platform in self._platform.pip_platforms:
            args += ["--platform", platform]
        return args


def _parse_target(token: str) -> Target:
    interpreter, sep, platform = token.partition("-")
    if not sep or not platform:
        raise ValueError(f"{token}: expected INTERPRETER-PLATFORM; {_HINT}")
    m = _INTERPRETER.fullmatch(interpreter)
    if m is None:
        raise ValueError(f"{token}: interpreter must be cp3X or cp3XY (CPython); {_HINT}")
    minor, threaded = int(m[1]), m[2] == "t"
    if threaded and minor < 13:
        raise ValueError(f"{token}: free-threaded builds start at cp313t; {_HINT}")
    try:
        return Target(token, (3, minor), platform, free_threaded=threaded)
    except ValueError as exc:
        raise ValueError(f"{token}: {exc}; {_HINT}") from None


def parse_targets(text: str) -> tuple[Target, ...]:
    """Targets separated by whitespace or newlines, duplicates dropped, order kept."""
    targets: dict[str, Target] = {}
    for token in text.split():
        targets.setdefault(token, _parse_target(token))
    return tuple(targets.values())
