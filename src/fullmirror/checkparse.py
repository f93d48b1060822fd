"""Pure helpers of :mod:`fullmirror.check`: reading simple pages the way pip and uv read them.

No I/O here. The HTML side is parsed with the standard library's tolerant ``HTMLParser`` (a
broken page yields fewer anchors, never an exception); the JSON side reuses
:func:`fullmirror.parse.parse_project_json` and :func:`fullmirror.listings.parse_root_json`.
:func:`compare_pages` lists every way the two representations of one project disagree on
something that changes what a client installs; :func:`root_listing` and :func:`api_versions`
judge the root and PEP 629 parts.
The :class:`Finding` and :class:`Reply` values shared by the check modules live here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import NormalizedName

from fullmirror.errors import MalformedResponse
from fullmirror.listings import parse_root_json
from fullmirror.models import ProjectPage, hash_of
from fullmirror.parse import normalize_project_name

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
#: The only Content-Types uv accepts on a simple page (pip matches these as prefixes).
SIMPLE_TYPES = frozenset({SIMPLE_JSON, SIMPLE_HTML, TEXT_HTML})
#: Hash names PEP 503 allows in a link fragment: what both clients know how to verify.
FRAGMENT_ALGORITHMS = frozenset({"md5", "sha1", "sha224", "sha256", "sha384", "sha512"})

Severity = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One result: ``check`` names the rule, ``target`` the URL or project it was applied to."""

    check: str
    target: str
    severity: Severity
    detail: str

    @property
    def ok(self) -> bool:
        """False only for violations: warnings do not break pip or uv."""
        return self.severity != "fail"


def has_violations(findings: Iterable[Finding]) -> bool:
    return any(not finding.ok for finding in findings)


class Unreachable(Exception):
    """A fetch that produced no usable answer; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete, size-capped answer: final URL after redirects, status, headers, body."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Status codes of the redirects that led here, in order.
    redirects: tuple[int, ...]


# Longer than any reason or specifier a real index writes; keeps reports one line each.
_MAX_SHOWN = 120


@dataclass(frozen=True, slots=True)
class Accept:
    """One Accept header the check sends, and what an answer to it must look like."""

    label: str
    header: str | None
    #: The client asked for JSON first (or only): a mirror that has JSON must answer with it.
    prefers_json: bool


ACCEPTS = (
    Accept(
        "pip",
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
        "text/html; q=0.01",
        True,
    ),
    Accept(
        "uv",
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
        "text/html;q=0.01",
        True,
    ),
    Accept("latest+json", "application/vnd.pypi.simple.latest+json", True),
    Accept("*/*", "*/*", False),
    Accept("no Accept", None, False),
)


def shown(text: str) -> str:
    """``text`` cut to one short report line."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def media_type(content_type: str | None) -> str | None:
    """The lower-cased media type before any parameters, or None when there is no header."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Anchor:
    """One ``<a href>`` of a simple page, resolved against the page as a client resolves it."""

    text: str
    #: Absolute URL without fragment; empty when the href could not be resolved.
    url: str
    #: ``(algorithm, digest)`` from the ``#alg=hex`` fragment, or None without one.
    fragment: tuple[str, str] | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None
    core_metadata: str | None
    dist_info_metadata: str | None

    @property
    def filename(self) -> str:
        """The file name the URL names: what pip and uv take as the distribution's name."""
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1]) if self.url else ""


@dataclass(frozen=True, slots=True)
class HtmlPage:
    anchors: tuple[Anchor, ...]
    api_version: str | None


