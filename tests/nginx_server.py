"""Start the real nginx on 127.0.0.1 with contrib/nginx.conf, as an operator would.

Only the ``root`` and ``listen`` lines of the shipped file change; everything else in it is
what the operator gets. The wrapper around it is the smallest main configuration nginx needs
to run unprivileged-style from a temporary folder (pid, logs and temp paths of its own), plus
an access log that records the Content-Type sent, so tests can see what each client received.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTRIB = REPO / "contrib" / "nginx.conf"
_SEARCH = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str:
    found = shutil.which("nginx") or next((p for p in _SEARCH if os.access(p, os.X_OK)), None)
    if found is None:
        raise RuntimeError("nginx is not installed: run .ci/run, or apt-get install nginx")
    return found


def site_config(web: Path, port: int) -> str:
    """contrib/nginx.conf with its root and listen lines pointed at ``web`` and ``port``."""
    text = CONTRIB.read_text()
    text, roots = re.subn(r"(?m)^(\s*)root\s+[^;]+;", rf"\g<1>root {web};", text)
    text, listens = re.subn(
        r"(?m)^(\s*)listen\s+[^;]+;", rf"\g<1>listen 127.0.0.1:{port};", text, count=1
    )
    assert roots == 1 and listens == 1, "contrib/nginx.conf must have one root and listen line"
    return text


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    status: int
    content_type: str
    accept: str


@dataclass
class Nginx:
    url: str
    folder: Path

    def requests(self, since: int = 0) -> list[Logged]:
        """Logged requests, skipping the first ``since`` (see :meth:`mark`)."""
        rows = []
        log = self.folder / "access.log"
        for line in log.read_text().splitlines()[since:] if log.exists() else []:
            method, path, status, ctype, accept = line.split("\t")
            rows.append(Logged(method, path, int(status), ctype, accept))
        return rows

    def mark(self) -> int:
        return len(self.requests())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _main_config(folder: Path) -> str:
    # Workers of a root master drop to "nobody", which cannot read pytest's private temp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
{temp}
    log_format fullmirror_test
        "$request_method\\t$uri\\t$status\\t$sent_http_content_type\\t$http_accept";
    access_log {folder / "access.log"} fullmirror_test;
    include {folder / "site.conf"};
}}
"""


@contextmanager
def serve_nginx(web: Path, folder: Path) -> Iterator[Nginx]:
    """Run nginx over ``web`` until the block ends; its files live in ``folder``."""
    binary = find_nginx()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.conf").write_text(_main_config(folder))
    last_error = ""
    for _attempt in range(5):
        port = _free_port()
        (folder / "site.conf").write_text(site_config(web, port))
        test = subprocess.run(
            [binary, "-t", "-p", str(folder), "-c", "main.conf"], capture_output=True, text=True
        )
        assert test.returncode == 0, test.stderr
        with (folder / "stderr.log").open("w") as stderr:
            process = subprocess.Popen(
                [binary, "-p", str(folder), "-c", "main.conf"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        if _wait_listening(port, process):
            try:
                yield Nginx(f"http://127.0.0.1:{port}", folder)
            finally:
                process.terminate()
                process.wait(timeout=10)
            return
        process.kill()
        process.wait(timeout=10)
        last_error = (folder / "stderr.log").read_text()
    raise RuntimeError(f"nginx did not start: {last_error}")


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
