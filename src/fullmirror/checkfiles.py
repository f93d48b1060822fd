"""The file half of :mod:`fullmirror.check`: links answer, bytes hash right, metadata exists.

What a client does after reading a project page: it takes each link (the JSON one when the
page has JSON, as pip and uv do), GETs ``<url>.metadata`` when the page advertises it and
checks its sha256, then downloads the file and checks the hash the link carries. The network
is behind the small :class:`Fetcher` protocol, so this module holds no HTTP client of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol

from fullmirror.checkparse import (
    FRAGMENT_ALGORITHMS,
    Finding,
    HtmlPage,
    Reply,
    Unreachable,
    metadata_sha256,
    shown,
)
from fullmirror.models import Hashes, ProjectPage, hash_of

__all__ = ["Fetcher", "Link", "check_links", "links_of"]

#: Core metadata is a few kilobytes; a megabyte-sized one is already suspicious.
MAX_METADATA_BYTES = 16 << 20
#: Without a size on the page, stop hashing here rather than read an endless body.
MAX_UNSIZED_FILE = 16 << 30
#: Files whose bytes are hashed per sampled project when not checking every file.
HASHED_PER_PROJECT = 2
# Strongest first: the hash a check trusts most when a page lists several.
_PREFERRED = ("sha256", "sha512", "sha384", "sha224", "sha1", "md5")
_HEX_LENGTH = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")


class Fetcher(Protocol):
    def get(self, url: str, limit: int) -> Reply:
        """A whole body of at most ``limit`` bytes; raises :class:`Unreachable`."""

    def probe(self, url: str) -> int:
        """The status a HEAD (or a one-byte ranged GET) gets; raises :class:`Unreachable`."""

    def digest(self, url: str, algorithm: str, limit: int) -> tuple[int, str, int]:
        """``(status, hex digest, bytes read)`` of a streamed GET; raises :class:`Unreachable`."""


@dataclass(frozen=True, slots=True)
class Link:
    """A file as a client would fetch it: where, which hashes, and its advertised metadata."""

    filename: str
    url: str
    hashes: Hashes
    size: int | None
    metadata: bool
    metadata_sha256: str | None


def _anchor_findings(target: str, html: HtmlPage) -> list[Finding]:
    findings: list[Finding] = []
    for anchor in html.anchors:
        where = f"{target} {shown(anchor.filename or anchor.text)}"
        if not anchor.url.startswith(("http://", "https://")):
            findings.append(Finding("link", where, "fail", "the href does not resolve to http(s)"))
            continue
        if anchor.fragment is None:
            findings.append(
                Finding("link", where, "warn", "no #<hash> in the link: nothing to verify against")
            )
        else:
            algorithm, digest = anchor.fragment
            if algorithm not in FRAGMENT_ALGORITHMS:
                findings.append(Finding("link", where, "fail", f"unknown hash {shown(algorithm)}"))
            elif len(digest) != _HEX_LENGTH[algorithm] or not _HEX.fullmatch(digest):
                findings.append(Finding("link", where, "fail", f"malformed {algorithm} digest"))
        if (
            anchor.core_metadata is not None
            and anchor.dist_info_metadata is not None
            and anchor.core_metadata != anchor.dist_info_metadata
        ):
            findings.append(
                Finding(
                    "link",
                    where,
                    "fail",
                    "data-core-metadata and data-dist-info-metadata "
                    "differ (PEP 714 requires the same value)",
                )
            )
        if anchor.text != anchor.filename:
            findings.append(
                Finding(
                    "link",
                    where,
                    "warn",
                    f"anchor text {shown(anchor.text)!r} is not the file name the URL ends with",
                )
            )
    return findings


def links_of(
    target: str, page: ProjectPage | None, html: HtmlPage | None
) -> tuple[list[Link], list[Finding]]:
    """The links a client would follow (JSON first), plus findings about the HTML anchors."""
    findings = _anchor_findings(target, html) if html is not None else []
    if page is not None:
        links = [
            Link(
                filename=file.filename,
                url=file.url,
                hashes=file.hashes,
                size=file.size,
                metadata=file.core_metadata is not None,
                metadata_sha256=file.core_metadata.sha256 if file.core_metadata else None,
            )
            for file in page.files
        ]
        return links, findings
    links = []
    for anchor in html.anchors if html is not None else ():
        if not anchor.url.startswith(("http://", "https://")):
            continue
        hashes: Hashes = (anchor.fragment,) if anchor.fragment else ()
        advertised, digest = metadata_sha256(anchor.core_metadata or anchor.dist_info_metadata)
        links.append(Link(anchor.filename, anchor.url, hashes, None, advertised, digest))
    return links, findings


def _strongest(hashes: Hashes) -> tuple[str, str] | None:
    for algorithm in _PREFERRED:
        digest = hash_of(hashes, algorithm)
        if digest is not None:
            return algorithm, digest
    return None


def _check_bytes(target: str, link: Link, fetcher: Fetcher) -> Finding | None:
    where = f"{target} {link.filename}"
    chosen = _strongest(link.hashes)
    if chosen is None:
        return Finding("hash", where, "warn", "no hash the check can verify")
    algorithm, want = chosen
    limit = link.size + 1 if link.size is not None else MAX_UNSIZED_FILE
    status, got, read = fetcher.digest(link.url, algorithm, limit)
    if status != 200:
        return Finding("file", where, "fail", f"HTTP {status} for {link.url}")
    if link.size is not None and read != link.size:
        return Finding("hash", where, "fail", f"{read} bytes served, the page says {link.size}")
    if got != want:
        return Finding(
            "hash",
            where,
            "fail",
            f"{algorithm} of the served bytes is {got[:16]}..., "
            f"the link says {want[:16]}...; pip and uv refuse to install it",
        )
    return None


def _check_metadata(target: str, link: Link, fetcher: Fetcher) -> Finding | None:
    where = f"{target} {link.filename}.metadata"
    reply = fetcher.get(link.url + ".metadata", MAX_METADATA_BYTES)
    if reply.status != 200:
        return Finding(
            "metadata",
            where,
            "fail",
            f"advertised but HTTP {reply.status}; pip and uv fetch it before the file and stop",
        )
    if link.metadata_sha256 is not None:
        got = sha256(reply.body).hexdigest()
        if got != link.metadata_sha256:
            return Finding(
                "metadata",
                where,
                "fail",
                f"sha256 is {got[:16]}..., the page advertises {link.metadata_sha256[:16]}...",
            )
    return None


def check_links(
    target: str, links: list[Link], fetcher: Fetcher, *, every_file: bool
) -> list[Finding]:
    """Every link answers; the bytes of some (``every_file``: all) match their hash; every
    advertised ``.metadata`` exists and matches its sha256."""
    by_size = sorted(links, key=lambda link: (link.size is None, link.size or 0, link.filename))
    hashed = {link.url for link in (links if every_file else by_size[:HASHED_PER_PROJECT])}
    findings: list[Finding] = []
    verified = metadata = 0
    for link in links:
        where = f"{target} {link.filename}"
        try:
            if link.url in hashed:
                problem = _check_bytes(target, link, fetcher)
                verified += problem is None
            else:
                status = fetcher.probe(link.url)
                problem = (
                    None
                    if status in (200, 206)
                    else Finding("file", where, "fail", f"HTTP {status} for {link.url}")
                )
            if problem is not None:
                findings.append(problem)
            if link.metadata:
                problem = _check_metadata(target, link, fetcher)
                metadata += problem is None
                if problem is not None:
                    findings.append(problem)
        except Unreachable as exc:
            findings.append(Finding("file", where, "fail", str(exc)))
    if not any(f.severity == "fail" for f in findings):
        findings.append(
            Finding(
                "files",
                target,
                "ok",
                f"{len(links)} answer, {verified} hashed, {metadata} .metadata verified",
            )
        )
    return findings