class _Collector(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = url
        self.api_version: str | None = None
        self.anchors: list[Anchor] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "base" and values.get("href"):
            # Both clients honour <base>; a page may move its links with it.
            self.base = _join(self.base, values["href"] or "") or self.base
        elif tag == "meta" and values.get("name") == "pypi:repository-version":
            self.api_version = values.get("content")
        elif tag == "a" and "href" in values:
            self._finish()
            self._open = values
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._finish()

    def _finish(self) -> None:
        values, self._open = self._open, None
        if values is None:
            return
        href = values.get("href") or ""
        joined = _join(self.base, href)
        url, fragment = urldefrag(joined) if joined else ("", "")
        algorithm, _, digest = fragment.partition("=")
        yanked = "data-yanked" in values
        reason = values.get("data-yanked") if yanked else None
        self.anchors.append(
            Anchor(
                text="".join(self._text).strip(),
                url=url,
                fragment=(algorithm.lower(), digest.lower()) if digest else None,
                requires_python=values.get("data-requires-python"),
                yanked=yanked,
                yanked_reason=reason or None,
                core_metadata=values.get("data-core-metadata"),
                dist_info_metadata=values.get("data-dist-info-metadata"),
            )
        )


def _join(base: str, href: str) -> str:
    try:
        return urljoin(base, href)
    except ValueError:  # a broken IPv6 literal and the like: the link is unusable
        return ""


def parse_html(body: bytes, url: str) -> HtmlPage:
    """Every anchor and the PEP 629 version of an HTML simple page; never raises on bad markup."""
    collector = _Collector(url)
    collector.feed(body.decode("utf-8", errors="replace"))
    collector.close()
    collector._finish()
    return HtmlPage(tuple(collector.anchors), collector.api_version)


def json_api_version(body: bytes) -> str | None:
    """``meta.api-version`` of a JSON page when it is a string, else None."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    meta = document.get("meta") if isinstance(document, dict) else None
    version = meta.get("api-version") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def api_version_problem(version: str | None) -> str | None:
    """Why a client would refuse this PEP 629 version, or None when 1.x is fine."""
    if version is None:
        return None
    major, dot, minor = version.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        return f"api-version {shown(version)!r} is not MAJOR.MINOR"
    if int(major) != 1:
        return f"api-version {version}: clients speaking 1.x must refuse the page"
    return None


def metadata_sha256(value: str | None) -> tuple[bool, str | None]:
    """``(advertised, sha256)`` from a ``data-core-metadata`` value (``sha256=<hex>``/``true``)."""
    if value is None or value.lower() == "false":
        return False, None
    algorithm, _, digest = value.partition("=")
    if algorithm.lower() == "sha256" and digest:
        return True, digest.lower()
    return True, None


def is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, RecursionError):
        return False


def api_versions(json_reply: Reply | None, html: HtmlPage | None, target: str) -> list[Finding]:
    """PEP 629/691 versions: required in JSON meta, expected in HTML, 1.x, and the same."""
    findings: list[Finding] = []
    json_version = json_api_version(json_reply.body) if json_reply else None
    if json_reply is not None and json_version is None:
        findings.append(Finding("api-version", target, "fail", "JSON meta.api-version missing"))
    if html is not None and html.api_version is None:
        findings.append(
            Finding(
                "api-version", target, "warn", 'no <meta name="pypi:repository-version"> in HTML'
            )
        )
    for version in (json_version, html.api_version if html else None):
        problem = api_version_problem(version)
        if problem:
            findings.append(Finding("api-version", target, "fail", problem))
    if json_version and html and html.api_version and json_version != html.api_version:
        findings.append(
            Finding(
                "api-version",
                target,
                "warn",
                f"JSON says {json_version}, HTML {shown(html.api_version)}",
            )
        )
    if not findings:
        findings.append(Finding("api-version", target, "ok", json_version or "HTML only"))
    return findings


def root_listing(
    json_reply: Reply | None, html: HtmlPage | None, base: str
) -> tuple[list[NormalizedName], list[Finding]]:
    """The normalized names the root lists, and findings on how JSON and HTML list them."""
    findings: list[Finding] = []
    json_names: set[NormalizedName] | None = None
    if json_reply is not None:
        try:
            listing = parse_root_json(json_reply.body, url=json_reply.url)
        except MalformedResponse as exc:
            findings.append(Finding("root", "simple/ [json]", "fail", shown(exc.reason)))
        else:
            json_names = {project.name for project in listing.projects}
            raw = json.loads(json_reply.body).get("projects", [])
            if len(raw) != len(listing.projects):
                findings.append(
                    Finding(
                        "root",
                        "simple/ [json]",
                        "fail",
                        f"{len(raw) - len(listing.projects)} entries are invalid "
                        "names or duplicates after normalization",
                    )
                )
    html_names: set[NormalizedName] | None = None
    if html is not None:
        html_names = set()
        for anchor in html.anchors:
            name = normalize_project_name(anchor.text)
            if name is None:
                findings.append(
                    Finding(
                        "root",
                        "simple/ [html]",
                        "fail",
                        f"not a project name: {shown(anchor.text)!r}",
                    )
                )
                continue
            html_names.add(name)
            if anchor.url != base + name + "/":
                findings.append(
                    Finding(
                        "root",
                        f"simple/ [html] {name}",
                        "warn",
                        f"links {shown(anchor.url)}, not the normalized page",
                    )
                )
    if json_names is not None and html_names is not None and json_names != html_names:
        diff = sorted(json_names ^ html_names)
        findings.append(
            Finding(
                "root",
                "simple/",
                "fail",
                f"JSON lists {len(json_names)}, HTML {len(html_names)}; "
                f"differ on {shown(', '.join(diff))}",
            )
        )
    names = json_names if json_names is not None else html_names or set()
    if not any(f.check == "root" and f.severity == "fail" for f in findings):
        findings.append(Finding("root", "simple/", "ok", f"{len(names)} projects listed"))
    return sorted(names), findings


def compare_pages(html: HtmlPage, page: ProjectPage) -> list[str]:
    """Every install-relevant difference between the HTML and the JSON page of one project."""
    problems: list[str] = []
    by_name = {anchor.filename: anchor for anchor in html.anchors}
    json_names = {file.filename for file in page.files}
    only_html = sorted(set(by_name) - json_names)
    only_json = sorted(json_names - set(by_name))
    if only_html:
        problems.append(f"only in HTML: {shown(', '.join(only_html))}")
    if only_json:
        problems.append(f"only in JSON: {shown(', '.join(only_json))}")
    for file in page.files:
        anchor = by_name.get(file.filename)
        if anchor is None:
            continue
        name = file.filename
        if anchor.url != file.url:
            problems.append(f"{name}: HTML links {anchor.url}, JSON {file.url}")
        if anchor.fragment is not None:
            algorithm, digest = anchor.fragment
            if hash_of(file.hashes, algorithm) not in (None, digest):
                problems.append(f"{name}: the {algorithm} in HTML differs from JSON")
        if anchor.yanked != file.yanked or anchor.yanked_reason != file.yanked_reason:
            problems.append(
                f"{name}: yanked HTML={_yank(anchor.yanked, anchor.yanked_reason)} "
                f"JSON={_yank(file.yanked, file.yanked_reason)}"
            )
        if (anchor.requires_python or None) != (file.requires_python or None):
            problems.append(
                f"{name}: requires-python HTML={shown(repr(anchor.requires_python))} "
                f"JSON={shown(repr(file.requires_python))}"
            )
        advertised, html_digest = metadata_sha256(anchor.core_metadata or anchor.dist_info_metadata)
        json_digest = file.core_metadata.sha256 if file.core_metadata else None
        if advertised != (file.core_metadata is not None) or html_digest != json_digest:
            problems.append(f"{name}: core-metadata HTML and JSON disagree")
    return problems


def _yank(yanked: bool, reason: str | None) -> str:
    if not yanked:
        return "no"
    return f"yes ({shown(reason)!r})" if reason else "yes"
