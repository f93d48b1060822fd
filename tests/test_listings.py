"""Project listings read as their bytes arrive: the split never changes the outcome, and only
the protocol gets through."""

from __future__ import annotations

import json
import random
import time
import tracemalloc
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import pytest
from packaging.utils import NormalizedName

from fullmirror.errors import MalformedResponse
from fullmirror.listings import (
    RootJsonReader,
    SerialsReader,
    listed,
    parse_root_json,
    parse_serials_xml,
    unique_sorted,
)
from fullmirror.models import ListedProject, Listing, MirroredProject
from fullmirror.render import root_json

ROOT_URL = "https://index.test/simple/"
RPC_URL = "https://index.test/pypi"
Reader = RootJsonReader | SerialsReader

RATE_LIMITED = (
    "HTTPTooManyRequests: The action could not be performed because there were too many "
    "requests by the client. Limit may reset in 1 seconds."
)


def _root(*projects: Any, meta: Any = None) -> bytes:
    meta = {"api-version": "1.4", "_last-serial": 100} if meta is None else meta
    return json.dumps({"meta": meta, "projects": list(projects)}).encode()


def _xml(value: Any, *, allow_none: bool = False) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=allow_none).encode()


def _members(*members: str) -> bytes:
    """A response whose struct holds these hand-written members."""
    inner = "".join(f"<member>{m}</member>" for m in members)
    return (
        "<?xml version='1.0'?><methodResponse><params><param><value><struct>"
        f"{inner}</struct></value></param></params></methodResponse>"
    ).encode()


