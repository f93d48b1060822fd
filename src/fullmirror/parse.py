"""The one boundary where upstream bytes become typed values.

Everything an upstream index says arrives here as bytes or as an unmarshalled XML-RPC value and
leaves as the frozen dataclasses of :mod:`fullmirror.models`. Pure: no network, no disk.
Project listings, too big to parse whole, are read incrementally by :mod:`fullmirror.listings`,
which shares the helpers here (:func:`normalize_project_name`, :func:`load_meta`,
:func:`serial_value`).

Two kinds of failure, on purpose:

* :class:`~fullmirror.errors.MalformedResponse` for a document that is not the protocol at all
  (not JSON, wrong shapes, an API major version we do not speak), and for a file entry whose
  install-relevant fields (``filename``, ``url``, ``hashes``, ``requires-python``, ``yanked``)
  have the wrong JSON type. Guessing those would change what clients install, so the whole page
  fails and the caller retries it later.
* :class:`~fullmirror.errors.UnsafeUpstreamData` for well-typed values that are hostile or
  unusable: path tricks in a filename, a ``javascript:`` URL, a file with no hash we can verify.
  Only that file is dropped (and reported); the rest of the page is still mirrored.

Informational fields (``size``, ``upload-time``, ``core-metadata``) degrade to None when they
are malformed: losing them changes no install decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from fullmirror.errors import MalformedResponse, UnsafeUpstreamData
from fullmirror.models import (
    ChangelogEntry,
    CoreMetadata,
    Hashes,
    ProjectPage,
    ReleaseFile,
)

__all__ = [
    "ParsedProject",
    "check_filename",
    "load_meta",
    "normalize_project_name",
    "parse_changelog",
    "parse_project_json",
    "serial_value",
]

#: Hex digest length per algorithm: hashlib's guaranteed set (minus the variable-length shakes)
#: plus PyPI's ``blake2b_256``. A literal, because ``hashlib.new("md5")`` fails on FIPS hosts.
_HEX_LENGTHS: Mapping[str, int] = {
    "md5": 32,
    "sha1": 40,
    "sha224": 56,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "sha3_224": 56,
    "sha3_256": 64,
    "sha3_384": 96,
    "sha3_512": 128,
    "blake2b": 128,
    "blake2s": 64,
    "blake2b_256": 64,
}
_HEX = re.compile(r"[0-9a-f]+")
_UPLOAD_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_API_VERSION = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")
# A serial as bandersnatch writes it (a string); the length cap keeps int() cheap.
_DIGITS = re.compile(r"[0-9]{1,19}")
_DIGIT_CHARS = frozenset("0123456789")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BLANK_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar")
_ENCODED_SEPARATORS = ("%2f", "%5c", "%2e%2e")
_MAX_NAME_BYTES = 255
# A name already in normalized form: most of a 700,000-entry listing, checked by one match.
_NORMALIZED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Far beyond any real file URL, well below what makes a regex scan or a log line hurt.
_MAX_URL = 8192
_MAX_SIZE = 2**63 - 1
# Rejected values end up in logs and reports; a megabyte of hostile name helps nobody there.
_MAX_REPORTED = 200


@dataclass(frozen=True, slots=True)
class ParsedProject:
    """A project page plus the file entries that were dropped as hostile."""

    page: ProjectPage
    rejected: tuple[UnsafeUpstreamData, ...]


def _unsafe(what: str, value: str, reason: str) -> UnsafeUpstreamData:
    if len(value) > _MAX_REPORTED:
        value = value[:_MAX_REPORTED] + "..."
    return UnsafeUpstreamData(what, value, reason)


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass, and "true" is never a size or a serial.
    return isinstance(value, int) and not isinstance(value, bool)


def _encodable(text: str) -> bool:
    # JSON can carry lone surrogates; no file system or HTTP client can encode them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- names ----------------------------------------------------------------------------------


def normalize_project_name(name: str) -> NormalizedName | None:
    """The normalized form of a valid project name, or None for anything else.

    Valid means PEP 508's name grammar (ASCII letters, digits, ``.-_``, alphanumeric at both
    ends), which excludes path separators, ``..`` and control characters, and a normalized form
    short enough to be one directory name.
    """
    if len(name) <= _MAX_NAME_BYTES and _NORMALIZED.fullmatch(name):
        return NormalizedName(name)
    try:
        normalized = canonicalize_name(name, validate=True)
    except InvalidName:
        return None
    return normalized if len(normalized) <= _MAX_NAME_BYTES else None


def _named_before_hyphen(filename: str, project: NormalizedName) -> str | None:
    """What follows the hyphen whose whole prefix normalizes to ``project``, or None.

    Matching at a real hyphen (not on the normalized filename) keeps "foo.exe" off the page of
    "foo": normalization would turn its dot into the hyphen we look for.
    """
    index = filename.find("-")
    while index != -1:
        if canonicalize_name(filename[:index]) == project:
            return filename[index + 1 :]
        index = filename.find("-", index + 1)
    return None


def _belongs(filename: str, project: NormalizedName) -> bool:
    if filename.endswith(".whl"):
        try:
            return parse_wheel_filename(filename)[0] == project
        except InvalidWheelFilename:
            pass  # a legacy wheel with a pre-PEP 440 version: judged by the prefix rule
    elif filename.endswith(_SDIST_SUFFIXES):
        try:
            if parse_sdist_filename(filename)[0] == project:
                return True
        except InvalidSdistFilename:
            pass
        else:
            # An sdist name splits at its last hyphen, so a legacy "foo-1.0-2.tar.gz" parses
            # as project "foo-1-0". Accept it only when a digit follows "<project>-", which
            # still refuses "foo-bar-1.0.tar.gz" on the page of "foo".
            rest = _named_before_hyphen(filename, project)
            return rest is not None and rest[:1] in _DIGIT_CHARS
    # Eggs, installers, odd sdists: "<project>-<anything>", the project part in any spelling.
    return _named_before_hyphen(filename, project) is not None


def check_filename(filename: str, project: NormalizedName) -> None:
    """Raise :class:`UnsafeUpstreamData` unless ``filename`` is a safe name of a ``project`` file.

    Safe: one path component (no ``/``, ``\\``, ``.``, ``..``, encoded separators), no control
    characters, at most 255 UTF-8 bytes. Of the project: a wheel or sdist name must parse to the
    project's normalized name; a legacy name (eggs, ``.exe``, ``.msi``, sdists with pre-PEP 440
    versions) must be a spelling of the project name, a hyphen, then anything.
    Markup characters are allowed: escaping is the renderer's job.
    """

    def reject(reason: str) -> UnsafeUpstreamData:
        return _unsafe("filename", filename, reason)

    if not filename:
        raise reject("empty filename")
    if filename in (".", ".."):
        raise reject("a relative path component")
    if "/" in filename or "\\" in filename:
        raise reject("contains a path separator")
    # Length before the character scans, so a megabyte of name costs one encode.
    if not _encodable(filename):
        raise reject("not valid Unicode")
    if len(filename.encode("utf-8")) > _MAX_NAME_BYTES:
        raise reject(f"longer than {_MAX_NAME_BYTES} bytes")
    if _CONTROL.search(filename):
        raise reject("contains a control character")
    lowered = filename.lower()
    if any(encoded in lowered for encoded in _ENCODED_SEPARATORS):
        raise reject("contains a percent-encoded path separator")
    if not _belongs(filename, project):
        raise reject(f"not a file of project {project}")


# -- shared JSON helpers ----------------------------------------------------------------------


def _load_object(body: bytes, url: str) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers past the int() digit limit.
        raise MalformedResponse(url, f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedResponse(url, "the document is not a JSON object")
    return document


def load_meta(document: dict[str, object], url: str) -> dict[str, object]:
    """The ``meta`` object after the PEP 629 version check; absent means API 1.0."""
    meta = document.get("meta", {})
    if not isinstance(meta, dict):
        raise MalformedResponse(url, "meta is not an object")
    version = meta.get("api-version", "1.0")
    match = _API_VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise MalformedResponse(url, f"meta.api-version is not MAJOR.MINOR: {version!r:.40}")
    # A greater minor version only adds fields we may ignore; a new major changes meanings.
    if int(match.group(1)) != 1:
        raise MalformedResponse(url, f"unsupported api-version {version}; this mirror speaks 1.x")
    return meta


def serial_value(value: object, url: str, where: str) -> int:
    """A serial: an int >= 0 or a string of digits (not a bool); ``where`` names it in errors."""
    if _is_int(value) and value >= 0:
        return value
    # bandersnatch writes serials as strings.
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise MalformedResponse(url, f"{where} is not a serial: {value!r:.40}")


# -- project page -----------------------------------------------------------------------------


def _hashes(raw: Mapping[str, object]) -> Hashes | None:
    """The verifiable hashes, lower-cased and sorted; None when two spellings disagree."""
    kept: dict[str, str] = {}
    for key, value in raw.items():
        algorithm = key.lower()
        length = _HEX_LENGTHS.get(algorithm)
        if length is None or not isinstance(value, str) or len(value) != length:
            continue
        digest = value.lower()
        if not _HEX.fullmatch(digest):
            continue
        if kept.setdefault(algorithm, digest) != digest:
            return None
    return tuple(sorted(kept.items()))


def _core_metadata(entry: Mapping[str, object]) -> CoreMetadata | None:
    # PEP 714: "core-metadata" is the name; the older spellings are read for older servers.
    for key in ("core-metadata", "data-dist-info-metadata", "dist-info-metadata"):
        if key in entry:
            value = entry[key]
            break
    else:
        return None
    if value is True:
        return CoreMetadata(())
    if isinstance(value, dict):
        return CoreMetadata(_hashes(value) or ())
    return None


def _file_url(raw: str, page_url: str) -> str:
    """The absolute http(s) URL of a file; raises :class:`UnsafeUpstreamData` otherwise."""

    def reject(reason: str) -> UnsafeUpstreamData:
        return _unsafe("url", raw, reason)

    if len(raw) > _MAX_URL:
        raise reject(f"longer than {_MAX_URL} characters")
    # urlsplit silently drops tabs and newlines and strips leading blanks: refuse rather than
    # download from a URL other than the one written.
    if _BLANK_OR_CONTROL.search(raw):
        raise reject("contains whitespace or a control character")
    if "\\" in raw:
        raise reject("contains a backslash")
    if not _encodable(raw):
        raise reject("not valid Unicode")
    try:
        resolved = urldefrag(urljoin(page_url, raw)).url
        parts = urlsplit(resolved)
        host = parts.hostname
    except ValueError as exc:  # e.g. a broken IPv6 literal
        raise reject(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise reject(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if not host:
        raise reject("no host")
    # The storage layer may mirror URL paths verbatim; dot segments would climb out of it.
    segments = unquote(parts.path).split("/")
    if ".." in segments or any("\\" in s or "\x00" in s for s in segments):
        raise reject("the path contains '..' or an encoded separator")
    return resolved


def _optional_str(entry: Mapping[str, object], key: str, url: str) -> str | None:
    value = entry.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedResponse(url, f"{key} is not a string or null: {value!r:.40}")


def _release_file(
    entry: Mapping[str, object], project: NormalizedName, page_url: str
) -> ReleaseFile:
    filename = entry.get("filename")
    if not isinstance(filename, str):
        raise MalformedResponse(page_url, f"a file entry has no string filename: {filename!r:.40}")
    check_filename(filename, project)
    raw_url = entry.get("url")
    if not isinstance(raw_url, str):
        raise MalformedResponse(page_url, f"{filename}: url is not a string")
    url = _file_url(raw_url, page_url)

    raw_hashes = entry.get("hashes", {})
    if not isinstance(raw_hashes, dict):
        raise MalformedResponse(page_url, f"{filename}: hashes is not an object")
    hashes = _hashes(raw_hashes)
    if hashes is None:
        raise _unsafe("hashes", filename, "two spellings of one algorithm disagree")
    if not hashes:
        # The mirror verifies every byte it stores; a file without a hash cannot be verified.
        raise _unsafe("hashes", filename, "no usable hash (known algorithm, hex of right length)")

    yanked_value = entry.get("yanked", False)
    if isinstance(yanked_value, bool):
        yanked, reason = yanked_value, None
    elif isinstance(yanked_value, str):
        # PEP 691 wants a non-empty reason; an empty one still means "yanked".
        yanked, reason = True, yanked_value or None
    else:
        raise MalformedResponse(page_url, f"{filename}: yanked is not a boolean or string")

    size = entry.get("size")
    upload_time = entry.get("upload-time")
    return ReleaseFile(
        filename=filename,
        url=url,
        hashes=hashes,
        size=size if _is_int(size) and 0 <= size <= _MAX_SIZE else None,
        upload_time=(
            upload_time
            if isinstance(upload_time, str) and _UPLOAD_TIME.fullmatch(upload_time)
            else None
        ),
        requires_python=_optional_str(entry, "requires-python", page_url),
        yanked=yanked,
        yanked_reason=reason,
        core_metadata=_core_metadata(entry),
    )


def _status(
    document: Mapping[str, object], meta: Mapping[str, object], url: str
) -> tuple[str | None, str | None]:
    """PEP 792 status: top level as PyPI and uv spell it, or under meta as the spec's example."""
    value = document.get("project-status")
    if value is None:
        value = meta.get("project-status")
        if isinstance(value, str):
            reason = meta.get("project-status-reason")
            return value, reason if isinstance(reason, str) else None
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise MalformedResponse(url, "project-status is not an object")
    status, reason = value.get("status"), value.get("reason")
    if not isinstance(status, str):
        raise MalformedResponse(url, "project-status.status is not a string")
    return status, reason if isinstance(reason, str) else None


