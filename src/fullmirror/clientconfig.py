"""Ready-to-paste set-up of pip, uv, pdm, poetry and pip-tools for one mirror URL.

Pure: a URL in, text out. :func:`index_url` turns what a user typed (often the server root)
into the index URL clients need (``…/simple/``); :func:`client_sections` gives one
:class:`Section` per tool; :func:`client_config` joins them for printing.

Plain ``http://`` needs an explicit opt-in in the tools built on pip's trust rules (pip itself,
pip-tools, pdm); uv and poetry fetch over http without one. uv's ``allow-insecure-host``
only switches off certificate checks, so it is offered for https, not for http.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from fullmirror.errors import ConfigError

__all__ = ["Section", "client_config", "client_sections", "index_url"]


@dataclass(frozen=True, slots=True)
class Section:
    """The set-up of one tool: a title and the text to paste, comments included."""

    tool: str
    text: str


def index_url(url: str) -> str:
    """The index URL clients need: http(s), a host, a path ending in ``/simple/`` or below it.

    A URL without a ``simple`` path component is taken as the server's root (or a prefix on it)
    and gets ``simple/`` appended; any other path is kept. Raises :class:`ConfigError` for
    anything that is not an http(s) URL with a host.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ConfigError("", f"not a URL: {url!r} ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ConfigError("", f"not an http(s) URL with a host: {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError("", f"an index URL has no query or fragment: {url!r}")
    path = parts.path
    if "simple" not in path.split("/"):
        path = path.rstrip("/") + "/simple"
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def _host(url: str) -> str:
    # Without the port: pip then trusts the host on every port, which is what a mirror needs.
    host = urlsplit(url).hostname or ""
    return f"[{host}]" if ":" in host else host


def _pip(url: str, insecure: bool) -> Section:
    trust = f"trusted-host = {_host(url)}\n" if insecure else ""
    env_trust = f" PIP_TRUSTED_HOST={_host(url)}" if insecure else ""
    flag_trust = f" \\\n    --trusted-host {_host(url)}" if insecure else ""
    return Section(
        "pip",
        "# pip.conf: ~/.config/pip/pip.conf (Linux), ~/Library/Application Support/pip/pip.conf\n"
        "# (macOS), %APPDATA%\\pip\\pip.ini (Windows), /etc/pip.conf (every user),\n"
        "# $VIRTUAL_ENV/pip.conf (one virtual environment; pip.ini on Windows)\n"
        "[global]\n"
        f"index-url = {url}\n"
        f"{trust}"
        "\n"
        "# or in the environment\n"
        f"export PIP_INDEX_URL={url}{env_trust}\n"
        "\n"
        "# or for one command\n"
        f"pip install --index-url {url}{flag_trust} <package>\n",
    )


def _uv(url: str, insecure: bool) -> Section:
    index = f'name = "mirror"\nurl = "{url}"\ndefault = true\n'
    if insecure:
        note = "# Plain http needs no extra uv setting.\n"
    else:
        note = (
            "# Only for a self-signed certificate (switches its verification off), in uv.toml:\n"
            f'# allow-insecure-host = ["{_host(url)}"]   or   UV_INSECURE_HOST={_host(url)}\n'
        )
    return Section(
        "uv",
        "# uv does not read pip.conf. uv.toml: ./uv.toml (one project), ~/.config/uv/uv.toml\n"
        "# (Linux, macOS), %APPDATA%\\uv\\uv.toml (Windows), /etc/uv/uv.toml (every user)\n"
        f"[[index]]\n{index}"
        "\n"
        "# or in a project's pyproject.toml\n"
        f"[[tool.uv.index]]\n{index}"
        "\n"
        "# or in the environment\n"
        f"export UV_DEFAULT_INDEX={url}\n"
        "\n"
        "# or for one command\n"
        f"uv pip install --default-index {url} <package>\n"
        f"{note}",
    )


def _pdm(url: str, insecure: bool) -> Section:
    verify = "false" if insecure else "true"
    global_verify = (
        "pdm config pypi.verify_ssl false   # plain http: trust this host, as pip's trusted-host\n"
        if insecure
        else ""
    )
    return Section(
        "pdm",
        "# every project of this user\n"
        f"pdm config pypi.url {url}\n"
        f"{global_verify}"
        "\n"
        '# or in a project\'s pyproject.toml (a source named "pypi" replaces the default index)\n'
        "[[tool.pdm.source]]\n"
        'name = "pypi"\n'
        f'url = "{url}"\n'
        f"verify_ssl = {verify}\n",
    )


def _poetry(url: str) -> Section:
    return Section(
        "poetry",
        "# per project; a primary source replaces the implicit default index\n"
        f"poetry source add --priority=primary mirror {url}\n"
        "\n"
        "# which writes to pyproject.toml\n"
        "[[tool.poetry.source]]\n"
        'name = "mirror"\n'
        f'url = "{url}"\n'
        'priority = "primary"\n',
    )


def _pip_tools(url: str, insecure: bool) -> Section:
    flag_trust = f" \\\n    --trusted-host {_host(url)}" if insecure else ""
    return Section(
        "pip-tools",
        "# pip-compile and pip-sync read pip.conf and PIP_* variables; nothing more is needed\n"
        "# when pip is set up as above. Otherwise:\n"
        f"pip-compile --index-url {url}{flag_trust} requirements.in\n"
        f"pip-sync --index-url {url}{flag_trust} requirements.txt\n",
    )


def client_sections(url: str) -> tuple[Section, ...]:
    """One :class:`Section` per tool for the mirror at ``url`` (normalized by :func:`index_url`)."""
    index = index_url(url)
    insecure = index.startswith("http://")
    return (
        _pip(index, insecure),
        _uv(index, insecure),
        _pdm(index, insecure),
        _poetry(index),
        _pip_tools(index, insecure),
    )


def client_config(url: str) -> str:
    """The whole set-up text for ``url``, one titled block per tool."""
    blocks = [f"== {section.tool} ==\n{section.text}" for section in client_sections(url)]
    return "\n".join(blocks)
