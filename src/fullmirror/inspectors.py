"""``verify``'s checks spread over child processes, each over its own share of the catalog.

A verify pass over a mirror of small files is CPU-bound in one process (opening, reading and
hashing files, rendering pages to compare), and threads only trade the GIL back and forth. Each
child here is a fresh interpreter (``python -m fullmirror.inspectors``) that imports only what
checking needs, reads its share of the projects from the state database itself, and sends what
it finds (:class:`~fullmirror.inspection.Finding`) back pickled over its stdout. The parent
reports, repairs and records, exactly as when it checks alone.

A child only reads. It ignores Ctrl-C (the parent handles it), is killed by the kernel if the
parent dies, and a child that ends without its final message fails the pass at once; the pass
is resumable, so nothing is lost but the time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fullmirror.catalog import Catalog
from fullmirror.errors import FullmirrorError, InspectorDied
from fullmirror.inspection import Finding, InspectOptions, Inspector
from fullmirror.processes import die_with_parent
from fullmirror.storage import Storage

log = logging.getLogger("fullmirror")

#: A child sends its findings this many at a time, or after this long, whichever comes first
#: (the parent's progress and catalog marks follow them).
_BATCH = 100
_BATCH_SECONDS = 0.25


@dataclass(frozen=True)
class InspectSpec:
    """What a child needs; crosses to it pickled on its stdin."""

    root: str
    #: (k, n): the k-th of n shares of the catalog.
    share: tuple[int, int]
    options: InspectOptions
    skip_sound: bool
    parent_pid: int


class Inspectors:
    """``count`` child processes checking the mirror at ``root``; :meth:`findings` yields what
    they find as it arrives. Use as a context manager: leaving it stops any child still
    running."""

    def __init__(
        self, root: Path, count: int, options: InspectOptions, *, skip_sound: bool
    ) -> None:
        self._messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._procs: list[subprocess.Popen[bytes]] = []
        env = dict(os.environ)
        # The child must import this very fullmirror, however the parent found it.
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            for k in range(count):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "fullmirror.inspectors"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                self._procs.append(proc)
                spec = InspectSpec(str(root), (k, count), options, skip_sound, os.getpid())
                assert proc.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    # A child that died at once is reported by its reader below.
                    proc.stdin.write(pickle.dumps(spec))
                    proc.stdin.close()
                threading.Thread(
                    target=self._read, args=(proc,), name=f"inspector-{k}", daemon=True
                ).start()
        except OSError as exc:
            self.close()
            raise InspectorDied(0, None, f"cannot start: {exc.strerror or exc}") from exc

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def findings(self) -> Iterator[Finding]:
        """Every child's findings, as they arrive; raises the first failure of any child."""
        finished: set[int] = set()
        ended = 0
        while ended < len(self._procs):
            message = self._messages.get()
            kind = message[0]
            if kind == "findings":
                yield from message[1]
            elif kind == "final":
                finished.add(message[1])
            elif kind == "broken":
                raise message[1]
            elif kind == "crash":
                log.error("verify process %d crashed:\n%s", message[1], message[2])
                detail = message[2].strip().splitlines()[-1]
                raise InspectorDied(message[1], None, f"crashed: {detail}")
            else:  # "ended"
                ended += 1
                if message[1] not in finished:
                    raise InspectorDied(message[1], message[2])

    def close(self) -> None:
        """Stop every child still running and reap them all."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
        for proc in self._procs:
            proc.wait()

    def __enter__(self) -> Inspectors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        """A reader thread per child: its messages to the queue, then how it ended."""
        out = proc.stdout
        assert out is not None
        with out:
            while True:
                try:
                    message = pickle.load(out)
                except (EOFError, OSError, pickle.UnpicklingError):
                    break
                self._messages.put(message)
        self._messages.put(("ended", proc.pid, proc.wait()))


# -- the child ----------------------------------------------------------------------------


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def main() -> int:
    """A child's life: read the spec, check its share, send the findings, say it finished."""
    # The findings travel on the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec: InspectSpec = pickle.load(sys.stdin.buffer)
    die_with_parent(spec.parent_pid)
    pid = os.getpid()
    try:
        storage = Storage(Path(spec.root), fsync=False)
        storage.hold_as_helper()
        catalog = Catalog(Path(spec.root) / "state.db")
        try:
            inspector = Inspector(storage, spec.options)
            batch: list[Finding] = []
            sent = time.monotonic()
            pages = catalog.iter_pages(spec.share)
            for finding in inspector.run(pages, skip_sound=spec.skip_sound):
                batch.append(finding)
                if len(batch) >= _BATCH or time.monotonic() - sent > _BATCH_SECONDS:
                    _send(out, ("findings", batch))
                    batch = []
                    sent = time.monotonic()
            if batch:
                _send(out, ("findings", batch))
        finally:
            catalog.close()
    except BrokenPipeError:
        return 1  # the parent is gone
    except FullmirrorError as exc:
        _send(out, ("broken", exc))
        return 1
    except Exception:
        _send(out, ("crash", pid, traceback.format_exc()))
        return 1
    _send(out, ("final", pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