def _versions(document: Mapping[str, object], url: str) -> tuple[str, ...]:
    versions = document.get("versions", [])
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise MalformedResponse(url, "versions is not a list of strings")
    return tuple(dict.fromkeys(versions))


def parse_project_json(
    body: bytes, *, project: NormalizedName, page_url: str, header_serial: int | None
) -> ParsedProject:
    """Parse a PEP 691 project page (PyPI's, bandersnatch's or fullmirror's own).

    Relative file URLs are resolved against ``page_url``. The serial is ``header_serial``
    (``X-PyPI-Last-Serial``) when given, else ``meta._last-serial``, else 0. Hostile file entries
    are dropped into :attr:`ParsedProject.rejected`; a document that is not a project page at all
    raises :class:`MalformedResponse`.
    """
    document = _load_object(body, page_url)
    meta = load_meta(document, page_url)

    name = document.get("name")
    if name is not None and (not isinstance(name, str) or canonicalize_name(name) != project):
        raise MalformedResponse(page_url, f"the page is for {name!r:.80}, not {project}")

    entries = document.get("files")
    if not isinstance(entries, list):
        raise MalformedResponse(page_url, "files is missing or not a list")

    files: list[ReleaseFile] = []
    seen: set[str] = set()
    rejected: list[UnsafeUpstreamData] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise MalformedResponse(page_url, "a file entry is not an object")
        try:
            release = _release_file(entry, project, page_url)
        except UnsafeUpstreamData as exc:
            rejected.append(exc)
            continue
        # Two entries for one filename would race for one path on disk and one anchor.
        if release.filename in seen:
            rejected.append(_unsafe("filename", release.filename, "listed twice"))
            continue
        seen.add(release.filename)
        files.append(release)

    if header_serial is not None:
        serial = header_serial
    elif "_last-serial" in meta:
        serial = serial_value(meta["_last-serial"], page_url, "meta._last-serial")
    else:
        serial = 0

    status, status_reason = _status(document, meta, page_url)
    page = ProjectPage(
        name=project,
        serial=serial,
        files=tuple(files),
        versions=_versions(document, page_url),
        status=status,
        status_reason=status_reason,
    )
    return ParsedProject(page=page, rejected=tuple(rejected))


# -- XML-RPC --------------------------------------------------------------------------------


def parse_changelog(rows: object, *, url: str) -> tuple[ChangelogEntry, ...]:
    """Parse XML-RPC ``changelog_since_serial`` rows, in the order received.

    Rows are ``[name, version | None, timestamp, action, serial]``. Names are kept as sent
    (display names, not validated, so serial bookkeeping sees every row): pass them through
    :func:`normalize_project_name` before use.
    """
    if not isinstance(rows, list | tuple):
        raise MalformedResponse(url, "changelog_since_serial did not return an array")
    entries: list[ChangelogEntry] = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != 5:
            raise MalformedResponse(url, f"a changelog row is not a 5-item array: {row!r:.80}")
        name, version, timestamp, action, serial = row
        if (
            not isinstance(name, str)
            or not name
            or not (version is None or isinstance(version, str))
            or not _is_int(timestamp)
            or not isinstance(action, str)
            or not _is_int(serial)
            or serial < 0
        ):
            raise MalformedResponse(url, f"a changelog row has wrong types: {row!r:.80}")
        entries.append(ChangelogEntry(name, version, timestamp, action, serial))
    return tuple(entries)
