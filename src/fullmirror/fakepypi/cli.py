"""``fullmirror fakepypi ...`` / ``python -m fullmirror.fakepypi ...``.

``serve`` runs a fake index until SIGINT or SIGTERM; ``change``, ``faults`` and ``stats`` talk to
a running one through its private admin endpoint (``/_fake/...``). Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import httpx

from fullmirror.fakepypi.corpus import generate_corpus
from fullmirror.fakepypi.faults import Faults
from fullmirror.fakepypi.server import FakePyPI, NotLoopback, loopback_family

__all__ = ["main"]

_PROG = "fakepypi"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage block; one line is easier to read in test logs.
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG, description="A fake PyPI on 127.0.0.1 for tests and benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="serve a generated corpus until interrupted")
    serve.add_argument("--projects", type=int, default=30, help="number of projects (default 30)")
    serve.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    serve.add_argument("--file-size", type=int, default=0, metavar="BYTES",
                       help="add an incompressible member of this size to every wheel")  # fmt: skip
    serve.add_argument("--file-size-max", type=int, default=0, metavar="BYTES",
                       help="wheel payloads range over --file-size..BYTES")  # fmt: skip
    serve.add_argument("--byte-cache", type=int, default=None, metavar="MIB",
                       help="MiB of built files kept in memory (default 256)")  # fmt: skip
    serve.add_argument("--synthetic-files", action="store_true",
                       help="tiny non-archive file bodies (metadata scale)")  # fmt: skip
    serve.add_argument("--warm", action="store_true",
                       help="compute every file's digests before serving")  # fmt: skip
    serve.add_argument("--bind", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 = any free)")
    serve.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                       help="set a fault switch, e.g. error_rate=0.05 (repeatable)")  # fmt: skip
    serve.add_argument("--page-size", type=int, default=None, metavar="N",
                       help="rows per changelog_since_serial call (default 50000)")  # fmt: skip
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")

    change = commands.add_parser("change", help="mutate a running fake index")
    change.add_argument("--url", required=True, help="the fake index, e.g. http://127.0.0.1:8900")
    ops = change.add_subparsers(dest="op", required=True, parser_class=_Parser)
    ops.add_parser("create_project").add_argument("name")
    release = ops.add_parser("add_release")
    release.add_argument("name")
    release.add_argument("version")
    release.add_argument("--requires-dist", action="append", default=None, metavar="REQ")
    release.add_argument("--requires-python", default=None, metavar="SPEC")
    release.add_argument("--kind", action="append", default=None, dest="kinds",
                         help="wheel, sdist or a wheel tag triple (repeatable)")  # fmt: skip
    release.add_argument("--summary", default=None)
    _positional(ops, "add_file", "name", "version", "kind")
    yank = _positional(ops, "yank", "name", "version")
    yank.add_argument("--reason", default=None)
    _positional(ops, "unyank", "name", "version")
    _positional(ops, "remove_file", "name", "filename")
    _positional(ops, "remove_release", "name", "version")
    _positional(ops, "remove_project", "name")
    _positional(ops, "add_role", "name", "role", "user")
    churn = ops.add_parser("random_changes")
    churn.add_argument("n", type=int)
    churn.add_argument("--seed", type=int, default=None)

    faults = commands.add_parser("faults", help="set fault switches of a running fake index")
    faults.add_argument("--url", required=True)
    faults.add_argument("settings", nargs="*", metavar="NAME=VALUE")

    stats = commands.add_parser("stats", help="print the request counters of a running index")
    stats.add_argument("--url", required=True)
    stats.add_argument("--reset", action="store_true", help="also reset the counters")
    return parser


def _positional(ops: argparse._SubParsersAction[_Parser], op: str, *names: str) -> _Parser:
    parser = ops.add_parser(op)
    for name in names:
        parser.add_argument(name)
    return parser


def _settings(pairs: Sequence[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _UsageError(f"expected NAME=VALUE, got {pair!r}")
        values[name.strip()] = value
    return values


def _serve(args: argparse.Namespace) -> int:
    try:
        loopback_family(args.bind)
    except NotLoopback as exc:
        raise _UsageError(str(exc)) from None
    if args.projects < 0 or args.file_size < 0 or not 0 <= args.port <= 65535:
        raise _UsageError("--projects, --file-size and --port must be >= 0 (port <= 65535)")
    if args.file_size_max < 0 or (args.byte_cache is not None and args.byte_cache < 0):
        raise _UsageError("--file-size-max and --byte-cache must be >= 0")
    if args.page_size is not None and args.page_size < 1:
        raise _UsageError("--page-size must be at least 1")
    faults = Faults()
    try:
        faults.update(_settings(args.fault))
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    index = generate_corpus(args.projects, args.seed, args.file_size)
    index.tune_files(
        file_size_max=args.file_size_max,
        byte_cache=None if args.byte_cache is None else args.byte_cache * 1024 * 1024,
        synthetic=args.synthetic_files,
    )
    if args.warm:
        index.warm()
    try:
        upstream = FakePyPI.start(
            host=args.bind, port=args.port, index=index, faults=faults,
            page_size=args.page_size, verbose=args.verbose,
        )  # fmt: skip
    except OSError as exc:
        print(f"{_PROG}: cannot listen on {args.bind}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        count = len(index.project_names())
        print(
            f"fake PyPI serving {count} projects at {upstream.url} (serial {index.last_serial})",
            flush=True,
        )
        while not done.wait(0.5):
            pass
    finally:
        upstream.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _admin(method: str, url: str, path: str, payload: object = None) -> int:
    target = url.rstrip("/") + path
    try:
        with httpx.Client(timeout=60) as client:
            response = client.request(method, target, json=payload)
    except httpx.HTTPError as exc:
        print(f"{_PROG}: cannot reach {target}: {exc}", file=sys.stderr)
        return 1
    try:
        data = response.json()
    except ValueError:
        print(f"{_PROG}: {target} answered HTTP {response.status_code}, not JSON", file=sys.stderr)
        return 1
    if response.status_code != 200:
        message = data.get("error", data) if isinstance(data, dict) else data
        print(f"{_PROG}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2, sort_keys=True))
    return 0


def _change_payload(args: argparse.Namespace) -> dict[str, object]:
    skip = {"command", "url"}
    payload = {key: value for key, value in vars(args).items() if key not in skip}
    return {key: value for key, value in payload.items() if value is not None}


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "serve":
            return _serve(args)
        if args.command == "change":
            return _admin("POST", args.url, "/_fake/change", _change_payload(args))
        if args.command == "faults":
            settings = _settings(args.settings)
            try:
                Faults().update(settings)  # reject bad names and values here: a usage error
            except ValueError as exc:
                raise _UsageError(str(exc)) from None
            if not settings:
                return _admin("GET", args.url, "/_fake/faults")
            return _admin("POST", args.url, "/_fake/faults", settings)
        return _admin("POST" if args.reset else "GET", args.url, "/_fake/stats")
    except _UsageError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
