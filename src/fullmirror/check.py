"""Conformance check of a served mirror, as pip and uv see it over HTTP.

:func:`check_index` asks a running index what the clients ask (their real Accept headers, the
slash-less and unnormalized URLs humans type, every linked file and ``.metadata`` sibling of a
sample of projects) and returns :class:`Finding` values; :func:`format_findings` makes them a
table. Nothing here prints or exits: the CLI decides what a violation costs.

The server is not trusted: every body is read with a size cap, every fetch failure and every
malformed page becomes a finding, and no link is followed unless it is http(s). All requests
go through the one ``httpx.Client`` the caller passes in, so its timeouts and proxy apply.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from packaging.utils import NormalizedName

from fullmirror.checkfiles import check_links, links_of
from fullmirror.checkparse import (
    ACCEPTS,
    SIMPLE_JSON,
    SIMPLE_TYPES,
    TEXT_HTML,
    Finding,
    Reply,
    Severity,
    Unreachable,
    api_versions,
    compare_pages,
    has_violations,
    is_json_object,
    media_type,
    parse_html,
    root_listing,
    shown,
)
from fullmirror.errors import MalformedResponse
from fullmirror.parse import parse_project_json

__all__ = ["Finding", "Severity", "check_index", "format_findings", "has_violations"]

#: The whole PyPI root listing is ~40 MB; a project page beyond 64 MiB is an attack.
MAX_PAGE_BYTES = 64 << 20
MAX_ROOT_BYTES = 256 << 20
_FETCH_ERRORS = (httpx.HTTPError, httpx.InvalidURL, ValueError)


def _request(
    client: httpx.Client, url: str, accept: str | None, extra: dict[str, str] | None = None
) -> httpx.Request:
    request = client.build_request("GET", url, headers=extra)
    # httpx adds "Accept: */*" on its own; pip and uv send theirs, a bare client none.
    if accept is None:
        del request.headers["Accept"]
    else:
        request.headers["Accept"] = accept
    return request


def fetch(
    client: httpx.Client,
    url: str,
    *,
    accept: str | None = "*/*",
    follow: bool = True,
    limit: int = MAX_PAGE_BYTES,
) -> Reply:
    """GET ``url`` with exactly the Accept given (None: no Accept header at all), body capped."""
    try:
        response = client.send(_request(client, url, accept), stream=True, follow_redirects=follow)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise Unreachable(f"{url}: Content-Length {declared} is over {limit} bytes")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > limit:
                    raise Unreachable(f"{url}: body larger than {limit} bytes; not read")
                chunks.append(chunk)
        finally:
            response.close()
    except _FETCH_ERRORS as exc:
        raise Unreachable(f"{url}: {type(exc).__name__}: {shown(str(exc))}") from None
    redirects = tuple(r.status_code for r in response.history)
    return Reply(
        str(response.url), response.status_code, response.headers, b"".join(chunks), redirects
    )


class _Files:
    """The :class:`fullmirror.checkfiles.Fetcher` over the caller's client."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def get(self, url: str, limit: int) -> Reply:
        return fetch(self.client, url, limit=limit)

    def probe(self, url: str) -> int:
        try:
            status: int = self.client.head(url, follow_redirects=True).status_code
            if status not in (405, 501):
                return status
            # No HEAD support: ask for one byte, as uv does for ranged metadata reads.
            request = _request(self.client, url, "*/*", {"Range": "bytes=0-0"})
            ranged = self.client.send(request, stream=True, follow_redirects=True)
            ranged.close()
            return ranged.status_code
        except _FETCH_ERRORS as exc:
            raise Unreachable(f"{url}: {type(exc).__name__}: {shown(str(exc))}") from None

    def digest(self, url: str, algorithm: str, limit: int) -> tuple[int, str, int]:
        hasher = hashlib.new(algorithm)
        read = 0
        # Identity, as pip asks: the hash is over the file, not over a transfer encoding of it.
        request = _request(self.client, url, "*/*", {"Accept-Encoding": "identity"})
        try:
            response = self.client.send(request, stream=True, follow_redirects=True)
            try:
                if response.status_code != 200:
                    return response.status_code, "", 0
                for chunk in response.iter_bytes():
                    read += len(chunk)
                    hasher.update(chunk)
                    if read >= limit:
                        break
            finally:
                response.close()
        except _FETCH_ERRORS as exc:
            raise Unreachable(f"{url}: {type(exc).__name__}: {shown(str(exc))}") from None
        return 200, hasher.hexdigest(), read


