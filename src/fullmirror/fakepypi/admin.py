"""The private admin endpoints of the fake index (``/_fake/...``); not part of PyPI.

``POST /_fake/change`` runs one :class:`Index` mutation named by ``op`` with its arguments, e.g.
``{"op": "add_release", "name": "new-thing", "version": "1.0", "kinds": ["wheel"]}``.
``GET``/``POST /_fake/faults`` shows/sets fault attributes; ``GET /_fake/stats`` shows the request
counters and ``POST /_fake/stats`` also resets them. Every answer is JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from fullmirror.fakepypi.faults import Faults
from fullmirror.fakepypi.index import Index
from fullmirror.fakepypi.stats import Stats

__all__ = ["OPERATIONS", "answer_admin", "apply_change"]

_Op = Callable[[Index, Mapping[str, object]], object]


def _text(args: Mapping[str, object], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _optional_text(args: Mapping[str, object], key: str) -> str | None:
    value = args.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string")
    return value


def _texts(args: Mapping[str, object], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = args.get(key)
    if value is None:
        return default
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} must be a list of strings")
    return tuple(str(v) for v in value)


def _int(args: Mapping[str, object], key: str, default: int | None = None) -> int:
    value = args.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key!r} must be an integer")
    return value


def _add_release(index: Index, a: Mapping[str, object]) -> object:
    return index.add_release(
        _text(a, "name"),
        _text(a, "version"),
        requires_dist=_texts(a, "requires_dist", ()),
        requires_python=_optional_text(a, "requires_python"),
        kinds=_texts(a, "kinds", ("wheel", "sdist")),
        summary=_optional_text(a, "summary"),
    )


def _random_changes(index: Index, a: Mapping[str, object]) -> object:
    seed = a.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError("'seed' must be an integer")
    return index.random_changes(_int(a, "n"), seed=seed)


#: Operation name -> (what it does to the index).
OPERATIONS: dict[str, _Op] = {
    "create_project": lambda i, a: i.create_project(_text(a, "name")),
    "add_release": _add_release,
    "add_file": lambda i, a: i.add_file(_text(a, "name"), _text(a, "version"), _text(a, "kind")),
    "yank": lambda i, a: i.yank(_text(a, "name"), _text(a, "version"), _optional_text(a, "reason")),
    "unyank": lambda i, a: i.unyank(_text(a, "name"), _text(a, "version")),
    "remove_file": lambda i, a: i.remove_file(_text(a, "name"), _text(a, "filename")),
    "remove_release": lambda i, a: i.remove_release(_text(a, "name"), _text(a, "version")),
    "remove_project": lambda i, a: i.remove_project(_text(a, "name")),
    "add_role": lambda i, a: i.add_role(_text(a, "name"), _text(a, "role"), _text(a, "user")),
    "random_changes": _random_changes,
}


def apply_change(index: Index, payload: object) -> dict[str, object]:
    """Run one operation; ValueError (ChangeRejected included) for anything unusable."""
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    op = payload.get("op")
    operation = OPERATIONS.get(op) if isinstance(op, str) else None
    if operation is None:
        raise ValueError(f"unknown op {op!r}; known: {', '.join(sorted(OPERATIONS))}")
    result = operation(index, payload)
    return {"op": op, "result": result, "last_serial": index.last_serial}


def answer_admin(
    method: str, path: str, body: bytes, index: Index, faults: Faults, stats: Stats
) -> tuple[int, object]:
    """(HTTP status, JSON-able answer) for one admin request."""
    reading = method in ("GET", "HEAD")
    try:
        if path == "/_fake/stats" and (reading or method == "POST"):
            snapshot = stats.snapshot()
            if not reading:
                stats.reset()
            return 200, snapshot
        if path == "/_fake/faults" and reading:
            return 200, faults.as_dict()
        if path == "/_fake/faults" and method == "POST":
            values = json.loads(body or b"{}")
            if not isinstance(values, dict):
                raise ValueError("the body must be a JSON object of fault attributes")
            faults.update(values)
            return 200, faults.as_dict()
        if path == "/_fake/change" and method == "POST":
            return 200, apply_change(index, json.loads(body or b"null"))
    except ValueError as exc:  # json.JSONDecodeError and ChangeRejected are ValueErrors
        return 400, {"error": str(exc)}
    return 404, {"error": f"no admin endpoint {method} {path}"}
