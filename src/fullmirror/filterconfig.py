"""Reading the filter sections of the config into :class:`~fullmirror.filters.FilterSettings`.

bandersnatch's sections and keys, spelled as bandersnatch spells them (``[plugins] enabled``,
``[allowlist] packages``, ``[blocklist] platforms``, ``[filter_regex] releases`` ...), plus
fullmirror's own ``[targets]``, ``[allowlist] dependencies`` and ``[mirror] min-age``.
Requirements files are read here, once, when the config loads, so a bad line stops the run
before anything is fetched. Every unusable value raises a one-line ConfigError.
"""

from __future__ import annotations

import configparser
import difflib
import glob
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from fullmirror.errors import ConfigError
from fullmirror.filters import PLUGINS, FilterSettings, TargetLike, VersionRule

__all__ = ["FILTER_SECTIONS", "UNSUPPORTED_SECTIONS", "parse_filters"]

#: Sections this module reads; any other key in them is warned about.
FILTER_SECTIONS: dict[str, tuple[str, ...]] = {
    "plugins": ("enabled",),
    "allowlist": ("packages", "requirements_path", "requirements", "dependencies"),
    "blocklist": ("packages", "platforms"),
    "filter_regex": ("packages", "releases"),
    "filter_prerelease": ("packages",),
    "latest_release": ("keep", "sort_by"),
    "size_project_metadata": ("max_package_size",),
    "versions_count_project_metadata": ("min_versions", "max_versions"),
    "targets": ("environments", "sdists"),
}
#: bandersnatch plugins (and their sections) fullmirror does not implement yet.
UNSUPPORTED_SECTIONS = (
    "regex_project_metadata", "regex_release_file_metadata",
    "version_range_release_file_metadata",
)  # fmt: skip

_WINDOWS = (".win32", "-win32", "win_amd64", "win-amd64")
_LINUX = (
    "linux-i686", "linux-x86_64", "linux_armv7l", "linux_armv6l",
    "manylinux1_i686", "manylinux1_x86_64", "manylinux2010_i686", "manylinux2010_x86_64",
    "manylinux2014_x86_64", "manylinux2014_i686", "manylinux2014_aarch64",
    "manylinux2014_armv7l", "manylinux2014_ppc64", "manylinux2014_ppc64le",
    "manylinux2014_s390x",
)  # fmt: skip
# PEP 600 and PEP 656 tags post-date bandersnatch's list; without them "linux" would keep
# every manylinux_2_28 or musllinux wheel, which is not what anyone asking for it means.
_LINUX_MODERN = ("manylinux_", "musllinux_")
_PYTHON = re.compile(r"py([23])\.([0-9]{1,2})")
_SIZE = re.compile(r"([0-9]+)\s*([kmg]?)b?", re.IGNORECASE)
_AGE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_OPTION = re.compile(r"\s--?[A-Za-z]")  # a pip option after a requirement: --hash=..., etc.
_COMMENT = re.compile(r"(^|\s)#.*$")


