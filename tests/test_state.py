"""state.py and catalog.py: encodings and the state database."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from fullmirror.catalog import Catalog
from fullmirror.errors import StateError
from fullmirror.models import MirroredFile, MirroredPage
from fullmirror.state import (
    BadState,
    decode_page,
    encode_extra,
    encode_files,
    format_last_modified,
    parse_generation,
    parse_status,
)

N = NormalizedName
PAGE = MirroredPage(
    N("demo"),
    "Demo",
    7,
    (
        MirroredFile(
            "demo-1.0.tar.gz",
            "packages/aa/bb/cc/demo-1.0.tar.gz",
            (("sha256", "a" * 64),),
            10,
            "2020-01-01T00:00:00Z",
            ">=3.8",
            True,
            "bad <b>",
            None,
        ),
        MirroredFile(
            "demo-1.0-py3-none-any.whl",
            "packages/aa/bb/dd/demo-1.0-py3-none-any.whl",
            (("sha256", "b" * 64),),
            11,
            None,
            None,
            True,
            None,
            (("sha256", "c" * 64),),
        ),
    ),
    ("1.0", "0.9"),
    "archived",
    None,
)


def test_page_round_trip() -> None:
    assert decode_page(PAGE.name, "Demo", 7, encode_files(PAGE.files), encode_extra(PAGE)) == PAGE


@pytest.mark.parametrize(("text", "value"), [("42", 42), ("42\n", 42), (" 0 ", 0)])
def test_parse_status(text: str, value: int) -> None:
    assert parse_status(text) == value


@pytest.mark.parametrize("text", ["", "-1", "abc", "4 2", "\x00\x01"])
def test_parse_status_rejects(text: str) -> None:
    with pytest.raises(BadState):
        parse_status(text)


def test_generation() -> None:
    assert parse_generation("5") == ("bandersnatch", 5)
    assert parse_generation("fullmirror-1\n") == ("fullmirror", 1)
    with pytest.raises(BadState):
        parse_generation("something-else")


def test_last_modified_format() -> None:
    assert format_last_modified(0) == "19700101T00:00:00\n"


def test_catalog_projects_paths_and_pending(tmp_path: Path) -> None:
    c = Catalog(tmp_path / "state.db")
    c.add_pending({N("demo"): 7, N("other"): 3}, since=0, display_names={N("demo"): "Demo"})
    c.add_pending({N("demo"): 5}, since=4)
    pending = c.pending()
    assert pending[N("demo")].serial == 7 and pending[N("demo")].since == 0
    assert pending[N("demo")].display_name == "Demo"
    c.put_project(PAGE)
    assert c.get(N("demo")) == PAGE
    assert c.owner("packages/aa/bb/cc/demo-1.0.tar.gz") == "demo"
    assert list(c.pending()) == [N("other")]
    c.fail(N("other"), "boom")
    assert c.pending()[N("other")].attempts == 1
    assert c.lowest_pending_since() == 0
    assert [p.name for p in c.iter_projects()] == ["demo"]
    c.drop_project(N("demo"))
    assert c.get(N("demo")) is None and c.owner("packages/aa/bb/cc/demo-1.0.tar.gz") is None
    c.close()


def test_foreign_state_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(StateError) as info:
        Catalog(tmp_path / "state.db").serials()
    assert "state.db" in str(info.value)
