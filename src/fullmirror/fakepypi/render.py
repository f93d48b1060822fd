"""Pages in PyPI's exact shapes: the simple API (PEP 503/691/700 JSON and HTML) and the JSON API.

Pure functions of a snapshot of the index: they take the base URL to make file URLs absolute, as
PyPI's are, and the serial to announce, which the stale fault sets to an older one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence

from packaging.version import InvalidVersion, Version

from fullmirror.fakepypi.build import description, provides_extras
from fullmirror.fakepypi.clock import fake_iso, fake_iso_seconds
from fullmirror.fakepypi.index import FileRecord, Index, ProjectView, ReleaseView, owner_of

__all__ = [
    "API_VERSION",
    "PageRenderer",
    "json_api",
    "project_html",
    "project_json",
    "root_html",
    "root_json",
]

#: The simple API version PyPI announces (PEP 792's project status is 1.4).
API_VERSION = "1.4"

_Entries = Sequence[tuple[str, str, int]]
#: (view, index, base URL, serial to announce) -> body, or None when the page does not exist.
PageRenderer = Callable[[ProjectView, Index, str, int], bytes | None]


def _dump(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def root_json(serial: int, entries: _Entries) -> bytes:
    projects = [{"name": display, "_last-serial": last} for display, _, last in entries]
    return _dump(
        {"meta": {"api-version": API_VERSION, "_last-serial": serial}, "projects": projects}
    )


def root_html(serial: int, entries: _Entries) -> bytes:
    links = "".join(
        f'    <a href="/simple/{name}/">{html.escape(display)}</a>\n'
        for display, name, _ in entries
    )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{links}  </body>\n</html>\n<!--SERIAL {serial}-->\n"
    ).encode()


def _yanked(release: ReleaseView) -> bool | str:
    if not release.yanked:
        return False
    return release.yanked_reason or True


def _files(view: ProjectView) -> list[tuple[ReleaseView, FileRecord]]:
    # Releases are sorted by version and their files by name: PyPI's (version, filename) order.
    return [(release, record) for release in view.releases for record in release.files]


def project_json(view: ProjectView, index: Index, base_url: str, serial: int) -> bytes:
    files: list[dict[str, object]] = []
    for release, record in _files(view):
        info = index.file_info(record)
        metadata: dict[str, str] | bool = (
            {"sha256": info.metadata_sha256} if info.metadata_sha256 else False
        )
        files.append(
            {
                "filename": record.filename,
                "url": f"{base_url}/{info.path}",
                "hashes": {"sha256": info.sha256},
                "requires-python": release.requires_python,
                "size": info.size,
                "upload-time": fake_iso(record.serial),
                "yanked": _yanked(release),
                "core-metadata": metadata,
                "data-dist-info-metadata": metadata,
                "provenance": None,
            }
        )
    extra, fields = index.injected(view.name)
    document: dict[str, object] = {
        "meta": {"api-version": API_VERSION, "_last-serial": serial},
        "name": view.name,
        "project-status": {"status": "active"},
        "versions": [release.version for release in view.releases],
        "files": files + extra,
    }
    document.update(fields)
    return _dump(document)


def _extra_anchor(entry: dict[str, object]) -> str:
    """An injected entry as an HTML link, attributes escaped as PyPI would."""
    href = str(entry.get("url", ""))
    hashes = entry.get("hashes")
    if isinstance(hashes, dict) and "sha256" in hashes:
        href += f"#sha256={hashes['sha256']}"
    attributes = ""
    if isinstance(entry.get("requires-python"), str):
        attributes += f' data-requires-python="{html.escape(str(entry["requires-python"]))}"'
    yanked = entry.get("yanked")
    if yanked:
        reason = yanked if isinstance(yanked, str) else ""
        attributes += f' data-yanked="{html.escape(reason)}"'
    text = html.escape(str(entry.get("filename", "")))
    return f'    <a href="{html.escape(href)}"{attributes}>{text}</a><br />\n'


def project_html(view: ProjectView, index: Index, base_url: str, serial: int) -> bytes:
    anchors: list[str] = []
    for release, record in _files(view):
        info = index.file_info(record)
        attributes = ""
        if release.requires_python:
            attributes += f' data-requires-python="{html.escape(release.requires_python)}"'
        if release.yanked:
            attributes += f' data-yanked="{html.escape(release.yanked_reason or "")}"'
        if info.metadata_sha256:
            value = f"sha256={info.metadata_sha256}"
            attributes += f' data-dist-info-metadata="{value}" data-core-metadata="{value}"'
        href = html.escape(f"{base_url}/{info.path}#sha256={info.sha256}")
        anchors.append(
            f'    <a href="{href}"{attributes}>{html.escape(record.filename)}</a><br />\n'
        )
    anchors.extend(_extra_anchor(entry) for entry in index.injected(view.name)[0])
    title = f"Links for {html.escape(view.name)}"
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        '    <meta name="pypi:project-status" content="active">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
        f"{''.join(anchors)}  </body>\n</html>\n<!--SERIAL {serial}-->\n"
    ).encode()


def _shown_release(view: ProjectView) -> ReleaseView:
    # PyPI shows the highest non-yanked final release, falling back to pre-releases, then yanked.
    return max(
        view.releases,
        key=lambda r: (not r.yanked, not Version(r.version).is_prerelease, Version(r.version)),
    )


def _api_file(index: Index, base_url: str, release: ReleaseView, record: FileRecord) -> object:
    info = index.file_info(record)
    return {
        "comment_text": "",
        "core-metadata": {"sha256": info.metadata_sha256} if info.metadata_sha256 else False,
        "digests": {"blake2b_256": info.blake2b_256, "md5": info.md5, "sha256": info.sha256},
        "downloads": -1,
        "filename": record.filename,
        "has_sig": False,
        "md5_digest": info.md5,
        "packagetype": record.packagetype,
        "python_version": record.python_version,
        "requires_python": release.requires_python,
        "size": info.size,
        "upload_time": fake_iso_seconds(record.serial),
        "upload_time_iso_8601": fake_iso(record.serial),
        "url": f"{base_url}/{info.path}",
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason if release.yanked else None,
    }


def _info(view: ProjectView, release: ReleaseView, base_url: str) -> dict[str, object]:
    project_url = f"{base_url}/project/{view.name}/"
    extras = provides_extras(release.requires_dist)
    return {
        "author": "",
        "author_email": "",
        "bugtrack_url": None,
        "classifiers": [],
        "description": description(view.display_name, release.version),
        "description_content_type": None,
        "docs_url": None,
        "download_url": "",
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "dynamic": None,
        "home_page": "",
        "keywords": "",
        "license": "",
        "license_expression": None,
        "license_files": None,
        "maintainer": "",
        "maintainer_email": "",
        "name": view.display_name,
        "package_url": project_url,
        "platform": None,
        "project_url": project_url,
        "project_urls": None,
        "provides_extra": extras or None,
        "release_url": f"{project_url}{release.version}/",
        "requires_dist": list(release.requires_dist) or None,
        "requires_python": release.requires_python,
        "summary": release.summary,
        "version": release.version,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason if release.yanked else None,
    }


def json_api(
    view: ProjectView, index: Index, base_url: str, serial: int, version: str | None = None
) -> bytes | None:
    """``/pypi/<name>/json`` (or ``/pypi/<name>/<version>/json``); None means 404."""
    if not view.releases:
        return None
    if version is None:
        shown = _shown_release(view)
    else:
        try:
            wanted = Version(version)
        except InvalidVersion:
            return None
        matches = [r for r in view.releases if Version(r.version) == wanted]
        if not matches:
            return None
        shown = matches[0]
    data: dict[str, object] = {"info": _info(view, shown, base_url), "last_serial": serial}
    if version is None:
        data["releases"] = {
            r.version: [_api_file(index, base_url, r, f) for f in r.files] for r in view.releases
        }
    data["urls"] = [_api_file(index, base_url, shown, f) for f in shown.files]
    data["vulnerabilities"] = []
    data["ownership"] = {
        "roles": [{"role": "Owner", "user": owner_of(view.name)}],
        "organization": None,
    }
    return _dump(data)
