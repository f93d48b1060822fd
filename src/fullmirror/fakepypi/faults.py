"""Fault switches of the fake index: all off by default, all settable while it serves.

Random faults fire with a probability per request, drawn from one seedable RNG (``seed(n)``),
and only for the request kinds in ``scope``. Targeted faults name projects or files and always
fire. Attributes may be assigned directly (``faults.error_rate = 0.1``) or through
:meth:`Faults.update`, which also accepts the text forms the command line and the admin endpoint
send (``"0.1"``, ``"demo-lib,demo-core"``, ``"true"``).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from packaging.utils import canonicalize_name

__all__ = ["ALL_SCOPES", "Faults"]

#: The request kinds random faults can apply to.
ALL_SCOPES = frozenset({"xmlrpc", "root", "project", "json-api", "file", "metadata"})
_SET_FIELDS = frozenset({"broken_projects", "corrupt_files", "gone_midrun", "scope"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass
class Faults:
    #: Answer 500, 502 or 503.
    error_rate: float = 0.0
    #: Close the connection without any response.
    reset_rate: float = 0.0
    #: Sleep ``stall_seconds`` before answering (files: also halfway through the body).
    stall_rate: float = 0.0
    stall_seconds: float = 5.0
    #: Files: announce the full Content-Length, send part of the body, close.
    truncate_rate: float = 0.0
    #: Files: send wrong bytes of the right length.
    corrupt_rate: float = 0.0
    #: Project pages and JSON API: serve the previous version of the page and its serial.
    stale_rate: float = 0.0
    #: A 200 whose JSON, HTML or XML does not parse.
    malformed_rate: float = 0.0
    #: XML-RPC Fault -32500 ``HTTPTooManyRequests ... Limit may reset in N seconds.``
    xmlrpc_ratelimit_rate: float = 0.0
    ratelimit_seconds: float = 2.0
    #: Project pages and JSON API of these projects always answer 500.
    broken_projects: set[str] = field(default_factory=set)
    #: These filenames are always served with wrong bytes.
    corrupt_files: set[str] = field(default_factory=set)
    #: Project pages and JSON API of these answer 404 while listings still name them.
    gone_midrun: set[str] = field(default_factory=set)
    #: Request kinds the random faults apply to.
    scope: set[str] = field(default_factory=lambda: set(ALL_SCOPES))
    #: Ignore Range headers and answer 200 with the whole file.
    no_ranges: bool = False
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def seed(self, n: int) -> None:
        """Make the random faults reproducible from here on."""
        with self._lock:
            self._rng.seed(n)

    def roll(self, rate: float, kind: str) -> bool:
        """True with probability ``rate`` when ``kind`` is in scope."""
        if rate <= 0 or kind not in self.scope:
            return False
        with self._lock:
            return self._rng.random() < rate

    def pick(self, choices: tuple[int, ...]) -> int:
        with self._lock:
            return self._rng.choice(choices)

    def fraction(self) -> float:
        with self._lock:
            return self._rng.random()

    def is_broken(self, name: str) -> bool:
        return _contains_name(self.broken_projects, name)

    def is_gone(self, name: str) -> bool:
        return _contains_name(self.gone_midrun, name)

    def clear(self) -> None:
        """Everything back to off (the RNG state is kept)."""
        default = Faults()
        for f in _public_fields():
            setattr(self, f, getattr(default, f))

    def update(self, values: Mapping[str, object]) -> None:
        """Set attributes from typed values or their text forms; ``seed`` reseeds the RNG.

        Raises ValueError naming the attribute on an unknown name or a bad value, before
        changing anything.
        """
        parsed: dict[str, object] = {}
        for name, value in values.items():
            if name == "seed":
                parsed[name] = _to_int(name, value)
            elif name not in _public_fields():
                known = ", ".join(sorted([*_public_fields(), "seed"]))
                raise ValueError(f"unknown fault {name!r}; known: {known}")
            else:
                parsed[name] = _parse(name, value)
        for name, value in parsed.items():
            if name == "seed":
                assert isinstance(value, int)
                self.seed(value)
            else:
                setattr(self, name, value)

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {}
        for name in _public_fields():
            value = getattr(self, name)
            result[name] = sorted(value) if isinstance(value, set) else value
        return result


def _public_fields() -> list[str]:
    return [f.name for f in fields(Faults) if not f.name.startswith("_")]


def _contains_name(names: set[str], name: str) -> bool:
    target = canonicalize_name(name)
    return any(canonicalize_name(candidate) == target for candidate in list(names))


def _to_int(name: str, value: object) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value)) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"fault {name!r} needs an integer, not {value!r}") from None


def _parse(name: str, value: object) -> object:
    if name == "no_ranges":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"fault {name!r} needs true or false, not {value!r}")
    if name not in _SET_FIELDS:
        try:
            number = float(value) if isinstance(value, int | float | str) else float("nan")
        except ValueError:
            number = float("nan")
        if isinstance(value, bool) or not (number >= 0 and math.isfinite(number)):
            raise ValueError(f"fault {name!r} needs a number >= 0, not {value!r}")
        if name.endswith("_rate") and number > 1:
            raise ValueError(f"fault {name!r} is a probability between 0 and 1, not {value!r}")
        return number
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset):
        raise ValueError(f"fault {name!r} needs a list or comma-separated text")
    result = {str(item).strip() for item in items if str(item).strip()}
    if name == "scope" and not result <= ALL_SCOPES:
        unknown = ", ".join(sorted(result - ALL_SCOPES))
        raise ValueError(f"unknown scope {unknown}; known: {', '.join(sorted(ALL_SCOPES))}")
    return result