def parse_filters(
    parser: configparser.ConfigParser, path: str, min_age: str | None
) -> tuple[FilterSettings, list[str]]:
    """The filter settings of a parsed config file and the warnings they raise."""
    warnings: list[str] = []
    for section, keys in FILTER_SECTIONS.items():
        if parser.has_section(section):
            for key in parser[section]:
                if key not in keys:
                    close = difflib.get_close_matches(key, keys, n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    warnings.append(f"[{section}] {key}: unknown key, ignored{hint}")
    enabled = _enabled(parser, path, warnings)
    allow = _section(parser, "allowlist")
    block = _section(parser, "blocklist")
    regex = _section(parser, "filter_regex")
    latest = _section(parser, "latest_release")
    counts = _section(parser, "versions_count_project_metadata")
    patterns, packagetypes = _platforms(block.get("platforms", ""), path)
    settings = FilterSettings(
        enabled=enabled,
        allowlist=_rules(allow.get("packages", ""), "allowlist", "packages", path),
        blocklist=_rules(block.get("packages", ""), "blocklist", "packages", path),
        requirements=_requirements(allow, path),
        project_patterns=_patterns(regex.get("packages", ""), "packages", path),
        release_patterns=_patterns(regex.get("releases", ""), "releases", path),
        prerelease_projects=_names(_section(parser, "filter_prerelease").get("packages", "")),
        latest_keep=_whole(latest, "latest_release", "keep", path),
        latest_sort_by=_sort_by(latest, path),
        platform_patterns=patterns,
        platform_packagetypes=packagetypes,
        max_package_size=_size(_section(parser, "size_project_metadata"), path),
        min_versions=_whole(counts, "versions_count_project_metadata", "min_versions", path),
        max_versions=_whole(counts, "versions_count_project_metadata", "max_versions", path),
        targets=_targets(_section(parser, "targets"), path),
        sdists=_boolean(_section(parser, "targets"), "targets", "sdists", True, path),
        min_age=_min_age(min_age, path),
        dependencies=_boolean(allow, "allowlist", "dependencies", False, path),
    )
    if settings.max_versions and settings.min_versions > settings.max_versions:
        raise ConfigError(
            "versions_count_project_metadata",
            f"min_versions = {settings.min_versions} is above max_versions = "
            f"{settings.max_versions}; lower min_versions or raise max_versions",
            path=path,
        )
    if settings.dependencies:
        _check_closure(settings, path)
        # The seeds and their closure are the whole mirror: the allowlist plugins that make
        # them so are on whether or not [plugins] names them.
        implied = {"allowlist_project"} if settings.allowlist else set()
        implied |= {"project_requirements"} if settings.requirements else set()
        chosen = set(settings.enabled) | implied
        settings = replace(settings, enabled=tuple(p for p in PLUGINS if p in chosen))
    if not settings.sdists and not settings.targets:
        warnings.append(
            "[targets] sdists = false has no effect without environments; sdists are kept"
        )
    warnings += _idle_sections(parser, enabled)
    return settings, warnings


def _check_closure(settings: FilterSettings, path: str) -> None:
    """The closure needs seeds and the targets to judge markers and wheel tags for."""
    if not settings.targets:
        raise ConfigError(
            "allowlist",
            "dependencies = true needs [targets] environments: markers and wheel tags are "
            "judged per target; add e.g. environments = cp311-manylinux_2_17_x86_64",
            path=path,
        )
    if not (settings.allowlist or settings.requirements):
        raise ConfigError(
            "allowlist",
            "dependencies = true has no seeds: list projects in packages or requirements",
            path=path,
        )


def _section(parser: configparser.ConfigParser, name: str) -> Mapping[str, str]:
    return parser[name] if parser.has_section(name) else {}


def _lines(text: str) -> list[str]:
    """The non-empty lines of a multi-line value, without ``#`` comments."""
    out = []
    for line in text.splitlines():
        line = _COMMENT.sub("", line).strip()
        if line:
            out.append(line)
    return out


def _enabled(parser: configparser.ConfigParser, path: str, warnings: list[str]) -> tuple[str, ...]:
    chosen: set[str] = set()
    for token in _section(parser, "plugins").get("enabled", "").split():
        if token == "all":
            chosen.update(PLUGINS)
        elif token in PLUGINS:
            chosen.add(token)
        elif token in UNSUPPORTED_SECTIONS:
            warnings.append(
                f"[plugins] enabled: {token} is not supported yet in this version; it filters "
                "nothing"
            )
        else:
            close = difflib.get_close_matches(token, PLUGINS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                "plugins",
                f"enabled = {token!r}: not a filter plugin; {hint}"
                "use plugin names such as allowlist_project, or all",
                path=path,
            )
    return tuple(p for p in PLUGINS if p in chosen)


def _requirement(line: str) -> VersionRule:
    """Raises InvalidRequirement for a line that is not ``name[extras] specifier; marker``."""
    requirement = Requirement(line)
    return VersionRule(canonicalize_name(requirement.name), str(requirement.specifier))


def _rules(text: str, section: str, key: str, path: str) -> tuple[VersionRule, ...]:
    rules = []
    for line in _lines(text):
        try:
            rules.append(_requirement(line))
        except InvalidRequirement:
            raise ConfigError(
                section,
                f"{key}: {line!r} is not a project name with an optional PEP 440 specifier, "
                "like black or black>=25.1.0",
                path=path,
            ) from None
    return tuple(dict.fromkeys(rules))


def _requirements(allow: Mapping[str, str], path: str) -> tuple[VersionRule, ...]:
    """The ``[allowlist] requirements`` files (names or globs under ``requirements_path``)."""
    # bandersnatch resolves a missing requirements_path against its working directory; the
    # config file's folder gives the same file whoever starts the run (cron, a shell).
    base = Path(path).parent / Path(allow.get("requirements_path", "").strip() or ".")
    rules: list[VersionRule] = []
    for name in _lines(allow.get("requirements", "")):
        matches = sorted(glob.glob(str(base / name)))
        if not matches:
            raise ConfigError(
                "allowlist",
                f"requirements = {name!r}: no file matches under {base}; "
                "fix the name or requirements_path",
                path=path,
            )
        for match in matches:
            rules += _read_requirements(Path(match), path)
    return tuple(dict.fromkeys(rules))


def _read_requirements(file: Path, path: str) -> list[VersionRule]:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "allowlist", f"requirements: cannot read {file}: {exc}; fix the file", path=path
        ) from None
    rules = []
    # Continuation lines ("\" at the end) join first, as pip reads them.
    for number, line in enumerate(text.replace("\\\n", " ").splitlines(), start=1):
        line = _COMMENT.sub("", line).strip()
        if not line or line.startswith("-"):  # -r, -c, -e, --index-url ...: not projects
            continue
        line = _OPTION.split(line, maxsplit=1)[0].strip()
        try:
            rules.append(_requirement(line))
        except InvalidRequirement:
            raise ConfigError(
                "allowlist",
                f"requirements: {file} line {number}: {line!r} is not a requirement "
                "like name==1.0; fix or remove the line",
                path=path,
            ) from None
    return rules


