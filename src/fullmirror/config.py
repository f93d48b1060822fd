"""Reading the one INI file that configures a mirror.

The file format is bandersnatch's: the same ``[mirror]`` section and the same key spellings
(hyphens and underscores exactly as bandersnatch spells them), so an existing
``bandersnatch.conf`` loads unchanged. Keys and sections fullmirror does not act on are never
dropped silently: each one adds a line to :attr:`Config.warnings`. Every value that cannot be
used raises :class:`~fullmirror.errors.ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import configparser
import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from fullmirror.errors import ConfigError
from fullmirror.filterconfig import FILTER_SECTIONS, UNSUPPORTED_SECTIONS, parse_filters
from fullmirror.filters import FilterSettings

__all__ = ["Config", "load_config", "parse_config"]

_SECTION = "mirror"

#: Keys of ``[mirror]`` that fullmirror reads or accepts; any other key is warned about.
_KEYS = (
    "directory", "master", "api-method", "workers", "timeout", "global-timeout", "json",
    "release-files", "simple-format", "stop-on-error", "allow-non-https", "root_uri",
    "diff-file", "diff-append-epoch", "digest_name", "compare-method", "core-metadata",
    "download-mirror", "download-mirror-no-fallback", "proxy", "log-config", "verifiers",
    "xmlrpc-delay", "retries", "min-age", "processes",
    # bandersnatch keys that are accepted for compatibility but change nothing here:
    "hash-index", "keep_index_versions", "keep-index-versions", "cleanup", "storage-backend",
    "storage-filesystem-manage-permissions",
)  # fmt: skip

#: bandersnatch filter sections this version does not implement.
_IDLE_SECTIONS = frozenset({
    *UNSUPPORTED_SECTIONS,
    "whitelist", "blacklist",  # the pre-5.0 names, which bandersnatch itself no longer reads
})  # fmt: skip

_DIGESTS = ("sha256", "sha384", "sha512", "md5", "blake2b_256")
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
# bandersnatch's diff-file reference: {{ <section>_<option> }}; the section has no "_".
_REFERENCE = re.compile(r"\{\{\s*(?P<section>[^_{}\s]+)\s*_\s*(?P<option>[^{}]*?)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Config:
    """The validated settings of one mirror; each field is one ``[mirror]`` key, except
    ``filters``, which gathers the filter sections (and ``[mirror] min-age``)."""

    directory: Path
    master: str
    api_method: str = "xmlrpc"
    workers: int = 8
    timeout: float = 10.0
    global_timeout: float = 1800.0
    json: bool = False
    release_files: bool = True
    simple_format: str = "ALL"
    stop_on_error: bool = False
    allow_non_https: bool = False
    root_uri: str = ""
    diff_file: str = ""
    diff_append_epoch: bool = False
    digest_name: str = "sha256"
    compare_method: str = "hash"
    core_metadata: bool = True
    download_mirror: str = ""
    download_mirror_no_fallback: bool = False
    proxy: str = ""
    log_config: str = ""
    verifiers: int = 3
    xmlrpc_delay: float = 1.0
    retries: int = 3
    #: Child processes that sync projects: 0 = auto (one per CPU for large runs), 1 = none.
    processes: int = 0
    filters: FilterSettings = FilterSettings()  # noqa: RUF009  # frozen, so safe to share
    warnings: tuple[str, ...] = ()


def load_config(path: Path) -> Config:
    """Read and validate the config file at *path*; never creates it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            "", "config file not found; create it from default.conf", path=str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"not UTF-8 text: {exc.reason}", path=str(path)) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError("", f"cannot read the config file: {reason}", path=str(path)) from None
    return parse_config(text, path=str(path))


