"""The command line: the only module that prints or exits.

Exit codes (also in the README):

    0  the mirror is complete up to the serial it reports
    1  some projects failed; they are retried next run, the serial did not pass them
    2  bad command line or configuration
    3  another run holds the lock on this mirror
    4  the upstream is unreachable or does not speak the protocol

    (verify: 1 means it found problems it did not fix; delete: 1 means a name was unknown;
    sync: 1 means a named project was not mirrored; check: 1 means the served index violates
    what pip and uv rely on; serve: 2 means it cannot listen where it was told to)
    5  the mirror directory cannot be written (disk full, read-only, permissions)
    6  a state file is corrupt or foreign
    130 interrupted (Ctrl-C / SIGINT)
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Never

from packaging.utils import NormalizedName, canonicalize_name

from fullmirror import __version__, commands
from fullmirror.catalog import Catalog
from fullmirror.config import Config, load_config
from fullmirror.errors import (
    ConfigError,
    FullmirrorError,
    LockHeld,
    StateError,
    StorageError,
    UpstreamError,
)
from fullmirror.storage import Storage

if TYPE_CHECKING:
    from fullmirror.sync import Report

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_UPSTREAM = 4
EXIT_STORAGE = 5
EXIT_STATE = 6
EXIT_INTERRUPTED = 130

DEFAULT_CONFIG = "/etc/fullmirror.conf"
_VALID_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
log = logging.getLogger("fullmirror")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"fullmirror: error: {message}\n")
        raise SystemExit(EXIT_CONFIG)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="fullmirror",
        description="Keep a verified local mirror of PyPI or any PEP 691 package index.",
        epilog="Exit codes: 0 ok, 1 some projects failed, 2 usage or config error, 3 lock held, "
        "4 upstream unreachable, 5 mirror directory not writable, 6 corrupt state file.",
    )
    p.add_argument("--version", action="version", version=f"fullmirror {__version__}")
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (INI)")
    level = p.add_mutually_exclusive_group()
    level.add_argument("-v", "--verbose", action="store_true", help="log every request")
    level.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("mirror", help="sync the mirror with upstream (run it from cron)")
    verify = sub.add_parser(
        "verify",
        help="check every mirrored file and page against the mirror's records",
        description="Check that every file the pages link is on disk with the recorded size "
        "(and sha256 with --hash), that every page matches the mirror's records, and that "
        "no file under web/packages is unreferenced. A pass killed midway resumes: projects "
        "it already found sound are skipped by the next pass of the same kind. Exit 0 when "
        "nothing is wrong (or everything wrong was fixed), 1 when problems remain.",
    )
    verify.add_argument("--hash", action="store_true", help="read every file and compare sha256")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="download missing or corrupt files again and rewrite pages that differ",
    )
    verify.add_argument(
        "--delete", action="store_true", help="remove unreferenced files (and temp files)"
    )
    verify.add_argument(
        "--dry-run", action="store_true", help="only report what would change; change nothing"
    )
    delete = sub.add_parser(
        "delete",
        help="remove projects from the mirror",
        description="Remove projects: their files, pages, JSON copies and record, and rewrite "
        "the root index. A deleted project stays deleted: `mirror` brings it back only when "
        "upstream changes it again after the deletion.",
    )
    delete.add_argument("projects", nargs="+", metavar="PROJECT", help="project name(s)")
    delete.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    demo = sub.add_parser(
        "demo", help="mirror the bundled fake PyPI into a folder and show how to install from it"
    )
    demo.add_argument("--dir", default="fullmirror-demo", help="where to put the demo mirror")
    demo.add_argument("--projects", type=int, default=200, help="size of the fake upstream")
    sync = sub.add_parser(
        "sync",
        help="mirror the named projects now, whatever the serial says",
        description="Fetch the named projects' pages and files now and rewrite their pages, "
        "as `mirror` would for a change upstream. The serial checkpoint does not move. A "
        "project removed with `delete` comes back. Exit 1 when a name could not be mirrored.",
    )
    sync.add_argument("projects", nargs="+", metavar="PROJECT", help="project name(s)")
    plan = sub.add_parser(
        "plan",
        help="show what `mirror` would fetch and remove, without changing anything",
        description="Ask upstream what changed and apply the filters and the dependency "
        "closure as `mirror` would, then list the projects, files and bytes it would fetch "
        "and remove, and for projects the closure adds the chain that pulled them in. Release "
        "files are not downloaded and nothing on disk changes.",
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--files", action="store_true", help="list every file, not just totals")
    commands.add_parsers(sub)
    sub.add_parser("fakepypi", help="run the bundled fake PyPI (tests and demos)", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "fakepypi" in args_list:
        at = args_list.index("fakepypi")
        if all(a.startswith("-") for a in args_list[:at]):
            from fullmirror.fakepypi.cli import main as fake_main

            return fake_main(args_list[at + 1 :])
    args = _parser().parse_args(args_list)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return EXIT_CONFIG
    _setup_logging(verbose=args.verbose, quiet=args.quiet)
    if args.command == "demo":
        return _demo(Path(args.dir), projects=args.projects, quiet=args.quiet)
    if args.command == "check":
        return commands.check(args, timeout=30.0, proxy="")
    if args.command == "client-config":
        return commands.client_config(args)
    return _configured(args)


def _demo(folder: Path, *, projects: int, quiet: bool) -> int:
    from fullmirror.demo import install_hint, write_demo_config
    from fullmirror.fakepypi import FakePyPI

    with FakePyPI.start(projects=projects, seed=0) as up:
        print(f"fake PyPI with {projects} projects at {up.url}", flush=True)
        config_path = write_demo_config(folder.resolve(), up.url)
        print(f"mirroring it with: fullmirror -c {config_path} mirror", flush=True)
        code = _configured(argparse.Namespace(config=str(config_path), quiet=quiet))
    if code == EXIT_OK:
        print(install_hint(folder), flush=True)
    return code


def _configured(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, f"configuration error: {exc}")
    for warning in config.warnings:
        log.warning("config: %s", warning)
    if config.log_config:
        import logging.config  # 20 ms of imports (sockets, queues) only this setting needs

        try:
            logging.config.fileConfig(config.log_config, disable_existing_loggers=False)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            return _fail(EXIT_CONFIG, f"configuration error: [mirror] log-config: {exc}")
    command = getattr(args, "command", "mirror")
    try:
        if command == "verify":
            return _locked(config, lambda: _verify(config, args))
        if command == "delete":
            return _locked(config, lambda: _delete(config, args))
        if command == "sync":
            names = _project_names(args.projects)
            if names is None:
                return EXIT_CONFIG
            return _mirror(config, quiet=args.quiet, names=names)
        if command == "plan":
            return _plan(config, args)
        if command == "serve":
            # Read-only: serving needs no lock, so it runs beside cron's `mirror`.
            return commands.serve(str(config.directory), args)
        return _mirror(config, quiet=args.quiet)
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted; the next run resumes where this one stopped")


def _mirror(config: Config, *, quiet: bool, names: list[NormalizedName] | None = None) -> int:
    # The sync machinery and its HTTP client are imported by the commands that use them:
    # ``verify``, ``delete`` and ``serve`` start faster without them.
    from fullmirror.sync import Mirror
    from fullmirror.upstream import open_upstream

    storage = Storage(config.directory)
    storage.record_writes = bool(config.diff_file)
    try:
        with storage.lock():
            catalog = Catalog(config.directory / "state.db")
            upstream = open_upstream(config)
            try:
                mirror = Mirror(config, storage, catalog, upstream, progress=_progress(quiet))
                report = mirror.run() if names is None else mirror.run_named(names)
            finally:
                upstream.close()
                catalog.close()
            if config.diff_file:
                _write_diff_file(config, storage.written)
    except FullmirrorError as exc:
        return _error_exit(exc)
    if not quiet:
        print(_summary(report), flush=True)
    if report.failures or report.persistent or report.stopped_early:
        names = sorted(set(report.failures) | set(report.persistent))
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        return _fail(
            EXIT_PARTIAL,
            f"{len(names)} project(s) not mirrored this run ({shown}); they are retried "
            "next run and the serial does not pass them",
        )
    return EXIT_OK


def _plan(config: Config, args: argparse.Namespace) -> int:
    from fullmirror.preview import make_plan
    from fullmirror.upstream import open_upstream

    state = config.directory / "state.db"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            # A mirror that never ran has no state.db: plan against an empty one elsewhere.
            catalog = Catalog(state if state.exists() else Path(scratch) / "state.db")
            upstream = open_upstream(config)
            try:
                plan = make_plan(config, catalog, upstream, Storage(config.directory), time.time())
            finally:
                upstream.close()
                catalog.close()
    except FullmirrorError as exc:
        return _error_exit(exc)
    commands.print_plan(plan, as_json=args.json, every_file=args.files)
    return EXIT_OK


def _project_names(given: list[str]) -> list[NormalizedName] | None:
    names = []
    for name in given:
        if not _VALID_NAME.fullmatch(name):
            _fail(EXIT_CONFIG, f"{name!r} is not a valid project name (PEP 508 names only)")
            return None
        names.append(canonicalize_name(name))
    return list(dict.fromkeys(names))


def _error_exit(exc: FullmirrorError) -> int:
    """The one-line message and exit code for a failure that ends a command."""
    if isinstance(exc, LockHeld):
        return _fail(EXIT_LOCKED, str(exc))
    if isinstance(exc, StorageError):
        return _fail(EXIT_STORAGE, f"{exc} (nothing half-written is served; run again)")
    if isinstance(exc, StateError):
        return _fail(EXIT_STATE, f"corrupt state: {exc}")
    if isinstance(exc, UpstreamError):
        return _fail(
            EXIT_UPSTREAM,
            f"upstream unusable: {exc}; check [mirror] master and the network, then run again",
        )
    return _fail(EXIT_PARTIAL, str(exc))


def _locked(config: Config, work: Callable[[], int]) -> int:
    """Run ``work`` holding the mirror's lock, mapping failures to exit codes as ``mirror``."""
    try:
        with Storage(config.directory).lock():
            return work()
    except FullmirrorError as exc:
        return _error_exit(exc)


