"""The command line's read-only commands: ``serve``, ``check``, ``client-config``, ``plan``.

Part of the command line (with :mod:`fullmirror.cli`, which parses and dispatches): these
functions print and return exit codes; the work itself is done in :mod:`fullmirror.serve`,
:mod:`fullmirror.check`, :mod:`fullmirror.clientconfig` and :mod:`fullmirror.preview`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from fullmirror.errors import ConfigError, ServeError

if TYPE_CHECKING:
    # Only `plan` needs it; importing it here would load the resolver for every command.
    from fullmirror.preview import Plan

EXIT_OK = 0
EXIT_VIOLATIONS = 1
EXIT_CONFIG = 2
#: A port that is taken or an address that is not ours is fixed on the command line.
EXIT_SERVE = 2


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve the mirror's web/ folder over HTTP (to try it; use nginx in production)",
        description="A read-only HTTP server for the mirror in the config's directory, with "
        "PEP 691 negotiation, the PEP 503 redirects and Range requests. It logs one line per "
        "request. For a busy or long-lived service use nginx with contrib/nginx.conf.",
    )
    serve.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    serve.add_argument(
        "--fallback-url",
        default="",
        help="redirect names the mirror does not have to this index, e.g. https://host/simple",
    )
    check = sub.add_parser(
        "check",
        help="check a served mirror the way pip and uv see it",
        description="Fetch a served index as pip and uv do: content negotiation and types, "
        "redirects, HTML and JSON pages agreeing, link hashes, .metadata files and the root "
        "index. Exit 0 when nothing violates the protocols (warnings allowed), 1 otherwise.",
    )
    check.add_argument("url", help="the index URL clients use, e.g. http://host:8080/simple/")
    check.add_argument("--all", action="store_true", help="check every project and every file")
    check.add_argument("--sample", type=int, default=20, help="projects to check without --all")
    check.add_argument("--verbose-table", action="store_true", help="list every passing check")
    client = sub.add_parser(
        "client-config",
        help="print set-up for pip, uv, pdm, poetry and pip-tools to use a mirror",
    )
    client.add_argument("url", help="the mirror's URL, e.g. http://host:8080/simple/")


def serve(directory: str, args: argparse.Namespace) -> int:
    from pathlib import Path

    from fullmirror.serve import MirrorServer

    def access(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    web = Path(directory) / "web"
    try:
        server = MirrorServer(web, args.bind, args.port, fallback_url=args.fallback_url, log=access)
    except ServeError as exc:
        print(f"fullmirror: {exc}", file=sys.stderr, flush=True)
        return EXIT_SERVE
    print(f"serving {web} at {server.url}/simple/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return EXIT_OK


def check(args: argparse.Namespace, *, timeout: float, proxy: str) -> int:
    from fullmirror.check import check_index, format_findings, has_violations
    from fullmirror.upstream import make_client

    if args.sample < 1:
        print("fullmirror: --sample must be 1 or more", file=sys.stderr)
        return EXIT_CONFIG
    if not args.url.startswith(("http://", "https://")):
        print(
            f"fullmirror: {args.url!r} is not an http(s) URL; give the index URL clients use",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    with make_client(timeout=timeout, proxy=proxy, connections=8) as client:
        findings = check_index(
            client, args.url, every_file=args.all, sample=10**9 if args.all else args.sample
        )
    print(format_findings(findings, verbose=args.verbose_table), flush=True)
    return EXIT_VIOLATIONS if has_violations(findings) else EXIT_OK


def client_config(args: argparse.Namespace) -> int:
    from fullmirror.clientconfig import client_config as render

    try:
        text = render(args.url)
    except ConfigError as exc:
        print(f"fullmirror: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(text, flush=True)
    return EXIT_OK


def print_plan(plan: Plan, *, as_json: bool, every_file: bool) -> None:
    if as_json:
        document = {
            "serial_from": plan.serial_from,
            "serial_to": plan.serial_to,
            "projects": [
                {
                    "name": p.name,
                    "action": p.action,
                    "fetch": [
                        {"filename": f.filename, "location": f.location, "size": f.size}
                        for f in p.fetch
                    ],
                    "remove": list(p.remove),
                    "bytes": p.bytes,
                    "reason": p.reason,
                    "chain": p.chain,
                }
                for p in plan.changed
            ],
            "closure_problems": list(plan.closure_problems),
        }
        print(json.dumps(document, indent=2), flush=True)
        return
    marks = {"add": "+", "update": "~", "remove": "-", "error": "!"}
    print(f"plan: serial {plan.serial_from} -> {plan.serial_to}")
    for p in plan.changed:
        detail = [f"fetch {len(p.fetch)} files ({human_size(p.bytes)})"] if p.fetch else []
        if p.remove:
            detail.append(f"remove {len(p.remove)} files")
        if p.reason:
            detail.append(p.reason)
        if p.chain:
            detail.append(f"needed by: {p.chain}")
        print(f"  {marks.get(p.action, '?')} {p.name:<32} {'; '.join(detail)}")
        if every_file:
            for f in p.fetch:
                print(f"      + {f.filename}")
            for loc in p.remove:
                print(f"      - {loc.rsplit('/', 1)[-1]}")
    for problem in plan.closure_problems:
        print(f"  closure: {problem}")
    changed = plan.changed
    fetch = sum(len(p.fetch) for p in changed)
    total = sum(p.bytes for p in changed)
    removed = sum(len(p.remove) for p in changed)
    gone = sum(p.action == "remove" for p in changed)
    print(
        f"total: {len(changed)} projects change; fetch {fetch} files ({human_size(total)}), "
        f"remove {removed} files and {gone} projects",
        flush=True,
    )


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
