"""Byte-exact, deterministic distribution archives for the fake index.

Everything here is a pure function of a :class:`DistSpec`: the same spec gives the same bytes on
every run and every machine. That is why zip and tar members carry a fixed timestamp and owner,
the gzip header has no name and no mtime, and the optional payload comes from a seeded RNG.

The archives are real: pip and uv install the wheels, and the sdists carry a ``PKG-INFO`` and a
``pyproject.toml`` a build backend could use.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import re
import tarfile
import zipfile
from dataclasses import dataclass

__all__ = [
    "DistSpec",
    "build_distribution",
    "description",
    "dist_stem",
    "distribution_filename",
    "metadata_bytes",
    "provides_extras",
    "python_tag",
    "wheel_tags",
]

#: Every archive member pretends to have been written at 2020-01-01T00:00:00Z.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_TAR_MTIME = 1577836800
_PURE_TAG = "py3-none-any"
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_ONLY_EXTRA = re.compile(r"""^(.*?)\s*;\s*extra\s*==\s*["']([^"']+)["']\s*$""")


@dataclass(frozen=True, slots=True)
class DistSpec:
    """All a distribution's bytes depend on."""

    display_name: str
    version: str
    #: ``"sdist"`` or a wheel tag triple such as ``py3-none-any``.
    kind: str
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    summary: str = ""
    #: Size in bytes of an incompressible data member added to wheels (0: none).
    payload_size: int = 0
    #: Seeds the payload bytes; derived from the corpus seed and the filename.
    payload_seed: int = 0


def dist_stem(name: str) -> str:
    """The project name as distribution filenames spell it (PEP 427 / PEP 625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_tags(kind: str) -> list[str]:
    """Expand a possibly compressed tag triple (``cp311-cp311-a.b``) into single tags."""
    pythons, abis, platforms = kind.split("-")
    return [
        f"{py}-{abi}-{plat}"
        for py in pythons.split(".")
        for abi in abis.split(".")
        for plat in platforms.split(".")
    ]


def python_tag(kind: str) -> str:
    """PyPI's ``python_version``: ``source`` for sdists, else the wheel's python tag."""
    return "source" if kind == "sdist" else kind.split("-")[0]


def distribution_filename(name: str, version: str, kind: str) -> str:
    stem = f"{dist_stem(name)}-{version}"
    return f"{stem}.tar.gz" if kind == "sdist" else f"{stem}-{kind}.whl"


def provides_extras(requires_dist: tuple[str, ...]) -> list[str]:
    """The extras a requirement list mentions in ``extra == "..."`` markers, in first-seen order."""
    extras: list[str] = []
    for requirement in requires_dist:
        for extra in _EXTRA_MARKER.findall(requirement):
            if extra not in extras:
                extras.append(extra)
    return extras


def metadata_bytes(spec: DistSpec) -> bytes:
    """The core metadata file (``METADATA`` in wheels, ``PKG-INFO`` in sdists)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {spec.display_name}",
        f"Version: {spec.version}",
        f"Summary: {spec.summary}",
    ]
    if spec.requires_python:
        lines.append(f"Requires-Python: {spec.requires_python}")
    lines.extend(f"Provides-Extra: {extra}" for extra in provides_extras(spec.requires_dist))
    lines.extend(f"Requires-Dist: {requirement}" for requirement in spec.requires_dist)
    body = description(spec.display_name, spec.version)
    return ("\n".join(lines) + "\n\n" + body).encode()


def description(display_name: str, version: str) -> str:
    """The long description (the metadata body, and the JSON API's ``info.description``)."""
    return f"{display_name} {version} is a generated distribution of the fake index.\n"


def build_distribution(spec: DistSpec) -> bytes:
    return _build_sdist(spec) if spec.kind == "sdist" else _build_wheel(spec)


def _module_source(spec: DistSpec) -> bytes:
    return (
        f'"""{spec.display_name} {spec.version}, generated for the fake package index."""\n\n'
        f'__version__ = "{spec.version}"\n\n\n'
        "def hello() -> str:\n"
        f'    return "hello from {spec.display_name} {spec.version}"\n'
    ).encode()


def _payload(spec: DistSpec) -> bytes:
    return random.Random(spec.payload_seed).randbytes(spec.payload_size)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _build_wheel(spec: DistSpec) -> bytes:
    stem = dist_stem(spec.display_name)
    info_dir = f"{stem}-{spec.version}.dist-info"
    pure = spec.kind.split("-")[1:] == ["none", "any"]
    wheel_text = "Wheel-Version: 1.0\nGenerator: fullmirror-fakepypi\n"
    wheel_text += f"Root-Is-Purelib: {'true' if pure else 'false'}\n"
    wheel_text += "".join(f"Tag: {tag}\n" for tag in wheel_tags(spec.kind))
    members: list[tuple[str, bytes, int]] = [
        (f"{stem}/__init__.py", _module_source(spec), zipfile.ZIP_DEFLATED),
    ]
    if spec.payload_size > 0:
        # Random bytes do not compress: storing them keeps builds fast and sizes predictable.
        members.append((f"{stem}/_payload.bin", _payload(spec), zipfile.ZIP_STORED))
    members.append((f"{info_dir}/METADATA", metadata_bytes(spec), zipfile.ZIP_DEFLATED))
    members.append((f"{info_dir}/WHEEL", wheel_text.encode(), zipfile.ZIP_DEFLATED))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data, _ in members)
    record += f"{info_dir}/RECORD,,\n"
    members.append((f"{info_dir}/RECORD", record.encode(), zipfile.ZIP_DEFLATED))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, compression in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = compression
            info.create_system = 3  # unix, whatever the host, so the bytes never vary
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _toml_string(value: str) -> str:
    # A JSON string literal is also a valid TOML basic string.
    return json.dumps(value)


def _pyproject(spec: DistSpec) -> bytes:
    dependencies: list[str] = []
    optional: dict[str, list[str]] = {}
    for requirement in spec.requires_dist:
        match = _ONLY_EXTRA.match(requirement)
        if match:
            optional.setdefault(match.group(2), []).append(match.group(1))
        else:
            dependencies.append(requirement)
    lines = [
        "[build-system]",
        'requires = ["setuptools>=61"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {_toml_string(spec.display_name)}",
        f"version = {_toml_string(spec.version)}",
        f"description = {_toml_string(spec.summary)}",
    ]
    if spec.requires_python:
        lines.append(f"requires-python = {_toml_string(spec.requires_python)}")
    lines.append(f"dependencies = [{', '.join(_toml_string(d) for d in dependencies)}]")
    if optional:
        lines += ["", "[project.optional-dependencies]"]
        for extra, requirements in optional.items():
            lines.append(f"{extra} = [{', '.join(_toml_string(r) for r in requirements)}]")
    return ("\n".join(lines) + "\n").encode()


def _build_sdist(spec: DistSpec) -> bytes:
    stem = dist_stem(spec.display_name)
    top = f"{stem}-{spec.version}"
    members = [
        (f"{top}/PKG-INFO", metadata_bytes(spec)),
        (f"{top}/pyproject.toml", _pyproject(spec)),
        (f"{top}/{stem}/__init__.py", _module_source(spec)),
    ]
    buffer = io.BytesIO()
    # No filename and mtime 0 in the gzip header: otherwise every build would differ.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, data in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = _TAR_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