@dataclass(frozen=True, slots=True)
class _Pages:
    json: Reply | None
    html: Reply | None


def _negotiate(
    client: httpx.Client, url: str, target: str, limit: int
) -> tuple[_Pages, list[Finding]]:
    """Ask ``url`` with each client's Accept; keep one JSON and one HTML answer for later."""
    findings: list[Finding] = []
    got: dict[str, str] = {}
    json_reply: Reply | None = None
    html_reply: Reply | None = None
    missing_vary = False

    def fail(label: str, detail: str) -> None:
        findings.append(Finding("negotiation", f"{target} [{label}]", "fail", detail))

    for accept in ACCEPTS:
        try:
            reply = fetch(client, url, accept=accept.header, limit=limit)
        except Unreachable as exc:
            fail(accept.label, str(exc))
            continue
        if reply.status != 200:
            fail(accept.label, f"HTTP {reply.status}")
            continue
        kind = media_type(reply.headers.get("content-type"))
        if kind not in SIMPLE_TYPES:
            fail(accept.label, f"Content-Type {shown(str(kind))!r}: pip skips it, uv rejects it")
            continue
        got[accept.label] = "json" if kind == SIMPLE_JSON else "html"
        if "accept" not in reply.headers.get("vary", "").lower():
            missing_vary = True
        if kind == SIMPLE_JSON:
            same = json_reply is not None and json_reply.body == reply.body
            if not same and not is_json_object(reply.body):
                fail(accept.label, f"served as {kind} but the body is not a JSON object")
                continue
            json_reply = json_reply or reply
        elif html_reply is None or accept.header is None:
            html_reply = reply
    if "json" in got.values():
        for accept in ACCEPTS:
            if accept.prefers_json and got.get(accept.label) == "html":
                fail(accept.label, "HTML although JSON was asked first and the page has JSON")
    elif got:
        findings.append(
            Finding(
                "negotiation",
                target,
                "warn",
                "no JSON served: uv and pip fall back to "
                "HTML, which carries no size or upload-time",
            )
        )
    if got.get("no Accept") == "json":
        fail("no Accept", "JSON without an Accept header; PEP 691 clients default to HTML")
    if missing_vary and len(set(got.values())) > 1:
        findings.append(
            Finding(
                "negotiation",
                target,
                "fail",
                "the type depends on Accept but Vary: Accept "
                "is missing; a shared cache can hand JSON to an HTML-only client",
            )
        )
    if got and not any(f.severity == "fail" for f in findings):
        summary = ", ".join(f"{label}: {kind}" for label, kind in got.items())
        findings.append(Finding("negotiation", target, "ok", summary))
    return _Pages(json_reply, html_reply), findings


def _check_root(client: httpx.Client, base: str) -> tuple[list[NormalizedName], list[Finding]]:
    pages, findings = _negotiate(client, base, "simple/", MAX_ROOT_BYTES)
    html = parse_html(pages.html.body, pages.html.url) if pages.html else None
    findings += api_versions(pages.json, html, "simple/")
    names, listing_findings = root_listing(pages.json, html, base)
    findings += listing_findings
    return names, findings


def _check_redirects(client: httpx.Client, base: str, name: NormalizedName | None) -> list[Finding]:
    findings: list[Finding] = []
    targets = [(base.rstrip("/"), base)]
    if name is not None:
        targets.append((base + name, base + name + "/"))
    for asked, want in targets:
        try:
            reply = fetch(client, asked, accept=TEXT_HTML)
        except Unreachable as exc:
            findings.append(Finding("redirect", asked, "fail", str(exc)))
            continue
        if reply.status != 200:
            findings.append(
                Finding(
                    "redirect", asked, "fail", f"HTTP {reply.status} without the trailing slash"
                )
            )
        elif reply.redirects and reply.url != want:
            findings.append(Finding("redirect", asked, "fail", f"redirected to {reply.url}"))
        else:
            how = f"{reply.redirects[0]} to {want}" if reply.redirects else "served directly"
            findings.append(Finding("redirect", asked, "ok", how))
    if name is not None:
        findings.append(_check_unnormalized(client, base, name))
    return findings