def _verify(config: Config, args: argparse.Namespace) -> int:
    from fullmirror.verify import Verifier

    if not (config.directory / "state.db").exists():
        return _fail(EXIT_CONFIG, f"{config.directory} holds no mirror yet; run `mirror` first")
    storage = Storage(config.directory)
    catalog = Catalog(config.directory / "state.db")
    upstream = None
    if args.repair and not args.dry_run:
        from fullmirror.upstream import open_upstream

        upstream = open_upstream(config)
    try:
        report = Verifier(
            config,
            storage,
            catalog,
            upstream,
            full_hash=args.hash,
            repair=args.repair,
            delete=args.delete,
            dry_run=args.dry_run,
            progress=_progress(args.quiet, unit="hashed" if args.hash else "checked"),
        ).run()
    finally:
        if upstream is not None:
            upstream.close()
        catalog.close()
    would = "would " if args.dry_run else ""
    for rel in report.missing:
        print(f"missing: {rel}")
    for rel in report.corrupt:
        print(f"corrupt: {rel}")
    for rel in report.repaired:
        print(f"repaired: {rel}")
    for rel in report.unrepaired:
        print(f"not repaired: {rel}" + (" (use --repair)" if not args.repair else ""))
    for rel in report.pages_bad:
        print(f"page differs from the records: {rel}")
    for rel in report.unreferenced:
        action = f"{would}delete" if args.delete else "unreferenced"
        print(f"{action}: {rel}")
    if args.dry_run and args.repair:
        for rel in [*report.missing, *report.corrupt]:
            print(f"would repair: {rel}")
        for rel in report.pages_bad:
            print(f"would rewrite: {rel}")
    if not args.quiet:
        print(
            f"verify: checked {report.files_checked} files in {report.projects_checked} "
            f"projects ({report.projects_skipped} skipped, verified by an interrupted pass), "
            f"{len(report.missing)} missing, {len(report.corrupt)} corrupt, "
            f"{len(report.repaired)} repaired, {len(report.pages_bad)} pages differ "
            f"({report.pages_fixed} rewritten), {len(report.unreferenced)} unreferenced, "
            f"{report.deleted} deleted in {report.seconds:.1f} s",
            flush=True,
        )
    if report.problems_left:
        return _fail(
            EXIT_PARTIAL,
            "the mirror has problems this run did not fix"
            + (" (dry run)" if args.dry_run else "; see above, and --repair / --delete"),
        )
    return EXIT_OK


