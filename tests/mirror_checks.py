"""Comparing a mirror directory with the upstream it mirrors, over the upstream's HTTP API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from packaging.utils import NormalizedName

from fullmirror.listings import parse_root_json
from fullmirror.models import ReleaseFile
from fullmirror.parse import parse_project_json

JSON = "application/vnd.pypi.simple.v1+json"


def _key(files: tuple[ReleaseFile, ...]) -> dict[str, tuple[object, ...]]:
    return {
        f.filename: (
            dict(f.hashes).get("sha256"),
            f.size,
            f.upload_time,
            f.requires_python,
            f.yanked,
            f.yanked_reason,
            f.core_metadata.sha256 if f.core_metadata else None,
        )
        for f in files
    }


def upstream_state(url: str) -> dict[NormalizedName, tuple[object, ...]]:
    """Every upstream project: (display name, versions, files keyed by filename)."""
    with httpx.Client(headers={"Accept": JSON}, follow_redirects=True) as client:
        listing = parse_root_json(client.get(f"{url}/simple/").content, url=url)
        state: dict[NormalizedName, tuple[object, ...]] = {}
        for entry in listing.projects:
            r = client.get(f"{url}/simple/{entry.name}/")
            page = parse_project_json(
                r.content, project=entry.name, page_url=str(r.url), header_serial=None
            ).page
            state[entry.name] = (sorted(page.versions), _key(page.files))
    return state


def mirror_state(web: Path) -> dict[NormalizedName, tuple[object, ...]]:
    root = parse_root_json((web / "simple/index.v1_json").read_bytes(), url="file:")
    state: dict[NormalizedName, tuple[object, ...]] = {}
    for entry in root.projects:
        page_path = web / "simple" / entry.name / "index.v1_json"
        page = parse_project_json(
            page_path.read_bytes(),
            project=entry.name,
            page_url=f"http://mirror/simple/{entry.name}/",
            header_serial=None,
        ).page
        state[entry.name] = (sorted(page.versions), _key(page.files))
    return state


def referenced_files(web: Path) -> set[str]:
    """Every path under web/ that some project page links (with .metadata siblings)."""
    refs: set[str] = set()
    for page in (web / "simple").glob("*/index.v1_json"):
        doc = json.loads(page.read_bytes())
        for f in doc["files"]:
            rel = f["url"].removeprefix("../../")
            refs.add(rel)
            if f.get("core-metadata"):
                refs.add(rel + ".metadata")
    return refs


def assert_tree_sound(web: Path) -> None:
    """No page links a missing or wrong file; no stray or temp file under packages/."""
    refs = referenced_files(web)
    for page in (web / "simple").glob("*/index.v1_json"):
        doc = json.loads(page.read_bytes())
        for f in doc["files"]:
            path = web / f["url"].removeprefix("../../")
            assert path.is_file(), f"{page} links missing {path}"
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["hashes"]["sha256"], path
            cm = f.get("core-metadata")
            if isinstance(cm, dict):
                meta = Path(str(path) + ".metadata").read_bytes()
                assert hashlib.sha256(meta).hexdigest() == cm["sha256"]
    on_disk = {str(p.relative_to(web)) for p in (web / "packages").rglob("*") if p.is_file()}
    assert on_disk == refs, (
        f"stray: {sorted(on_disk - refs)[:5]} missing: {sorted(refs - on_disk)[:5]}"
    )
    leftovers = [p for p in web.parent.rglob("*.part")]
    assert leftovers == []


def assert_mirror_equals_upstream(web: Path, url: str) -> None:
    want = upstream_state(url)
    got = mirror_state(web)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    assert_tree_sound(web)
