"""The limits fullmirror is compared with, each run as its own child process by ``run.py``.

``python benchmarks/baselines.py list URL OUT`` writes the URL and size of every file (and
``.metadata``) the upstream's PEP 691 pages link, one ``url size`` line each; untimed.
``python benchmarks/baselines.py fetch LIST DIR WORKERS`` downloads them all with a pool of
``WORKERS`` threads sharing one httpx client, writing each body to a file under DIR (no hashing,
no fsync): the throughput a minimal parallel client gets from this upstream on this machine.
``python benchmarks/baselines.py curl LIST DIR WORKERS`` does the same with ``curl --parallel``.
``python benchmarks/baselines.py sha256 DIR THREADS`` reads and sha256-hashes every file under
DIR with ``THREADS`` threads (hashlib releases the GIL): the floor for ``verify --hash``.
``python benchmarks/baselines.py write-cost DIR COUNT SIZE`` times writing COUNT files of SIZE
bytes plainly, then crash-safely (temp file, fsync, rename): what durability costs on this disk.
Each prints one JSON line: files, bytes, seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_CHUNK = 1 << 20
_JSON = "application/vnd.pypi.simple.v1+json"


def list_files(base: str, out: Path) -> None:
    import httpx

    headers = {"Accept": _JSON}
    with httpx.Client(timeout=60, headers=headers, follow_redirects=True) as client:
        root = client.get(f"{base}/simple/").json()
        names = [p["name"] for p in root["projects"]]

        def page(name: str) -> list[str]:
            response = client.get(f"{base}/simple/{name}/")
            response.raise_for_status()
            data = response.json()
            lines = []
            for entry in data["files"]:
                url = str(httpx.URL(f"{base}/simple/{name}/").join(entry["url"]))
                lines.append(f"{url} {entry['size']}")
                if entry.get("core-metadata"):
                    lines.append(f"{url}.metadata 0")
            return lines

        with ThreadPoolExecutor(8) as pool:
            rows = [line for lines in pool.map(page, names) for line in lines]
    out.write_text("\n".join(rows) + "\n")


def _urls(listing: Path) -> list[str]:
    return [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]


def fetch(listing: Path, target: Path, workers: int) -> dict[str, float]:
    import httpx

    urls = _urls(listing)
    target.mkdir(parents=True, exist_ok=True)
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    started = time.perf_counter()
    with httpx.Client(timeout=60, limits=limits) as client:

        def one(item: tuple[int, str]) -> int:
            number, url = item
            size = 0
            with client.stream("GET", url) as response, open(target / str(number), "wb") as f:
                response.raise_for_status()
                for chunk in response.iter_raw(_CHUNK):
                    f.write(chunk)
                    size += len(chunk)
            return size

        with ThreadPoolExecutor(workers) as pool:
            total = sum(pool.map(one, enumerate(urls)))
    return {"files": len(urls), "bytes": total, "seconds": time.perf_counter() - started}


def curl(listing: Path, target: Path, workers: int) -> dict[str, float]:
    urls = _urls(listing)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
        for number, url in enumerate(urls):
            config.write(f'url = "{url}"\noutput = "{target / str(number)}"\n')
    started = time.perf_counter()
    try:
        subprocess.run(
            ["curl", "-s", "--fail", "--parallel", "--parallel-max", str(workers), "-K",
             config.name],
            check=True,
        )  # fmt: skip
    finally:
        os.unlink(config.name)
    seconds = time.perf_counter() - started
    total = sum(os.stat(target / str(n)).st_size for n in range(len(urls)))
    return {"files": len(urls), "bytes": total, "seconds": seconds}


def sha256_tree(root: Path, threads: int) -> dict[str, float]:
    paths = [Path(folder) / name for folder, _, names in os.walk(root) for name in names]
    started = time.perf_counter()

    def one(path: Path) -> int:
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        digest.hexdigest()
        return size

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(one, paths))
    return {"files": len(paths), "bytes": total, "seconds": time.perf_counter() - started}


def write_cost(target: Path, count: int, size: int) -> dict[str, float]:
    """``count`` files of ``size`` bytes written plainly, then each to a temp file + fsync +
    rename (what a crash-safe mirror does), in fresh directories; seconds of each."""
    data = os.urandom(size)
    result: dict[str, float] = {"files": count, "bytes": count * size}
    for label, durable in (("plain_s", False), ("fsync_rename_s", True)):
        folder = target / label
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for number in range(count):
            final = folder / f"{number}.whl"
            temp = folder / f".{number}.whl.part" if durable else final
            with open(temp, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            if durable:
                os.rename(temp, final)
        result[label] = time.perf_counter() - started
    return result


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "list":
        list_files(argv[1].rstrip("/"), Path(argv[2]))
        return 0
    if command == "fetch":
        result = fetch(Path(argv[1]), Path(argv[2]), int(argv[3]))
    elif command == "curl":
        result = curl(Path(argv[1]), Path(argv[2]), int(argv[3]))
    elif command == "write-cost":
        result = write_cost(Path(argv[1]), int(argv[2]), int(argv[3]))
    elif command == "sha256":
        result = sha256_tree(Path(argv[1]), int(argv[2]))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