def _delete(config: Config, args: argparse.Namespace) -> int:
    from fullmirror.delete import delete_projects

    if not (config.directory / "state.db").exists():
        return _fail(EXIT_CONFIG, f"{config.directory} holds no mirror yet; nothing to delete")
    storage = Storage(config.directory)
    catalog = Catalog(config.directory / "state.db")
    try:
        report = delete_projects(config, storage, catalog, args.projects, dry_run=args.dry_run)
    finally:
        catalog.close()
    for raw in report.unknown:
        log.warning("%s: not in this mirror, nothing deleted", raw)
    if not args.quiet:
        verb = "would delete" if args.dry_run else "deleted"
        names = ", ".join(report.removed) or "nothing"
        print(
            f"delete: {verb} {len(report.removed)} projects ({names}), "
            f"{report.files_removed} files",
            flush=True,
        )
    return EXIT_PARTIAL if report.unknown else EXIT_OK


def _summary(r: Report) -> str:
    return (
        f"mirror: {r.projects_synced} projects synced, {r.projects_removed} removed, "
        f"{r.files_downloaded} files ({commands.human_size(r.bytes_downloaded)}) downloaded, "
        f"{r.files_removed} files removed, {r.projects_filtered} filtered out, "
        f"{len(r.failures)} failed; "
        f"serial {r.serial_from} -> {r.serial_to} in {r.seconds:.1f} s"
    )