def parse_config(text: str, *, path: str = "<string>") -> Config:
    """Validate config *text*; *path* names it in errors and anchors a relative directory."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-exact
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise ConfigError("", f"not a valid INI file: {reason}", path=path) from None
    if not parser.has_section(_SECTION):
        raise ConfigError(
            _SECTION,
            "section is missing; the file needs [mirror] with directory and master",
            path=path,
        )
    reader = _Reader(parser[_SECTION], path)
    warnings = _section_warnings(parser)
    for key in parser[_SECTION]:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"[mirror] {key}: unknown key, ignored; check its spelling{hint}")

    directory = _directory(reader, path)
    allow_http = reader.boolean("allow-non-https", False)
    master = reader.text("master", "")
    if not master:
        raise reader.missing(
            "master",
            "set it to the upstream index's base URL (PyPI's base URL, or any PEP 691 index)",
        )
    download_mirror = reader.text("download-mirror", "")
    config = Config(
        directory=directory,
        master=reader.upstream_url("master", master, allow_http),
        api_method=reader.choice("api-method", "xmlrpc", ("xmlrpc", "simple")),
        workers=reader.whole("workers", 8, 1, 64),
        timeout=reader.seconds("timeout", 10.0, zero_ok=False),
        global_timeout=reader.seconds("global-timeout", 1800.0, zero_ok=False),
        json=reader.boolean("json", False),
        release_files=reader.boolean("release-files", True),
        simple_format=reader.choice("simple-format", "ALL", ("ALL", "HTML", "JSON")),
        stop_on_error=reader.boolean("stop-on-error", False),
        allow_non_https=allow_http,
        root_uri=reader.url("root_uri", ("http", "https")),
        diff_file=_diff_file(reader, parser, directory),
        diff_append_epoch=reader.boolean("diff-append-epoch", False),
        digest_name=reader.choice("digest_name", "sha256", _DIGESTS),
        compare_method=reader.choice("compare-method", "hash", ("hash", "stat")),
        core_metadata=reader.boolean("core-metadata", True),
        download_mirror=(
            reader.upstream_url("download-mirror", download_mirror, allow_http)
            if download_mirror
            else ""
        ),
        download_mirror_no_fallback=reader.boolean("download-mirror-no-fallback", False),
        proxy=reader.url("proxy", _PROXY_SCHEMES),
        log_config=reader.text("log-config", ""),
        verifiers=reader.whole("verifiers", 3, 1, 64),
        xmlrpc_delay=reader.seconds("xmlrpc-delay", 1.0, zero_ok=True),
        retries=reader.whole("retries", 3, 0, 20),
        processes=_processes(reader),
    )
    warnings += _compat_warnings(reader)
    filters, filter_warnings = parse_filters(parser, path, parser[_SECTION].get("min-age"))
    warnings += filter_warnings
    if config.download_mirror_no_fallback and not config.download_mirror:
        warnings.append(
            "[mirror] download-mirror-no-fallback = true has no effect without download-mirror"
        )
    if config.diff_append_epoch and not config.diff_file:
        warnings.append("[mirror] diff-append-epoch = true has no effect without diff-file")
    return replace(config, filters=filters, warnings=tuple(warnings))


class _Reader:
    """Typed access to the ``[mirror]`` values, raising one-line ConfigErrors."""

    def __init__(self, values: Mapping[str, str], path: str) -> None:
        self.values = values
        self.path = path

    def bad(self, key: str, value: str, allowed: str) -> ConfigError:
        return ConfigError(_SECTION, f"{key} = {value!r}: {allowed}", path=self.path)

    def missing(self, key: str, fix: str) -> ConfigError:
        return ConfigError(_SECTION, f"{key} is not set: {fix}", path=self.path)

    def text(self, key: str, default: str) -> str:
        return self.values.get(key, default).strip()

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        word = value.strip().lower()
        if word not in configparser.ConfigParser.BOOLEAN_STATES:
            raise self.bad(key, value, "must be true or false (also yes/no, on/off, 1/0)")
        return configparser.ConfigParser.BOOLEAN_STATES[word]

    def whole(self, key: str, default: int, low: int, high: int | None) -> int:
        value = self.values.get(key)
        if value is None:
            return default
        allowed = f"from {low} to {high}" if high is not None else f"of {low} or more"
        number = int(value) if _WHOLE.fullmatch(value.strip()) else None
        if number is None or number < low or (high is not None and number > high):
            raise self.bad(key, value, f"must be a whole number {allowed}")
        return number

    def seconds(self, key: str, default: float, *, zero_ok: bool) -> float:
        value = self.values.get(key)
        if value is None:
            return default
        number = float(value) if _DECIMAL.fullmatch(value.strip()) else math.nan
        if not (number >= 0 if zero_ok else number > 0):
            least = "0 or more" if zero_ok else "greater than 0"
            raise self.bad(key, value, f"must be a number of seconds, {least}")
        return number

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.values.get(key)
        if value is None:
            return default
        # Matched case-insensitively, stored in the case the allowed list spells it.
        by_fold = {option.casefold(): option for option in allowed}
        found = by_fold.get(value.strip().casefold())
        if found is None:
            raise self.bad(key, value, "must be one of " + ", ".join(allowed))
        return found

    def url(self, key: str, schemes: tuple[str, ...]) -> str:
        """An optional absolute URL (``""`` when unset), trailing ``/`` stripped."""
        value = self.text(key, "")
        if value and not _is_url(value, schemes):
            kinds = "/".join(schemes)
            raise self.bad(key, value, f"must be an absolute {kinds} URL with a host, or empty")
        return value.rstrip("/")

    def upstream_url(self, key: str, value: str, allow_http: bool) -> str:
        """An http(s) URL fullmirror fetches from; ``http://`` only with allow-non-https."""
        if not _is_url(value, ("http", "https")) or urlsplit(value).query:
            raise self.bad(key, value, "must be an http(s) URL with a host, like https://host/path")
        if urlsplit(value).scheme.lower() == "http" and not allow_http:
            raise self.bad(
                key,
                value,
                "plain http is refused; use an https:// URL, "
                "or set allow-non-https = true in [mirror] to allow it",
            )
        return value.rstrip("/")


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    if any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme.lower() in schemes and bool(parts.hostname) and not parts.fragment