def _fault(code: int, text: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


def _feed(reader: Reader, body: bytes, cuts: list[int]) -> list[tuple[str, int]]:
    pairs: list[tuple[str, int]] = []
    for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        pairs += reader.feed(body[start:end])
    return pairs + reader.close()


def _outcome(make: Callable[[], Reader], body: bytes, cuts: list[int]) -> tuple[object, ...]:
    reader = make()
    try:
        pairs = _feed(reader, body, cuts)
    except (MalformedResponse, xmlrpc.client.Fault) as exc:
        return (type(exc), str(exc))
    return ("ok", pairs, getattr(reader, "serial", None))


def _splits(body: bytes, rng: random.Random) -> list[list[int]]:
    """Byte by byte, and a few random ways: inside characters, escapes, entities, numbers."""
    ways = [list(range(1, len(body)))]
    for count in (1, 2, 7, len(body) // 3):
        ways.append(sorted(rng.sample(range(1, len(body)), min(count, max(len(body) - 1, 0)))))
    return ways


def _assert_split_invariant(make: Callable[[], Reader], body: bytes) -> tuple[object, ...]:
    whole = _outcome(make, body, [])
    rng = random.Random(body)
    for cuts in _splits(body, rng):
        assert _outcome(make, body, cuts) == whole, cuts
    return whole


def _json_reader() -> RootJsonReader:
    return RootJsonReader(ROOT_URL)


def _xml_reader() -> SerialsReader:
    return SerialsReader(RPC_URL)


# -- any split, same result -------------------------------------------------------------------

JSON_BODIES = [
    _root({"name": "Zope.Interface", "_last-serial": 9}, {"name": "django", "_last-serial": 12}),
    _root({"name": "caf\u00e9"}, {"name": "\u65e5\u672c", "_last-serial": 3}),  # escaped
    json.dumps(
        {"projects": [{"name": "caf\u00e9 \U0001f600", "_last-serial": 1}]}, ensure_ascii=False
    ).encode(),
    json.dumps(
        {
            "x": -12.5e-3,
            "projects": [{"name": "a", "_last-serial": 1234567}, {"name": "b"}],
            "y": [1, {"z": "},"}],
            "n": 100,
            "meta": {"api-version": "1.1", "_last-serial": "77"},
            "t": True,
        },
        indent=2,
    ).encode(),
    # "}," inside a name and a nested object inside an entry: not where projects end.
    _root(
        {"name": "a},{b", "_last-serial": 1}, {"name": "c", "extra": {"d": 1}, "_last-serial": 2}
    ),
    b'\xef\xbb\xbf{"projects": [{"name": "bom"}]}',
    b' {"projects":[] } \n',
    b'{"projects": [{"name": "\\u0061\\u00e9\\ud83d\\ude00", "_last-serial": 5}]}',
    _root(*({"name": f"p{i}", "_last-serial": i} for i in range(300))),
    # Malformed: the split must not change which error either.
    _root({"name": "a", "_last-serial": -1}),
    _root({"name": "a"}, meta={"api-version": "2.0"}),
    b'{"projects": [{"name": "a"}], "projects": []}',
    b'{"projects": [{"name": "a"}]} x',
    b'{"projects": [{"name": "a"},]}',
    b'{"projects": [{"name": "a"}], "x": 1.}',
    b'{"projects": [{"name": "a"}], "x": tru}',
    b'{"projects": [{"name": "\xe9"}]}',
    b'{"projects": [{"name": "a"}]',
]

XML_BODIES = [
    _xml({"Zope.Interface": 9, "django": 12, "a&b<c>": 3}),
    _xml({"caf\u00e9": 1, "\u65e5\u672c": 2, "\U0001f600": 3}),
    _xml({f"p{i}": i for i in range(300)}),
    _members(
        "<name>caf&#233;&amp;&#x1F600;</name><value><i4>10</i4></value>",
        "<value><i8>9223372036854775807</i8></value><name>rev</name>",
        "<name><![CDATA[cd<a>ta]]></name><value><biginteger> 42 </biginteger></value>",
    ),
    _fault(-32500, RATE_LIMITED),
    _xml({"a": "1"}),
    _xml({"a": 1, "b": -1}),
    _members("<name>a</name><value>5</value>"),
    _xml({"a": 1})[:-20],
]


@pytest.mark.parametrize("body", JSON_BODIES, ids=range(len(JSON_BODIES)))
def test_json_any_split_same_outcome(body: bytes) -> None:
    _assert_split_invariant(_json_reader, body)


@pytest.mark.parametrize("body", XML_BODIES, ids=range(len(XML_BODIES)))
def test_xml_any_split_same_outcome(body: bytes) -> None:
    _assert_split_invariant(_xml_reader, body)


def test_json_split_reads_what_json_loads_reads() -> None:
    outcome = _assert_split_invariant(_json_reader, JSON_BODIES[3])
    assert outcome == ("ok", [("a", 1234567), ("b", 0)], 77)
    outcome = _assert_split_invariant(_json_reader, JSON_BODIES[7])
    assert outcome == ("ok", [("a\u00e9\U0001f600", 5)], None)


def test_xml_entities_and_characters_decode() -> None:
    outcome = _assert_split_invariant(_xml_reader, XML_BODIES[3])
    expected = [("caf\u00e9&\U0001f600", 10), ("rev", 2**63 - 1), ("cd<a>ta", 42)]
    assert outcome == ("ok", expected, None)
    assert _outcome(_xml_reader, XML_BODIES[1], []) == (
        "ok",
        [("caf\u00e9", 1), ("\u65e5\u672c", 2), ("\U0001f600", 3)],
        None,
    )


@pytest.mark.parametrize("chunk", [1000, 4096, 65536, 10**9])
def test_large_listings_in_chunks(chunk: int) -> None:
    # Past one decoding window, with entries that defeat the fast path here and there.
    projects: list[dict[str, Any]] = [{"name": f"p{i}", "_last-serial": i} for i in range(30000)]
    for i in range(0, 30000, 997):
        projects[i] = {"name": f"p{i}", "x": {"y": "},"}, "_last-serial": i}
    expected = [(f"p{i}", i) for i in range(30000)]
    bodies: list[tuple[Callable[[], Reader], bytes]] = [
        (_json_reader, _root(*projects)),
        (_xml_reader, _xml(dict(expected))),
    ]
    for make, body in bodies:
        cuts = list(range(chunk, len(body), chunk))
        assert _feed(make(), body, cuts) == expected


def test_pairs_come_out_as_the_bytes_arrive() -> None:
    readers: list[tuple[Reader, bytes]] = [
        (_json_reader(), JSON_BODIES[8]),
        (_xml_reader(), XML_BODIES[2]),
    ]
    for reader, body in readers:
        first = reader.feed(body[: len(body) // 2])
        rest = reader.feed(body[len(body) // 2 :]) + reader.close()
        assert 100 < len(first) < 200
        assert first + rest == [(f"p{i}", i) for i in range(300)]


@pytest.mark.parametrize("make", [_json_reader, _xml_reader])
def test_memory_stays_small(make: Callable[[], Reader]) -> None:
    count = 50000
    projects = {f"project-{i}": i for i in range(count)}
    if make is _json_reader:
        body = _root(*({"name": k, "_last-serial": v} for k, v in projects.items()))
    else:
        body = _xml(projects)
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    reader = make()
    seen = 0
    tracemalloc.start()
    try:
        for chunk in chunks:
            seen += len(reader.feed(chunk))
        seen += len(reader.close())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == count
    # Parsed whole, these documents cost 11 to 17 MB.
    assert peak < min(len(body) // 2, 1_500_000)


def test_json_huge_value_costs_linear_time() -> None:
    # Decoding the whole held text again on each chunk would take minutes here.
    body = b'{"x": "' + b"a" * 16_000_000 + b'", "projects": [{"name": "a"}]}'
    reader = _json_reader()
    started = time.monotonic()
    pairs = _feed(reader, body, list(range(4096, len(body), 4096)))
    assert pairs == [("a", 0)]
    assert time.monotonic() - started < 20


# -- every truncation is an error at close() ---------------------------------------------------


@pytest.mark.parametrize(
    ("make", "body"),
    [
        (_json_reader, JSON_BODIES[3]),
        (_xml_reader, XML_BODIES[3]),
        (_xml_reader, XML_BODIES[4]),
    ],
)
def test_truncated_documents_fail_at_close(make: Callable[[], Reader], body: bytes) -> None:
    body = body.rstrip()
    for end in range(len(body)):
        reader = make()
        with pytest.raises(MalformedResponse):
            reader.feed(body[:end])
            reader.close()


# -- PEP 691 root JSON -------------------------------------------------------------------------


def test_root_listing() -> None:
    body = _root(
        {"name": "Zope.Interface", "_last-serial": 9},
        {"name": "0-._.-._.-0", "_last-serial": 3},
        {"name": "django", "_last-serial": 12},
    )
    assert parse_root_json(body, url=ROOT_URL) == Listing(
        serial=100,
        projects=(
            ListedProject(NormalizedName("0-0"), "0-._.-._.-0", 3),
            ListedProject(NormalizedName("django"), "django", 12),
            ListedProject(NormalizedName("zope-interface"), "Zope.Interface", 9),
        ),
    )


@pytest.mark.parametrize(
    ("entry", "serial"),
    [
        ({"name": "a"}, 0),  # a bandersnatch root has no per-project serials
        ({"name": "a", "_last-serial": 5}, 5),
        ({"name": "a", "_last-serial": "5"}, 5),
    ],
)
def test_root_entry_serials(entry: dict[str, Any], serial: int) -> None:
    (project,) = parse_root_json(_root(entry), url=ROOT_URL).projects
    assert project.serial == serial


@pytest.mark.parametrize(
    ("meta", "serial"),
    [({"api-version": "1.0"}, None), ({"api-version": "1.0", "_last-serial": "8"}, 8)],
)
def test_root_meta_serial(meta: dict[str, Any], serial: int | None) -> None:
    assert parse_root_json(_root(meta=meta), url=ROOT_URL).serial == serial


def test_root_meta_after_projects() -> None:
    body = b'{"projects": [{"name": "a", "_last-serial": 2}], "meta": {"_last-serial": 5}}'
    assert parse_root_json(body, url=ROOT_URL) == Listing(
        serial=5, projects=(ListedProject(NormalizedName("a"), "a", 2),)
    )
    with pytest.raises(MalformedResponse, match="api-version"):
        parse_root_json(body.replace(b'{"_', b'{"api-version": "2.0", "_'), url=ROOT_URL)


def test_root_other_keys_ignored() -> None:
    body = b'{"a": {"projects": 1}, "projects": [], "b": [[], "]"], "c": null, "meta": {}}'
    assert parse_root_json(body, url=ROOT_URL) == Listing(serial=None, projects=())


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        ".",
        "../etc",
        "a/b",
        "a\\b",
        "a\x00",
        "a\n",
        "-a",
        "a-",
        "a b",
        "é",
        "\u017f",  # long s: IGNORECASE would match it to "s"
        "\ud800",  # a lone surrogate, which a JSON escape can carry
        "a" * 300,
    ],
)
def test_root_skips_invalid_names(name: str) -> None:
    listing = parse_root_json(_root({"name": name, "_last-serial": 1}, {"name": "ok"}), url="u")
    assert [p.name for p in listing.projects] == ["ok"]


def test_root_duplicates_keep_highest_serial() -> None:
    body = _root(
        {"name": "Foo_Bar", "_last-serial": 5},
        {"name": "foo.bar", "_last-serial": 9},
        {"name": "FOO-BAR", "_last-serial": 7},
    )
    assert parse_root_json(body, url=ROOT_URL).projects == (
        ListedProject(NormalizedName("foo-bar"), "foo.bar", 9),
    )


ROOT_MALFORMED = [
    b"",
    b"   ",
    b"{}",
    b"[]",
    b'"projects"',
    b"nonsense",
    json.dumps({"projects": {}}).encode(),
    json.dumps({"projects": None}).encode(),
    _root("name"),
    _root({"name": 5}),
    _root({}),
    _root([]),
    _root({"name": "a", "_last-serial": -1}),
    _root({"name": "a", "_last-serial": True}),
    _root({"name": "a", "_last-serial": "x"}),
    _root({"name": "a", "_last-serial": 1.0}),
    _root({"name": "a", "_last-serial": None}),
    _root(meta={"api-version": "2.0"}),
    _root(meta={"api-version": "1.0", "_last-serial": []}),
    _root(meta=[]),
    b'{"projects": [], "projects": []}',
    b'{"meta": {}, "meta": {}, "projects": []}',
    b'{"projects": []}{}',
    b'{"projects": []},',
    b'{"projects": [] "x": 1}',
    b'{"projects" [] }',
    b"{projects: []}",
    b'{"projects": [{"name": "a"} {"name": "b"}]}',
    b'{"projects": [{"name": "a"}, ]}',
    b'{"projects": ["a": 1]}',
    b'{"x": ' + b"1" * 5000 + b', "projects": []}',
    b'{"x": ' + b"[" * 100000 + b"]" * 100000 + b', "projects": []}',
    b'{"projects": [{"name": "\xff"}]}',
    b'{"projects": [{"name": "\xed\xa0\x80"}]}',  # an encoded surrogate is not UTF-8
    '{"projects": []}'.encode("utf-16"),
]


@pytest.mark.parametrize("body", ROOT_MALFORMED, ids=range(len(ROOT_MALFORMED)))
def test_root_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_root_json(body, url=ROOT_URL)
    assert info.value.url == ROOT_URL


def test_root_round_trip_own_json() -> None:
    projects = [
        MirroredProject(NormalizedName("foo-bar"), "Foo.Bar", 17),
        MirroredProject(NormalizedName("a"), "A", 2),
        MirroredProject(NormalizedName("b"), "b", 0),
    ]
    listing = parse_root_json(root_json(projects, serial=99).encode(), url=ROOT_URL)
    assert listing == Listing(
        serial=99,
        projects=tuple(
            ListedProject(p.name, p.display_name, p.serial)
            for p in sorted(projects, key=lambda p: p.name)
        ),
    )


# -- XML-RPC list_packages_with_serial ---------------------------------------------------------


def test_serials() -> None:
    struct = {"Zope.Interface": 9, "django": 12, "DJANGO": 3, "../evil": 99, "a b": 1}
    assert parse_serials_xml(_xml(struct), url=RPC_URL) == (
        ListedProject(NormalizedName("django"), "django", 12),
        ListedProject(NormalizedName("zope-interface"), "Zope.Interface", 9),
    )


def test_serials_empty_struct() -> None:
    assert parse_serials_xml(_xml({}), url=RPC_URL) == ()


@pytest.mark.parametrize("tag", ["int", "i1", "i2", "i4", "i8", "biginteger"])
def test_serials_integer_types(tag: str) -> None:
    body = _members(f"<name>a</name><value>\n<{tag}>\n7\n</{tag}>\n</value>")
    assert parse_serials_xml(body, url=RPC_URL) == (ListedProject(NormalizedName("a"), "a", 7),)


def test_serials_fault_is_raised_as_fault() -> None:
    with pytest.raises(xmlrpc.client.Fault) as info:
        parse_serials_xml(_fault(-32500, RATE_LIMITED), url=RPC_URL)
    assert info.value.faultCode == -32500
    assert info.value.faultString == RATE_LIMITED


def test_serials_fault_comes_out_of_close() -> None:
    reader = _xml_reader()
    body = _fault(-32500, RATE_LIMITED)
    assert reader.feed(body) == []
    with pytest.raises(xmlrpc.client.Fault):
        reader.close()


SERIALS_MALFORMED = [
    b"",
    b"nonsense",
    b"<methodResponse/>",
    b"<methodCall><params/></methodCall>",
    b"<methodResponse><params/></methodResponse>",
    b"<methodResponse><params><param/></params></methodResponse>",
    b"<methodResponse><params><param><value/></param></params></methodResponse>",
    b"<methodResponse><params><param><value><struct/></value></param><param/></params>"
    b"</methodResponse>",
    b"<methodResponse><params><param><value><struct/><struct/></value></param></params>"
    b"</methodResponse>",
    _xml(None, allow_none=True),
    _xml([]),
    _xml([("a", 1)]),
    _xml("a"),
    _xml(7),
    _xml({"a": "1"}),
    _xml({"a": True}),
    _xml({"a": -1}),
    _xml({"a": 1.0}),
    _xml({"a": None}, allow_none=True),
    _xml({"a": [1]}),
    _xml({"a": {"b": 1}}),
    _xml({"a": b"1"}),
    _xml({"a": 1}) + b"<junk/>",
    _members("<name>a</name><value>1</value>"),
    _members("<name>a</name><value></value>"),
    _members("<name>a</name><value><int></int></value>"),
    _members("<name>a</name><value><int>x</int></value>"),
    _members("<name>a</name><value><int>1_0</int></value>"),
    _members("<name>a</name><value><int>\u0661</int></value>"),
    _members("<name>a</name><value><int>-0x1</int></value>"),
    _members("<name>a</name><value><int>" + "9" * 20 + "</int></value>"),
    _members("<name>a</name><value><int>1</int><int>2</int></value>"),
    _members("<name>a</name><value><int>1<b/></int></value>"),
    _members("<value><int>1</int></value>"),
    _members("<name>a</name>"),
    _members("<name>a</name><name>b</name><value><int>1</int></value>"),
    _members("<name>a</name><value><int>1</int></value><value><int>2</int></value>"),
    _members("<name>a<b/></name><value><int>1</int></value>"),
    _members("<name>a</name><value><int>1</int></value><x/>"),
    _members("<name>a&bogus;</name><value><int>1</int></value>"),
    b'<!DOCTYPE x [<!ENTITY a "aaaa">]><methodResponse/>',
    # Faults that are not faults xmlrpc.client can read.
    b"<methodResponse><fault><value><string>x</string></value></fault></methodResponse>",
    b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1"
    b"</int></value></member></struct></value></fault></methodResponse>",
    b"<methodResponse><fault/><params/></methodResponse>",
]


# Over a megabyte held at once: refused, however the bytes arrive.
OVERSIZED = [
    _xml({"a": 1}).replace(b"<struct>", b"<struct>" + b" " * 1_100_000),
    _members("<name>a</name><!--" + "x" * 1_100_000 + "--><value><int>1</int></value>"),
    _members("<name>" + "a" * 1_100_000 + "</name><value><int>1</int></value>"),
    _members("<name" + " " * 1_100_000 + ">a</name><value><int>1</int></value>"),
    _fault(-32500, "x" * 1_100_000),
    _xml({"a": 1}) + b" " * 1_100_000,
]


@pytest.mark.parametrize("body", OVERSIZED, ids=range(len(OVERSIZED)))
def test_serials_oversized(body: bytes) -> None:
    whole = _outcome(_xml_reader, body, [])
    assert whole[0] is MalformedResponse and "more than" in str(whole[1])
    assert _outcome(_xml_reader, body, list(range(65536, len(body), 65536))) == whole


@pytest.mark.parametrize("body", SERIALS_MALFORMED, ids=range(len(SERIALS_MALFORMED)))
def test_serials_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_serials_xml(body, url=RPC_URL)
    assert info.value.url == RPC_URL


# -- listed() ----------------------------------------------------------------------------------


def test_listed_skips_invalid_names_and_keeps_order() -> None:
    pairs = [("Zope.Interface", 9), ("../evil", 1), ("", 2), ("a b", 3), ("zope_interface", 4)]
    assert listed(iter(pairs)) == [
        ListedProject(NormalizedName("zope-interface"), "Zope.Interface", 9),
        ListedProject(NormalizedName("zope-interface"), "zope_interface", 4),
    ]


def test_unique_sorted_keeps_the_highest_serial() -> None:
    def p(name: str, display: str, serial: int) -> ListedProject:
        return ListedProject(NormalizedName(name), display, serial)

    projects = [p("b", "B", 1), p("a", "A", 5), p("a", "a", 7), p("a", "A_", 7), p("a", "a.", 2)]
    assert unique_sorted(projects) == (p("a", "a", 7), p("b", "B", 1))


# -- fuzz: nothing but MalformedResponse (or a real fault), whatever the split -----------------


def _xml_junk(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False, 0.5, b"\x00bytes"])
    if kind in (1, 2):
        return rng.choice([0, 1, -1, 2**31 - 1, -(2**31)])
    if kind in (3, 4):
        return rng.choice(["", "demo", "1", "-1", "<&>", "\x7f", "caf\u00e9"])
    if kind == 5:
        return [_xml_junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(["a", "b", "faultCode"]): _xml_junk(rng, depth + 1) for _ in range(3)}


def _mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(body) + 1)
        op = rng.randrange(4)
        if op == 0:
            body = body[:at] + body[at + rng.randrange(1, 8) :]
        elif op == 1:
            junk = rng.choice([b"<", b">", b"&", b'"', b",", b"}", b"]", b"\\", b"\xc3"])
            body = body[:at] + junk + body[at:]
        elif op == 2:
            body = body[:at] + body[at : at + rng.randrange(1, 30)] * 2 + body[at + 1 :]
        else:
            body = body[:at]
    return body


def test_fuzz_xmlrpc_values_only_raise_malformed() -> None:
    rng = random.Random(7)
    values: list[object] = [_xml_junk(rng) for _ in range(100)]
    values += [{str(i): _xml_junk(rng) for i in range(3)} for _ in range(300)]
    values += [{f"p{i}": rng.choice([1, 2, _xml_junk(rng)]) for i in range(3)} for _ in range(100)]
    outcomes = {"ok": 0, "malformed": 0}
    for value in values:
        try:
            parse_serials_xml(_xml(value, allow_none=True), url=RPC_URL)
        except MalformedResponse:
            outcomes["malformed"] += 1
        else:
            outcomes["ok"] += 1
    assert outcomes["ok"] > 10
    assert outcomes["malformed"] > 100


@pytest.mark.parametrize("kind", ["json", "xml"])
def test_fuzz_mutated_bytes_same_outcome_any_split(kind: str) -> None:
    rng = random.Random(kind)
    make: Callable[[], Reader] = _json_reader if kind == "json" else _xml_reader
    seeds = JSON_BODIES[:8] if kind == "json" else XML_BODIES[:5]
    seen: set[object] = set()
    for _ in range(400):
        body = _mutate_bytes(rng, rng.choice(seeds))
        whole = _outcome(make, body, [])
        seen.add(whole[0])
        for cuts in _splits(body, rng)[1:]:
            assert _outcome(make, body, cuts) == whole, (body, cuts)
    assert "ok" in seen and MalformedResponse in seen