def _write_diff_file(config: Config, written: list[str]) -> None:
    target = Path(config.diff_file)
    if target.is_dir():
        target = target / "mirrored-files"
    if config.diff_append_epoch:
        target = target.with_name(f"{target.name}-{int(time.time())}")
    Storage(target.parent).write_if_changed(
        target.name, "".join(f"{w}\n" for w in written).encode()
    )


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"fullmirror: {message}\n")
    sys.stderr.flush()
    return code


def _setup_logging(*, verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; that is -v material.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


class _TqdmProgress:
    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: tqdm[Never] | None = None
        self._lock = threading.Lock()
        self._bytes = 0

    def start(self, total: int) -> None:
        self._bar = self._tqdm(total=total, unit="proj", dynamic_ncols=True, file=sys.stderr)

    def advance(self, name: str) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"{commands.human_size(self._bytes)}", refresh=False)

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _LogProgress:
    """One line every ``every`` seconds when nobody watches a terminal (cron, journald)."""

    def __init__(self, every: float = 30.0, unit: str = "downloaded") -> None:
        self._every = every
        self._unit = unit
        self._total = 0
        self._done = 0
        self._bytes = 0
        self._next = time.monotonic() + every
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        self._total = total

    def advance(self, name: str) -> None:
        self._done += 1
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self._every
            log.info(
                "progress: %d/%d projects, %s %s",
                self._done,
                self._total,
                commands.human_size(self._bytes),
                self._unit,
            )

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def close(self) -> None:
        pass


def _progress(quiet: bool, unit: str = "downloaded") -> _TqdmProgress | _LogProgress:
    if not quiet and sys.stderr.isatty():
        return _TqdmProgress()
    return _LogProgress(unit=unit)
