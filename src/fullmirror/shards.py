"""Project syncs spread over child processes, so a large run uses every core.

A first sync of many small projects is CPU-bound in Python: HTTP parsing, hashing, page
rendering, SQLite. One process does all of that on one core however many threads it runs, and
its threads spend a good part of it handing the GIL to one another (``benchmarks/README.md``
has the profiles). Each shard is a spawned child with its own HTTP client, state-database
connection, view of the mirror directory and download pool. The parent hands out projects one
at a time over a queue and gets back what happened to each, so the order of work, the counting,
the checkpoint and the report stay in the parent exactly as they are with threads.

The run's concurrency is kept: ``workers`` is split between the shards, so upstream sees no
more connections than with one process. A child ignores Ctrl-C (the parent handles it), is
killed by the kernel if the parent dies, and a child that dies anyway fails the run at once
instead of leaving it waiting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from packaging.utils import NormalizedName

from fullmirror.catalog import Catalog, Pending
from fullmirror.config import Config
from fullmirror.errors import FullmirrorError, ShardDied
from fullmirror.processes import die_with_parent
from fullmirror.project import Counters, ProjectSync
from fullmirror.storage import Storage
from fullmirror.upstream import open_upstream

log = logging.getLogger("fullmirror")


@dataclass(frozen=True)
class ShardSpec:
    """What a child needs to build its own worker; crosses the process boundary pickled."""

    config: Config
    record_writes: bool
    log_level: int
    parent_pid: int


@dataclass(frozen=True)
class ShardTotals:
    """What the children did over the run, for the parent's report and diff-file."""

    counters: Counters
    requests: dict[str, int]
    written: list[str]