def _check_unnormalized(client: httpx.Client, base: str, name: NormalizedName) -> Finding:
    spelled = name.replace("-", "_").title()
    if spelled == name:
        spelled = name.upper()
    asked = base + spelled + "/"
    if spelled == name:
        return Finding("redirect", asked, "ok", "no other spelling of this name to try")
    try:
        reply = fetch(client, asked, accept=TEXT_HTML)
        normal = fetch(client, base + name + "/", accept=TEXT_HTML)
    except Unreachable as exc:
        return Finding("redirect", asked, "warn", str(exc))
    if reply.status == 200 and (reply.url == normal.url or reply.body == normal.body):
        return Finding("redirect", asked, "ok", "ends at the normalized page")
    return Finding(
        "redirect",
        asked,
        "warn",
        f"HTTP {reply.status}; pip and uv normalize names "
        "themselves, people and older tools do not",
    )


def _check_project(
    client: httpx.Client, base: str, name: NormalizedName, *, every_file: bool
) -> list[Finding]:
    target = f"simple/{name}/"
    pages, findings = _negotiate(client, base + name + "/", target, MAX_PAGE_BYTES)
    html = parse_html(pages.html.body, pages.html.url) if pages.html else None
    findings += api_versions(pages.json, html, target)
    json_page = None
    if pages.json is not None:
        try:
            parsed = parse_project_json(
                pages.json.body, project=name, page_url=pages.json.url, header_serial=None
            )
        except MalformedResponse as exc:
            findings.append(Finding("page", target + " [json]", "fail", shown(exc.reason)))
        else:
            json_page = parsed.page
            findings += [
                Finding("page", target + " [json]", "fail", shown(str(rejected)))
                for rejected in parsed.rejected
            ]
    if html is not None and json_page is not None:
        problems = compare_pages(html, json_page)
        findings += [Finding("html-vs-json", target, "fail", p) for p in problems]
        if not problems:
            findings.append(
                Finding("html-vs-json", target, "ok", f"{len(json_page.files)} files agree")
            )
    links, link_findings = links_of(target, json_page, html)
    findings += link_findings
    findings += check_links(target, links, _Files(client), every_file=every_file)
    return findings


def check_index(
    client: httpx.Client,
    url: str,
    *,
    every_file: bool = False,
    sample: int = 20,
    seed: int | None = None,
    workers: int = 4,
) -> list[Finding]:
    """Check the index at ``url`` (``…/simple/``, slash optional) as pip and uv would use it.

    ``sample`` projects (all of them with ``every_file``) get their pages, links, ``.metadata``
    files and some file hashes checked; with ``every_file`` every file's bytes are hashed.
    ``seed`` makes the sample repeatable. Never raises for anything the server does.
    """
    base = url if url.endswith("/") else url + "/"
    if urlsplit(base).scheme not in ("http", "https"):
        return [Finding("index", url, "fail", "not an http(s) URL")]
    names, findings = _check_root(client, base)
    chosen = names if every_file else random.Random(seed).sample(names, min(sample, len(names)))
    findings += _check_redirects(client, base, chosen[0] if chosen else None)

    def one(name: NormalizedName) -> list[Finding]:
        try:
            return _check_project(client, base, name, every_file=every_file)
        except Exception as exc:  # one odd page must not hide the other projects' results
            return [
                Finding(
                    "page",
                    f"simple/{name}/",
                    "fail",
                    f"check aborted: {type(exc).__name__}: {shown(str(exc))}",
                )
            ]

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chosen) or 1))) as pool:
        for result in pool.map(one, sorted(chosen)):
            findings += result
    return findings


_ORDER: dict[str, int] = {"fail": 0, "warn": 1, "ok": 2}


def format_findings(findings: Iterable[Finding], *, verbose: bool = False) -> str:
    """A table (result, check, target, detail), problems first; passes folded unless verbose."""
    rows: list[Finding] = []
    passed: dict[str, int] = {}
    items = list(findings)
    for finding in items:
        if finding.severity == "ok" and not verbose:
            passed[finding.check] = passed.get(finding.check, 0) + 1
        else:
            rows.append(finding)
    rows.sort(key=lambda f: (_ORDER[f.severity], f.check, f.target))
    table = [("result", "check", "target", "detail")]
    table += [(f.severity, f.check, f.target, f.detail) for f in rows]
    table += [("ok", check, f"{count} target(s)", "") for check, count in sorted(passed.items())]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in table
    ]
    counts = {s: sum(1 for f in items if f.severity == s) for s in _ORDER}
    lines.append(
        f"{counts['fail']} violation(s), {counts['warn']} warning(s), {counts['ok']} passed"
    )
    return "\n".join(line.rstrip() for line in lines) + "\n"
