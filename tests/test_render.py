"""Pages the mirror writes: exact shapes, escaping, relative links, determinism."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

import pytest
from packaging.utils import NormalizedName

from fullmirror import render as render_module
from fullmirror.models import MirroredFile, MirroredPage, MirroredProject
from fullmirror.render import API_VERSION, project_html, project_json, root_html, root_json

SHA = hashlib.sha256(b"wheel").hexdigest()
B2 = hashlib.blake2b(b"wheel", digest_size=32).hexdigest()
META_SHA = hashlib.sha256(b"METADATA").hexdigest()
WHEEL = "demo-1.0-py3-none-any.whl"
LOCATION = f"packages/{B2[:2]}/{B2[2:4]}/{B2[4:]}/{WHEEL}"


def _file(**overrides: Any) -> MirroredFile:
    fields: dict[str, Any] = {
        "filename": WHEEL,
        "location": LOCATION,
        "hashes": (("blake2b_256", B2), ("sha256", SHA)),
        "size": 10,
    }
    fields.update(overrides)
    return MirroredFile(**fields)


def _page(*files: MirroredFile, **overrides: Any) -> MirroredPage:
    fields: dict[str, Any] = {
        "name": NormalizedName("demo"),
        "display_name": "Demo",
        "serial": 42,
        "files": files or (_file(),),
    }
    fields.update(overrides)
    return MirroredPage(**fields)


def _anchors(html: str) -> list[str]:
    return re.findall(r"<a [^>]*>[^<]*</a>", html)


def _json_files(page: MirroredPage) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = json.loads(project_json(page))["files"]
    return files


# -- project HTML ---------------------------------------------------------------------------


def test_project_html_exact() -> None:
    page = _page(
        _file(requires_python=">=3.8", metadata_hashes=(("sha256", META_SHA),)),
        _file(
            filename="demo-0.9.tar.gz",
            location="packages/aa/bb/cc/demo-0.9.tar.gz",
            hashes=(("sha256", SHA),),
            yanked=True,
        ),
        status="archived",
    )
    assert project_html(page) == (
        "<!DOCTYPE html>\n"
        "<html>\n"
        "  <head>\n"
        '    <meta name="pypi:repository-version" content="1.4">\n'
        '    <meta name="pypi:project-status" content="archived">\n'
        "    <title>Links for Demo</title>\n"
        "  </head>\n"
        "  <body>\n"
        "    <h1>Links for Demo</h1>\n"
        f'    <a href="../../packages/aa/bb/cc/demo-0.9.tar.gz#sha256={SHA}" data-yanked="">'
        "demo-0.9.tar.gz</a><br />\n"
        f'    <a href="../../{LOCATION}#sha256={SHA}" data-requires-python="&gt;=3.8" '
        f'data-core-metadata="sha256={META_SHA}" data-dist-info-metadata="sha256={META_SHA}">'
        f"{WHEEL}</a><br />\n"
        "  </body>\n"
        "</html>\n"
        "<!--SERIAL 42-->\n"
    )


def test_status_reason_meta() -> None:
    html = project_html(_page(status="deprecated", status_reason='use "other" <now>'))
    assert (
        '<meta name="pypi:project-status-reason" content="use &quot;other&quot; &lt;now&gt;">'
        in html
    )


def test_no_status_no_meta() -> None:
    assert "project-status" not in project_html(_page())


HOSTILE = '<script>alert("x")</script>'


def test_html_escapes_everything_from_upstream() -> None:
    page = _page(
        _file(
            filename="demo-1.0<b>&.tar.gz",
            location="packages/aa/bb/cc/demo-1.0<b>&.tar.gz",
            requires_python='<3.12"><img src=x onerror=alert(1)>',
            yanked=True,
            yanked_reason=HOSTILE,
        ),
        _file(location='https://up.test/p/"><script>/' + WHEEL),
        display_name="Tom & Jerry <i>",
        status=HOSTILE,
        status_reason=HOSTILE,
    )
    html = project_html(page)
    for raw in ("<script>", "<img", '"><', "<b>", "<i>", "& "):
        assert raw not in html
    assert "Links for Tom &amp; Jerry &lt;i&gt;" in html
    assert 'data-yanked="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in html
    assert 'data-requires-python="&lt;3.12&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in html
    assert ">demo-1.0&lt;b&gt;&amp;.tar.gz</a>" in html
    # Markup in an upstream URL is percent-encoded before it is escaped.
    assert 'href="https://up.test/p/%22%3E%3Cscript%3E/' in html


def test_html_is_ascii() -> None:
    html = project_html(
        _page(
            _file(filename="demo-1.0-ünï.tar.gz", location="packages/a/b/c/demo-1.0-ünï.tar.gz"),
            display_name="Démo",
        )
    )
    assert html.isascii()
    assert "Links for D&#233;mo" in html
    assert ">demo-1.0-&#252;n&#239;.tar.gz</a>" in html
    assert 'href="../../packages/a/b/c/demo-1.0-%C3%BCn%C3%AF.tar.gz#' in html


@pytest.mark.parametrize(
    ("location", "href"),
    [
        (LOCATION, f"../../{LOCATION}"),
        ("packages/a/b/c/demo-1!1.0+local.tar.gz", "../../packages/a/b/c/demo-1!1.0+local.tar.gz"),
        ("packages/a/b/c/demo 1%.tar.gz", "../../packages/a/b/c/demo%201%25.tar.gz"),
        ("packages/a/b/c/demo:1.tar.gz", "../../packages/a/b/c/demo%3A1.tar.gz"),
        ("packages/a/b/c/demo#1.tar.gz", "../../packages/a/b/c/demo%231.tar.gz"),
        ("https://up.test/p/demo-1.0.tar.gz", "https://up.test/p/demo-1.0.tar.gz"),
        (
            "https://up.test/p/demo-1.0%2B1.tar.gz?a=1&b=2",
            "https://up.test/p/demo-1.0%2B1.tar.gz?a=1&b=2",
        ),
        ("https://up.test/p/demo-1.0.tar.gz#md5=00", "https://up.test/p/demo-1.0.tar.gz"),
        ("https://up.test/p/d é.tar.gz", "https://up.test/p/d%20%C3%A9.tar.gz"),
        ("http://up.test:8080/p/x.zip", "http://up.test:8080/p/x.zip"),
    ],
)
def test_hrefs(location: str, href: str) -> None:
    page = _page(_file(location=location))
    (anchor,) = _anchors(project_html(page))
    assert anchor.startswith(f'<a href="{href.replace("&", "&amp;")}#sha256={SHA}"')
    assert _json_files(page)[0]["url"] == href


@pytest.mark.parametrize(
    ("digest_name", "hashes", "fragment"),
    [
        ("sha256", (("blake2b_256", B2), ("sha256", SHA)), f"#sha256={SHA}"),
        ("blake2b_256", (("blake2b_256", B2), ("sha256", SHA)), f"#blake2b_256={B2}"),
        ("sha512", (("blake2b_256", B2), ("sha256", SHA)), f"#sha256={SHA}"),
        ("sha256", (("blake2b_256", B2),), f"#blake2b_256={B2}"),
        ("sha256", (), ""),
    ],
)
def test_fragment(digest_name: str, hashes: tuple[tuple[str, str], ...], fragment: str) -> None:
    html = project_html(_page(_file(hashes=hashes)), digest_name=digest_name)
    assert f'href="../../{LOCATION}{fragment}"' in html


@pytest.mark.parametrize(
    ("yanked", "reason", "attribute"),
    [
        (False, None, None),
        (False, "ignored", None),
        (True, None, 'data-yanked=""'),
        (True, "", 'data-yanked=""'),
        (True, "broken build", 'data-yanked="broken build"'),
    ],
)
def test_data_yanked(yanked: bool, reason: str | None, attribute: str | None) -> None:
    (anchor,) = _anchors(project_html(_page(_file(yanked=yanked, yanked_reason=reason))))
    if attribute is None:
        assert "data-yanked" not in anchor
    else:
        assert attribute in anchor


@pytest.mark.parametrize(
    ("metadata_hashes", "value"),
    [
        (None, None),
        ((), "true"),
        ((("sha256", META_SHA),), f"sha256={META_SHA}"),
        ((("blake2b_256", B2), ("sha256", META_SHA)), f"sha256={META_SHA}"),
        ((("blake2b_256", B2),), "true"),
    ],
)
def test_data_core_metadata(
    metadata_hashes: tuple[tuple[str, str], ...] | None, value: str | None
) -> None:
    (anchor,) = _anchors(project_html(_page(_file(metadata_hashes=metadata_hashes))))
    if value is None:
        assert "metadata" not in anchor
    else:
        assert f'data-core-metadata="{value}"' in anchor
        assert f'data-dist-info-metadata="{value}"' in anchor


def test_requires_python_only_when_set() -> None:
    (anchor,) = _anchors(project_html(_page(_file(requires_python=None))))
    assert "data-requires-python" not in anchor


def test_html_files_sorted_by_filename() -> None:
    names = ["demo-2.0.tar.gz", "demo-1.0.tar.gz", "demo-10.0.tar.gz", "Demo-1.5.zip"]
    page = _page(*(_file(filename=n, location=f"packages/a/b/c/{n}") for n in names))
    shown = [re.sub(r"<[^>]*>", "", a) for a in _anchors(project_html(page))]
    assert shown == sorted(names)


def test_serial_comment_last() -> None:
    assert project_html(_page(serial=123456)).endswith("</html>\n<!--SERIAL 123456-->\n")


# -- project JSON ---------------------------------------------------------------------------


def test_project_json_exact() -> None:
    page = _page(
        _file(
            requires_python=">=3.8",
            upload_time="2025-01-02T03:04:05Z",
            metadata_hashes=(("sha256", META_SHA),),
        ),
        versions=("1.0", "0.9"),
        status="deprecated",
        status_reason="use other",
    )
    assert json.loads(project_json(page)) == {
        "meta": {"api-version": API_VERSION, "_last-serial": 42},
        "name": "demo",
        "versions": ["0.9", "1.0"],
        "files": [
            {
                "filename": WHEEL,
                "url": f"../../{LOCATION}",
                "hashes": {"blake2b_256": B2, "sha256": SHA},
                "requires-python": ">=3.8",
                "size": 10,
                "upload-time": "2025-01-02T03:04:05Z",
                "yanked": False,
                "core-metadata": {"sha256": META_SHA},
                "data-dist-info-metadata": {"sha256": META_SHA},
            }
        ],
        "project-status": {"status": "deprecated", "reason": "use other"},
    }


@pytest.mark.parametrize(
    ("yanked", "reason", "value"),
    [(False, None, False), (True, None, True), (True, "", True), (True, "bad", "bad")],
)
def test_json_yanked(yanked: bool, reason: str | None, value: object) -> None:
    (entry,) = _json_files(_page(_file(yanked=yanked, yanked_reason=reason)))
    assert entry["yanked"] == value


@pytest.mark.parametrize(
    ("metadata_hashes", "value"),
    [
        (None, False),
        ((), True),
        ((("sha256", META_SHA),), {"sha256": META_SHA}),
        ((("blake2b_256", B2), ("sha256", META_SHA)), {"blake2b_256": B2, "sha256": META_SHA}),
    ],
)
def test_json_core_metadata(
    metadata_hashes: tuple[tuple[str, str], ...] | None, value: object
) -> None:
    page = _page(_file(metadata_hashes=metadata_hashes))
    (entry,) = _json_files(page)
    assert entry["core-metadata"] == value
    assert entry["data-dist-info-metadata"] == value
    assert "dist-info-metadata" not in entry
    assert '"dist-info-metadata"' not in project_json(page)


def test_json_optional_fields() -> None:
    (entry,) = _json_files(_page(_file(size=None, upload_time=None, requires_python=None)))
    assert entry["size"] is None
    assert entry["requires-python"] is None
    assert "upload-time" not in entry


def test_json_no_status_key_without_status() -> None:
    assert "project-status" not in json.loads(project_json(_page()))


def test_json_status_without_reason() -> None:
    document = json.loads(project_json(_page(status="archived")))
    assert document["project-status"] == {"status": "archived"}


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ((), []),
        (("1.10", "1.9", "1.2"), ["1.2", "1.9", "1.10"]),
        (
            ("2.0", "2.0rc1", "2.0.dev1", "1!0.1", "2.0.post1"),
            ["2.0.dev1", "2.0rc1", "2.0", "2.0.post1", "1!0.1"],
        ),
        (("1.0", "1.0.0", "v1.0"), ["1.0", "1.0.0", "v1.0"]),  # equal versions: string order
        (("2006p", "1.0", "dev", "0.1-r42"), ["0.1-r42", "1.0", "2006p", "dev"]),
        (("1.0", "1.0", "1.1"), ["1.0", "1.1"]),
    ],
)
def test_versions_order(versions: tuple[str, ...], expected: list[str]) -> None:
    assert json.loads(project_json(_page(versions=versions)))["versions"] == expected


def test_json_escapes_markup_and_non_ascii() -> None:
    page = _page(
        _file(yanked=True, yanked_reason=HOSTILE + " é & more"),
        display_name="Tom & Jerry",
        status=HOSTILE,
    )
    text = project_json(page)
    assert text.isascii()
    for raw in ("<", ">", "&"):
        assert raw not in text
    document = json.loads(text)
    assert document["files"][0]["yanked"] == HOSTILE + " é & more"
    assert document["project-status"] == {"status": HOSTILE}


def test_json_files_sorted_by_filename() -> None:
    names = ["demo-2.0.tar.gz", "demo-1.0.tar.gz", "Demo-1.5.zip"]
    page = _page(*(_file(filename=n, location=f"packages/a/b/c/{n}") for n in names))
    assert [f["filename"] for f in _json_files(page)] == sorted(names)


def test_deterministic() -> None:
    one = _file(filename="demo-1.0.tar.gz", location="packages/a/b/c/demo-1.0.tar.gz")
    two = _file(metadata_hashes=(), yanked=True)
    first = _page(one, two, versions=("1.0", "2.0", "0.1"))
    second = _page(two, one, versions=("0.1", "2.0", "1.0"))
    for render in (project_json, project_html):
        assert render(first) == render(first)
        assert render(first) == render(second)
    other = dataclasses.replace(first, serial=43)
    assert project_json(other) != project_json(first)
    assert project_html(other) != project_html(first)


def test_json_compact_and_sorted_keys() -> None:
    text = project_json(_page())
    assert text.endswith("}\n")
    assert text.count("\n") == 1
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) + "\n"


# -- root pages -----------------------------------------------------------------------------

PROJECTS = [
    MirroredProject(NormalizedName("zope-interface"), "zope.interface", 9),
    MirroredProject(NormalizedName("a"), "A", 1),
    MirroredProject(NormalizedName("tom-jerry"), "Tom&Jerry<b>", 5),
    MirroredProject(NormalizedName("django"), "Django", 12345678901),
]


def test_root_html() -> None:
    html = root_html(PROJECTS)
    assert '<meta name="pypi:repository-version" content="1.4">' in html
    assert _anchors(html) == [
        '<a href="a/">A</a>',
        '<a href="django/">Django</a>',
        '<a href="tom-jerry/">Tom&amp;Jerry&lt;b&gt;</a>',
        '<a href="zope-interface/">zope.interface</a>',
    ]
    assert "<b>" not in html


def test_root_html_quotes_odd_names() -> None:
    odd = MirroredProject(NormalizedName('x"/><script>'), "ok", 1)
    html = root_html([odd])
    assert "<script>" not in html
    assert _anchors(html) == ['<a href="x%22%2F%3E%3Cscript%3E/">ok</a>']


@pytest.mark.parametrize(("name", "href"), [("..", "%2E%2E/"), ("a.b", "a%2Eb/"), ("A", "A/")])
def test_root_html_never_links_outside(name: str, href: str) -> None:
    (anchor,) = _anchors(root_html([MirroredProject(NormalizedName(name), "x", 1)]))
    assert anchor == f'<a href="{href}">x</a>'


def test_root_html_empty() -> None:
    html = root_html([])
    assert _anchors(html) == []
    assert html.startswith("<!DOCTYPE html>")


def test_root_json() -> None:
    text = root_json(PROJECTS, serial=777)
    assert json.loads(text) == {
        "meta": {"api-version": "1.4", "_last-serial": 777},
        "projects": [
            {"name": "A", "_last-serial": 1},
            {"name": "Django", "_last-serial": 12345678901},
            {"name": "Tom&Jerry<b>", "_last-serial": 5},
            {"name": "zope.interface", "_last-serial": 9},
        ],
    }
    assert "<" not in text
    assert "&" not in text


@pytest.mark.parametrize(
    "projects",
    [
        [],
        PROJECTS,
        [MirroredProject(NormalizedName("x"), 'q"u\\o\te\u2028\udc80', 3)],
    ],
)
def test_root_json_is_what_json_dumps_would_write(projects: list[MirroredProject]) -> None:
    text = root_json(projects, serial=5)
    document = json.loads(text)
    assert text == (
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        + "\n"
    )
    assert all(isinstance(p["_last-serial"], int) for p in document["projects"])


def test_root_accepts_any_iterable() -> None:
    assert root_json(iter(PROJECTS), serial=1) == root_json(list(reversed(PROJECTS)), serial=1)
    assert root_html(p for p in PROJECTS) == root_html(PROJECTS)


@pytest.mark.parametrize("size", [1, 2, 3, 4096])
def test_root_pages_in_pieces_equal_the_whole(size: int) -> None:
    """The run streams the root pages a batch at a time; the pieces join to exactly the page
    rendered at once, whatever falls on either side of a boundary."""
    projects = sorted(
        [
            *PROJECTS,
            MirroredProject(NormalizedName("e"), "\u00e9t\u00e9", 2),
            MirroredProject(NormalizedName(".."), "x", 1),
        ],
        key=lambda p: p.name,
    )
    batches = [[], *(projects[i : i + size] for i in range(0, len(projects), size)), []]
    html = list(render_module.root_pieces("html", batches, serial=0))
    json_pieces = list(render_module.root_pieces("json", batches, serial=5))
    assert "".join(html) == root_html(projects) and "".join(html).isascii()
    assert "".join(json_pieces) == root_json(projects, serial=5)
    assert len(json_pieces) == 2 + -(-len(projects) // size)