class ShardPool:
    """``count`` child processes syncing the projects given to :meth:`submit`."""

    def __init__(
        self, spec: ShardSpec, count: int, *, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        threads = max(1, -(-spec.config.workers // count))
        spec = dataclasses.replace(spec, config=dataclasses.replace(spec.config, workers=threads))
        self._threads = threads
        self._on_bytes = on_bytes
        context = multiprocessing.get_context("spawn")
        self._jobs: multiprocessing.Queue[Pending | None] = context.Queue()
        self._results: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
        self._futures: dict[NormalizedName, Future[str]] = {}
        self._lock = threading.Lock()
        self._counters = Counters()
        self._requests: dict[str, int] = {}
        self._written: list[str] = []
        self._broken: FullmirrorError | None = None
        self._procs = [
            context.Process(
                target=_child_main,
                args=(spec, self._jobs, self._results),
                name=f"fullmirror-shard-{n}",
                daemon=True,
            )
            for n in range(count)
        ]
        for proc in self._procs:
            proc.start()
        self._reader = threading.Thread(target=self._read, name="shard-results", daemon=True)
        self._reader.start()

    def submit(self, item: Pending) -> Future[str]:
        future: Future[str] = Future()
        with self._lock:
            if self._broken is not None:
                future.set_exception(self._broken)
                return future
            self._futures[item.name] = future
        self._jobs.put(item)
        return future

    def close(self, *, clean: bool = True) -> ShardTotals:
        """Let the children finish what they hold, then collect what they did; not ``clean``
        (the parent is failing or interrupted): stop them now instead."""
        if not clean:
            self.abort()
            return ShardTotals(Counters(), {}, [])
        for _ in range(len(self._procs) * self._threads):
            self._jobs.put(None)
        self._reader.join()
        for proc in self._procs:
            proc.join()
        self._jobs.close()
        self._results.close()
        if self._broken is not None:
            # Even with every outcome in: a child that did not report its counts and written
            # files would leave the summary and the diff-file short.
            raise self._broken
        return ShardTotals(self._counters, dict(self._requests), list(self._written))

    def abort(self) -> None:
        """Stop the children now (the parent is being interrupted or failed)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join()
        self._fail_all(None)
        self._reader.join(timeout=5)

    # -- the parent's reader thread ----------------------------------------------------------

    def _read(self) -> None:
        finished: set[int] = set()
        while len(finished) < len(self._procs):
            try:
                message = self._results.get(timeout=0.5)
            except queue.Empty:
                died = self._died(finished)
                if died is not None and self._results.empty():
                    self._fail_all(died)
                    return
                continue
            except (EOFError, OSError, ValueError):
                self._fail_all(self._died(finished) or ShardDied(0, None))
                return
            kind = message[0]
            if kind == "log":
                log.log(message[1], "%s", message[2])
            elif kind == "final":
                _, pid, counters, requests, written = message
                finished.add(pid)
                self._counters = self._counters + counters
                for name, n in requests.items():
                    self._requests[name] = self._requests.get(name, 0) + n
                self._written += written
            elif kind == "broken":
                self._fail_all(message[1])
            else:
                self._settle(kind, message[1], message[2], message[3])

    def _died(self, finished: set[int]) -> ShardDied | None:
        """A child that ended without its final report, if there is one."""
        for proc in self._procs:
            if proc.exitcode is not None and proc.pid is not None and proc.pid not in finished:
                return ShardDied(proc.pid, proc.exitcode)
        return None

    def _settle(self, kind: str, name: NormalizedName, value: Any, fetched: int) -> None:
        if fetched and self._on_bytes is not None:
            self._on_bytes(fetched)
        with self._lock:
            future = self._futures.pop(name, None)
        if future is None:
            return
        if kind == "done":
            future.set_result(value)
        elif kind == "error":
            future.set_exception(value)
        else:
            future.set_exception(RuntimeError(f"syncing {name} crashed in a child:\n{value}"))

    def _fail_all(self, error: FullmirrorError | None) -> None:
        with self._lock:
            if error is not None and self._broken is None:
                self._broken = error
            error = self._broken or ShardDied(0, None)
            futures, self._futures = self._futures, {}
        for future in futures.values():
            future.set_exception(error)


# -- the child ------------------------------------------------------------------------------


class _Forward(logging.Handler):
    """Sends the child's log lines to the parent, which logs them with its own handlers."""

    def __init__(self, results: multiprocessing.Queue[tuple[Any, ...]]) -> None:
        super().__init__()
        self._results = results

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self._results.put(("log", record.levelno, record.getMessage()))


class _Meter:
    """Bytes downloaded since the last report, from every download thread of the child."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._n += n

    def take(self) -> int:
        with self._lock:
            n, self._n = self._n, 0
        return n


def _child_main(
    spec: ShardSpec,
    jobs: multiprocessing.Queue[Pending | None],
    results: multiprocessing.Queue[tuple[Any, ...]],
) -> None:
    die_with_parent(spec.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("fullmirror")
    logger.handlers[:] = [_Forward(results)]
    logger.setLevel(spec.log_level)
    logger.propagate = False
    config = spec.config
    try:
        storage = Storage(config.directory)
        storage.hold_as_helper()
        storage.record_writes = spec.record_writes
        catalog = Catalog(config.directory / "state.db")
    except FullmirrorError as exc:
        # Its share of the stop markers is left to the other children; the queue goes with
        # the pool.
        results.put(("broken", exc))
        results.put(("final", os.getpid(), Counters(), {}, []))
        return
    upstream = open_upstream(config)
    meter = _Meter()
    worker = ProjectSync(config, storage, catalog, upstream, on_bytes=meter.add)
    threads = [
        threading.Thread(target=_serve, args=(worker, jobs, results, meter), daemon=True)
        for _ in range(config.workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    worker.close()
    upstream.close()
    catalog.close()
    results.put(("final", os.getpid(), worker.counters(), dict(upstream.requests), storage.written))
    results.close()
    results.join_thread()


def _serve(
    worker: ProjectSync,
    jobs: multiprocessing.Queue[Pending | None],
    results: multiprocessing.Queue[tuple[Any, ...]],
    meter: _Meter,
) -> None:
    while (item := jobs.get()) is not None:
        try:
            outcome = worker.attempt(item)
        except FullmirrorError as exc:
            results.put(("error", item.name, exc, meter.take()))
        except BaseException:
            results.put(("crash", item.name, traceback.format_exc(), meter.take()))
        else:
            results.put(("done", item.name, outcome, meter.take()))