def _directory(reader: _Reader, path: str) -> Path:
    """``directory``, with ``~`` expanded and a relative path anchored at the file's folder."""
    value = reader.text("directory", "")
    if not value:
        raise reader.missing("directory", "set it to the folder that holds the mirror")
    try:
        directory = Path(value).expanduser()
    except RuntimeError as exc:  # ~user that does not exist, or no home directory
        raise reader.bad("directory", value, f"cannot expand ~: {exc}") from None
    return Path(os.path.abspath(Path(path).parent / directory))


def _processes(reader: _Reader) -> int:
    value = reader.values.get("processes")
    if value is not None and value.strip().casefold() == "auto":
        return 0
    try:
        return reader.whole("processes", 0, 1, 16)
    except ConfigError:
        allowed = "must be auto or a whole number from 1 to 16"
        raise reader.bad("processes", value or "", allowed) from None


def _diff_file(reader: _Reader, parser: configparser.ConfigParser, directory: Path) -> str:
    """``diff-file`` with bandersnatch's ``{{section_option}}`` references filled in."""
    value = reader.text("diff-file", "")
    residue = _REFERENCE.sub("", value)
    if "{{" in residue or "}}" in residue:
        raise reader.bad(
            "diff-file",
            value,
            "a reference must read {{section_option}}, like {{mirror_directory}}",
        )

    def fill(match: re.Match[str]) -> str:
        section, option = match["section"], match["option"]
        if (section, option) == (_SECTION, "directory"):
            return str(directory)  # the resolved folder, so a relative directory still works
        if not parser.has_option(section, option):
            raise reader.bad(
                "diff-file", value, f"{match[0]} names [{section}] {option}, which is not set"
            )
        return parser.get(section, option)

    return _REFERENCE.sub(fill, value)


def _compat_warnings(reader: _Reader) -> list[str]:
    """Check bandersnatch's keys that fullmirror accepts but does not act on."""
    found = []
    if reader.boolean("hash-index", False):
        found.append(
            "[mirror] hash-index = true: not supported; the flat layout simple/<name>/ is used"
        )
    for key in ("keep_index_versions", "keep-index-versions"):
        count = reader.whole(key, 0, 0, None)
        if count > 0:
            found.append(f"[mirror] {key} = {count}: keeping old index pages is not supported")
    if reader.boolean("cleanup", False):
        found.append(
            "[mirror] cleanup = true: has no meaning here; fullmirror never wrote the legacy "
            "non-normalized directories it removes"
        )
    backend = reader.text("storage-backend", "filesystem")
    if backend.lower() != "filesystem":
        raise reader.bad("storage-backend", backend, "only filesystem is supported")
    if not reader.boolean("storage-filesystem-manage-permissions", True):
        found.append(
            "[mirror] storage-filesystem-manage-permissions = false: ignored; "
            "files are always written with mode 0644"
        )
    return found


def _section_warnings(parser: configparser.ConfigParser) -> list[str]:
    found = []
    for section in parser.sections():
        if section == _SECTION:
            continue
        if section in FILTER_SECTIONS:
            continue
        if section in _IDLE_SECTIONS:
            why = "this filter is not supported yet in this version"
            found.append(f"[{section}] ignored: {why}, so it filters nothing")
        elif section == "s3":
            found.append(
                "[s3] ignored: S3 storage is not supported yet in this version; "
                "files are written under directory"
            )
        else:
            found.append(f"[{section}] ignored: not a section fullmirror knows")
    return found