def _patterns(text: str, key: str, path: str) -> tuple[str, ...]:
    # Patterns are taken whole: a "#" may be part of a regular expression.
    patterns = tuple(line.strip() for line in text.splitlines() if line.strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                "filter_regex",
                f"{key}: {pattern!r} is not a regular expression ({exc}); fix the pattern",
                path=path,
            ) from None
    return patterns


def _names(text: str) -> tuple[NormalizedName, ...]:
    return tuple(sorted({canonicalize_name(line) for line in _lines(text)}))


def _platforms(text: str, path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``[blocklist] platforms`` as bandersnatch reads it: filename substrings and types."""
    patterns: list[str] = []
    types: list[str] = []
    for token in text.lower().split():
        python = _PYTHON.fullmatch(token)
        if token in ("windows", "win"):
            patterns += _WINDOWS
            types += ("bdist_msi", "bdist_wininst")
        elif token in ("macos", "macosx"):
            patterns += ("macosx_", "macosx-")
            types.append("bdist_dmg")
        elif token == "freebsd":
            patterns += (".freebsd", "-freebsd")
        elif token == "linux":
            patterns += _LINUX + _LINUX_MODERN
            types.append("bdist_rpm")
        elif token == "py2":
            for minor in range(4, 8):
                patterns += _python_tags("2", str(minor))
            patterns += ("-py2-", "-py2.")  # py2-only wheels and eggs
        elif python is not None:
            patterns += _python_tags(python[1], python[2])
        elif token in _WINDOWS or token in _LINUX:
            patterns.append(token)
        else:
            raise ConfigError(
                "blocklist",
                f"platforms = {token!r}: unknown; use windows, macos, freebsd, linux, py2, "
                "py2.4 to py3.14, or a tag such as win_amd64 or manylinux2014_x86_64",
                path=path,
            )
    return tuple(dict.fromkeys(patterns)), tuple(dict.fromkeys(types))


def _python_tags(major: str, minor: str) -> tuple[str, ...]:
    """The PEP 425 python tags of one version, as bandersnatch matches them in filenames."""
    nodot = major + minor
    return (
        *(f"-{interpreter}{nodot}-" for interpreter in ("cp", "pp", "ip", "jy")),
        f"-py{major}.{minor}-",
        f"-py{major}.{minor}.",
    )


def _whole(values: Mapping[str, str], section: str, key: str, path: str) -> int:
    value = values.get(key, "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise ConfigError(
            section, f"{key} = {value!r}: must be a whole number, 0 or more", path=path
        )
    return int(value)


def _sort_by(values: Mapping[str, str], path: str) -> str:
    value = values.get("sort_by", "version").strip().lower() or "version"
    if value not in ("version", "time"):
        raise ConfigError(
            "latest_release", f"sort_by = {value!r}: must be version or time", path=path
        )
    return value


def _size(values: Mapping[str, str], path: str) -> int:
    value = values.get("max_package_size", "").strip()
    if not value:
        return 0
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ConfigError(
            "size_project_metadata",
            f"max_package_size = {value!r}: must be bytes, or a number with K, M or G, like 1G",
            path=path,
        )
    power = " kmg".index(match[2].lower() or " ")
    return int(match[1]) * (1 << (10 * power))


def _boolean(values: Mapping[str, str], section: str, key: str, default: bool, path: str) -> bool:
    value = values.get(key)
    if value is None:
        return default
    word = value.strip().lower()
    if word not in configparser.ConfigParser.BOOLEAN_STATES:
        raise ConfigError(
            section, f"{key} = {value!r}: must be true or false (also yes/no, on/off)", path=path
        )
    return configparser.ConfigParser.BOOLEAN_STATES[word]


def _targets(values: Mapping[str, str], path: str) -> tuple[TargetLike, ...]:
    text = values.get("environments", "").strip()
    if not text:
        return ()
    from fullmirror.targets import parse_targets  # tags and markers: only when configured

    try:
        return tuple(parse_targets(text))
    except ValueError as exc:
        raise ConfigError("targets", f"environments: {exc}", path=path) from None


def _min_age(value: str | None, path: str) -> float:
    if value is None or not value.strip():
        return 0.0
    match = _AGE.fullmatch(value.strip())
    if match is None:
        raise ConfigError(
            "mirror",
            f"min-age = {value!r}: must be a number with a unit s, m, h, d or w, like 7d "
            "(0 turns it off)",
            path=path,
        )
    return float(match[1]) * _UNITS[match[2].lower()]


def _idle_sections(parser: configparser.ConfigParser, enabled: tuple[str, ...]) -> list[str]:
    """Filter sections that change nothing because no plugin reading them is enabled."""
    readers = {
        "filter_regex": ("regex_project", "regex_release"),
        "filter_prerelease": ("prerelease_release",),
        "latest_release": ("latest_release",),
        "size_project_metadata": ("size_project_metadata",),
        "versions_count_project_metadata": ("versions_count_project_metadata",),
    }
    found = []
    for section, plugins in readers.items():
        if parser.has_section(section) and not set(plugins) & set(enabled):
            found.append(
                f"[{section}] has no effect: enable {' or '.join(plugins)} in [plugins] enabled"
            )
    return found
