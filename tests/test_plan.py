"""plan.py: pure decisions, tested with literals."""

from __future__ import annotations

import pytest
from packaging.utils import NormalizedName

from fullmirror.errors import UnsafeUpstreamData
from fullmirror.models import (
    ChangelogEntry,
    CoreMetadata,
    MirroredFile,
    MirroredPage,
    ReleaseFile,
)
from fullmirror.plan import (
    changes_from_changelog,
    honest_status,
    locations_to_remove,
    mirrored_file,
    place,
    upload_epoch,
)

N = NormalizedName
B2 = "ab" + "cd" + "e" * 60
SHA = "12" + "34" + "f" * 60


def rf(filename: str, url: str, sha: str = SHA, **kw: object) -> ReleaseFile:
    return ReleaseFile(filename=filename, url=url, hashes=(("sha256", sha),), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "location", "address"),
    [
        (
            f"https://files.example/packages/ab/cd/{'e' * 60}/foo-1.0.tar.gz",
            f"packages/ab/cd/{'e' * 60}/foo-1.0.tar.gz",
            B2,
        ),
        # Not the hashed layout: the path is derived from sha256, never from the URL.
        (
            "https://idx.example/root/pypi/+f/abc/foo-1.0.tar.gz",
            f"packages/12/34/{'f' * 60}/foo-1.0.tar.gz",
            SHA,
        ),
        (
            "https://idx.example/packages/../../etc/foo-1.0.tar.gz",
            f"packages/12/34/{'f' * 60}/foo-1.0.tar.gz",
            SHA,
        ),
        (
            "https://idx.example/elsewhere/foo-1.0.tar.gz",
            f"packages/12/34/{'f' * 60}/foo-1.0.tar.gz",
            SHA,
        ),
        # The layout with another filename at the end is not trusted either.
        (
            f"https://x.example/packages/ab/cd/{'e' * 60}/other-1.0.tar.gz",
            f"packages/12/34/{'f' * 60}/foo-1.0.tar.gz",
            SHA,
        ),
    ],
)
def test_place(url: str, location: str, address: str) -> None:
    p = place(rf("foo-1.0.tar.gz", url), N("foo"))
    assert p.location == location
    assert p.address == address


@pytest.mark.parametrize(
    "filename", ["../foo-1.0.tar.gz", "foo/../../x.tar.gz", "bar-1.0.tar.gz", "foo-1.0\x00.tar.gz"]
)
def test_place_rejects_hostile_names(filename: str) -> None:
    with pytest.raises(UnsafeUpstreamData):
        place(rf(filename, "https://x.example/a/" + filename), N("foo"))


def test_place_without_sha256_off_layout_is_rejected() -> None:
    f = ReleaseFile("foo-1.0.tar.gz", "https://x.example/a/foo-1.0.tar.gz", (("md5", "0" * 32),))
    with pytest.raises(UnsafeUpstreamData):
        place(f, N("foo"))


def test_changes_from_changelog_keeps_highest_serial_per_normalized_name() -> None:
    entries = [
        ChangelogEntry("Foo_Bar", "1.0", 0, "new release", 5),
        ChangelogEntry("foo.bar", None, 0, "add Owner x", 9),
        ChangelogEntry("Baz", "2", 0, "remove release", 7),
        ChangelogEntry("../etc", None, 0, "create", 8),
    ]
    assert changes_from_changelog(entries) == {N("foo-bar"): 9, N("baz"): 7}


@pytest.mark.parametrize(
    ("target", "lowest", "expected"), [(50, None, 50), (50, 30, 30), (50, 60, 50)]
)
def test_honest_status(target: int, lowest: int | None, expected: int) -> None:
    assert honest_status(target, lowest) == expected


def mf(loc: str, meta: bool = False) -> MirroredFile:
    return MirroredFile(
        loc.rsplit("/", 1)[1],
        loc,
        (("sha256", SHA),),
        metadata_hashes=(("sha256", SHA),) if meta else None,
    )


def test_locations_to_remove() -> None:
    old = MirroredPage(
        N("p"),
        "p",
        1,
        (
            mf("packages/a/p-1.whl", True),
            mf("packages/b/p-1.tar.gz"),
            mf("packages/c/p-2.whl", True),
        ),
    )
    new = MirroredPage(N("p"), "p", 2, (mf("packages/a/p-1.whl"), mf("packages/c/p-2.whl", True)))
    assert locations_to_remove(old, new) == ["packages/a/p-1.whl.metadata", "packages/b/p-1.tar.gz"]
    assert locations_to_remove(None, new) == []


def test_mirrored_file_locations() -> None:
    p = place(
        rf(
            "foo-1.0-py3-none-any.whl",
            f"https://f.example/packages/ab/cd/{'e' * 60}/foo-1.0-py3-none-any.whl",
            core_metadata=CoreMetadata((("sha256", SHA),)),
        ),
        N("foo"),
    )
    assert mirrored_file(p, metadata_hashes=None, local=True, root_uri="").location == p.location
    assert mirrored_file(p, metadata_hashes=None, local=False, root_uri="").location == p.file.url
    assert mirrored_file(
        p, metadata_hashes=None, local=False, root_uri="https://m.example/"
    ).location == ("https://m.example/" + p.location)


def test_upload_epoch() -> None:
    assert upload_epoch("1970-01-01T00:01:00Z") == 60.0
    assert upload_epoch("1970-01-01T00:01:00.500000Z") == 60.5
    assert upload_epoch(None) is None
    assert upload_epoch("yesterday") is None
