"""``fullmirror demo``: a bundled fake PyPI on 127.0.0.1, mirrored into a local folder.

It runs the same code path cron runs (config file, lock, sync, pages), then tells the user how
to install from the result with pip and uv, with no network beyond the loopback interface.
"""

from __future__ import annotations

from pathlib import Path

DEMO_PROJECT = "demo-app"


def write_demo_config(folder: Path, master: str) -> Path:
    """A config for a mirror in ``folder/mirror`` of the fake upstream at ``master``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "fullmirror.conf"
    config.write_text(
        "; written by `fullmirror demo`: a mirror of the bundled fake PyPI\n"
        "[mirror]\n"
        f"directory = {folder / 'mirror'}\n"
        f"master = {master}\n"
        "; the fake upstream speaks plain http on 127.0.0.1\n"
        "allow-non-https = true\n"
        "xmlrpc-delay = 0\n"
        "workers = 8\n"
    )
    return config


def install_hint(folder: Path) -> str:
    index = (folder / "mirror" / "web" / "simple").resolve().as_uri()
    config = (folder / "fullmirror.conf").resolve()
    served = "http://127.0.0.1:8080/simple/"
    return (
        f"serve the mirror (Ctrl-C stops it):\n"
        f"  fullmirror -c {config} serve\n"
        f"then, in another terminal, install from it:\n"
        f"  pip install --index-url {served} {DEMO_PROJECT}\n"
        f"  uv pip install --index-url {served} {DEMO_PROJECT}\n"
        f"or install with no server at all:\n"
        f"  pip install --index-url {index}/ {DEMO_PROJECT}"
    )
