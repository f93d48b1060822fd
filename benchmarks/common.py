"""Shared plumbing of the benchmark scripts: the benchmark venv, the fake upstream process, and
running a child process while measuring its wall time, CPU time and peak RSS.

Only the standard library is used here, so ``run.py`` and ``scale.py`` run with the project's own
venv (the one that has fullmirror installed). bandersnatch, matplotlib and the profilers live in a
separate venv under ``benchmarks/.work/venv`` made with pyenv's Python 3.12.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
VENV = WORK / "venv"
REQUIREMENTS = HERE / "requirements.txt"
RESULTS = HERE / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PYENV_VERSION = "3.12.1"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the benchmark venv (bandersnatch, matplotlib, py-spy, pyinstrument) --------------------------


def python312() -> Path:
    """pyenv's Python 3.12.1 (bandersnatch 8 needs >= 3.12)."""
    override = os.environ.get("BENCH_PYTHON312")
    if override:
        return Path(override)
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(
                ["pyenv", "root"], check=True, capture_output=True, text=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            root = str(Path.home() / ".pyenv")
    return Path(root) / "versions" / PYENV_VERSION / "bin" / "python3.12"


def bench_venv() -> Path:
    """Create or refresh ``benchmarks/.work/venv``; return its bin directory."""
    stamp = VENV / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    bindir = VENV / "bin"
    if stamp.exists() and stamp.read_text() == wanted and (bindir / "bandersnatch").exists():
        return bindir
    python = python312()
    if not python.exists():
        sys.exit(
            f"benchmarks need {python} (pyenv install {PYENV_VERSION}, or set BENCH_PYTHON312)"
        )
    log(f"creating {VENV} with {python} and installing {REQUIREMENTS.name}")
    if not (bindir / "python").exists():
        subprocess.run([str(python), "-m", "venv", str(VENV)], check=True)
    pip = [str(bindir / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return bindir


def precompile() -> None:
    """Compile fullmirror's modules to ``__pycache__`` once.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on some CI machines), an editable install would
    otherwise compile every module from source in every measured process, while bandersnatch's
    site-packages come precompiled by pip.
    """
    import fullmirror

    package = str(Path(fullmirror.__file__).parent)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=False, env=env)


def tool_version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (
        (done.stdout or done.stderr).strip().splitlines()[-1]
        if (done.stdout or done.stderr)
        else "?"
    )


# -- measuring a child --------------------------------------------------------------------------


@dataclasses.dataclass
class Measure:
    wall: float
    user: float
    sys: float
    maxrss_mb: float
    rc: int
    #: Peak of the summed RSS of the command and all its descendants, sampled every 0.2 s.
    tree_mb: float = 0.0
    #: Bytes the command and its waited-for descendants read from and wrote to the block
    #: device (wait4's ru_inblock/ru_oublock): page-cache hits do not count, so a read figure
    #: well above zero means the run waited on the disk for what it looked up.
    disk_read_mb: float = 0.0
    disk_write_mb: float = 0.0

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run_measured(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 7200,
) -> Measure:
    """Run ``argv`` to completion; its wall time and CPU (user+sys, its waited-for child
    processes included) via wait4, and its memory: the peak RSS of its largest process and the
    peak of the summed RSS of all its processes (sampled).

    Output goes to ``log_path`` (appended), never to a pipe a full buffer could block.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The previous command's dirty pages (a whole mirror written, or one removed) would
    # otherwise be written back on this command's clock.
    os.sync()
    with open(log_path, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        killer = threading.Timer(timeout, lambda: _kill(proc.pid))
        killer.start()
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            sampler.stop()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.write(f"[rc {proc.returncode}, {wall:.2f} s]\n".encode())
    return Measure(
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        # The sampler's figure when it saw the process at all (see _TreeSampler).
        maxrss_mb=(sampler.largest or usage.ru_maxrss * 1024) / (1 << 20),
        rc=proc.returncode,
        tree_mb=sampler.peak / (1 << 20),
        disk_read_mb=usage.ru_inblock * 512 / (1 << 20),
        disk_write_mb=usage.ru_oublock * 512 / (1 << 20),
    )


class _TreeSampler(threading.Thread):
    """Memory of a process and its descendants, sampled every 50 ms from ``/proc``: the largest
    sum of their resident sets, and the largest single peak (``VmHWM``, which the kernel keeps
    between samples). wait4's ``ru_maxrss`` is not used for this: a child started with vfork
    inherits the harness's own peak into it."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._done = threading.Event()
        self.peak = 0
        self.largest = 0

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while True:
            total = 0
            for pid in self._tree():
                resident, high = _memory(pid)
                total += resident
                self.largest = max(self.largest, high)
            self.peak = max(self.peak, total)
            if self._done.wait(0.05):
                return

    def _tree(self) -> list[int]:
        found, todo = [], [self._pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return found


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes; zeros once it is gone."""
    resident = high = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    resident = int(line.split()[1]) << 10
                elif line.startswith("VmHWM:"):
                    high = int(line.split()[1]) << 10
    except (OSError, ValueError):
        pass
    return resident, high


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
            files += 1
    return files, size


def fullmirror_conf(
    directory: Path, master: str, api_method: str, settings: dict[str, object]
) -> str:
    """A fullmirror config for the fake upstream at ``master`` (plain HTTP, no XML-RPC
    delay); ``settings`` adds ``[mirror]`` keys, spelled as in the config file."""
    lines = [
        "[mirror]",
        f"directory = {directory}",
        f"master = {master}",
        "allow-non-https = true",
        f"api-method = {api_method}",
        "xmlrpc-delay = 0",
        *(f"{key} = {value}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def metadata_conf(directory: Path, master: str, api_method: str = "xmlrpc") -> str:
    """The config of a metadata-only mirror (the scale corpus): pages and no release files."""
    settings: dict[str, object] = {"release-files": "false", "json": "false", "workers": 10}
    return fullmirror_conf(directory, master, api_method, settings)


def page_cache(root: Path, *, warm: bool) -> int:
    """Put every file below ``root`` into the page cache (``warm``: read it all) or out of it
    (``posix_fadvise(DONTNEED)`` after a sync, so the pages are clean and can go); bytes seen.

    This VM's kernel gives page cache back within minutes whatever the free memory (a 500 MB
    file written and left alone went from 815 MB cached to 480 MB in 50 s, with 18 GB free),
    so a command's cache state depends on what ran just before it. ``verify`` and the sha256
    baseline each get the same state first, instead of the baseline reading what verify just
    brought in."""
    if not warm:
        os.sync()
    buffer = bytearray(1 << 20)
    seen = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                if warm:
                    while count := os.readv(fd, [buffer]):
                        seen += count
                else:
                    seen += os.fstat(fd).st_size
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return seen


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def set_aside(path: Path, bin_dir: Path) -> None:
    """Move ``path`` into ``bin_dir`` instead of removing it now (see ``empty_bin``).

    On this machine's filesystem (ext4 without a journal) creating a file or folder skips every
    free inode freed in the last few minutes (the kernel's ``recently_deleted`` check), so a
    sync that starts right after the previous tool's mirror was removed pays for that removal:
    ``perf`` showed inode allocation at 23 % of a sync's CPU, and its system time went from
    2.5 s to 3-9 s. A first sync in the field does not follow the removal of 20,000 files."""
    if not path.exists():
        return
    bin_dir.mkdir(parents=True, exist_ok=True)
    path.rename(bin_dir / f"{path.name}-{time.monotonic_ns()}")


def empty_bin(bin_dir: Path) -> None:
    """Remove what :func:`set_aside` kept, once nothing more is measured."""
    remove_tree(bin_dir)


# -- the fake upstream, in its own process -------------------------------------------------------


_READY = re.compile(r"fake PyPI serving (\d+) projects at (\S+) \(serial (\d+)\)")


class Upstream:
    """``python -m fullmirror fakepypi serve`` in a child process, so its CPU is its own."""

    def __init__(
        self,
        *,
        projects: int,
        seed: int,
        log_path: Path,
        file_size: int = 0,
        file_size_max: int = 0,
        byte_cache_mib: int | None = None,
        synthetic: bool = False,
        warm: bool = True,
        faults: tuple[str, ...] = (),
    ) -> None:
        argv = [
            sys.executable, "-m", "fullmirror", "fakepypi", "serve",
            "--projects", str(projects), "--seed", str(seed), "--port", "0",
            "--file-size", str(file_size), "--file-size-max", str(file_size_max),
        ]  # fmt: skip
        if byte_cache_mib is not None:
            argv += ["--byte-cache", str(byte_cache_mib)]
        if synthetic:
            argv.append("--synthetic-files")
        if warm:
            argv.append("--warm")
        for fault in faults:
            argv += ["--fault", fault]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _READY.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"fake upstream did not start: {line!r} (see {log_path})")
        self.startup_seconds = time.perf_counter() - started
        self.projects = int(match.group(1))
        self.url = match.group(2)
        self.serial = int(match.group(3))

    def cpu(self) -> float:
        """User + system CPU seconds the upstream process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _admin(self, method: str, path: str, payload: object = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def take_stats(self) -> dict[str, int]:
        """The request counters since the last call (they are reset)."""
        return dict(self._admin("POST", "/_fake/stats", {}))

    def random_changes(self, n: int, seed: int) -> int:
        """Apply ``n`` seeded random events; returns the number of distinct projects touched."""
        answer = self._admin(
            "POST", "/_fake/change", {"op": "random_changes", "n": n, "seed": seed}
        )
        return len(answer["result"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
