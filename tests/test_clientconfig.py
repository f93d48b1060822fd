"""fullmirror.clientconfig: literal set-up text, URL normalization, refused URLs."""

from __future__ import annotations

import pytest

from fullmirror.clientconfig import client_config, client_sections, index_url
from fullmirror.errors import ConfigError

HTTP_EXPECTED = """\
== pip ==
# pip.conf: ~/.config/pip/pip.conf (Linux), ~/Library/Application Support/pip/pip.conf
# (macOS), %APPDATA%\\pip\\pip.ini (Windows), /etc/pip.conf (every user),
# $VIRTUAL_ENV/pip.conf (one virtual environment; pip.ini on Windows)
[global]
index-url = http://mirror.example:8080/simple/
trusted-host = mirror.example

# or in the environment
export PIP_INDEX_URL=http://mirror.example:8080/simple/ PIP_TRUSTED_HOST=mirror.example

# or for one command
pip install --index-url http://mirror.example:8080/simple/ \\
    --trusted-host mirror.example <package>

== uv ==
# uv does not read pip.conf. uv.toml: ./uv.toml (one project), ~/.config/uv/uv.toml
# (Linux, macOS), %APPDATA%\\uv\\uv.toml (Windows), /etc/uv/uv.toml (every user)
[[index]]
name = "mirror"
url = "http://mirror.example:8080/simple/"
default = true

# or in a project's pyproject.toml
[[tool.uv.index]]
name = "mirror"
url = "http://mirror.example:8080/simple/"
default = true

# or in the environment
export UV_DEFAULT_INDEX=http://mirror.example:8080/simple/

# or for one command
uv pip install --default-index http://mirror.example:8080/simple/ <package>
# Plain http needs no extra uv setting.

== pdm ==
# every project of this user
pdm config pypi.url http://mirror.example:8080/simple/
pdm config pypi.verify_ssl false   # plain http: trust this host, as pip's trusted-host

# or in a project's pyproject.toml (a source named "pypi" replaces the default index)
[[tool.pdm.source]]
name = "pypi"
url = "http://mirror.example:8080/simple/"
verify_ssl = false

== poetry ==
# per project; a primary source replaces the implicit default index
poetry source add --priority=primary mirror http://mirror.example:8080/simple/

# which writes to pyproject.toml
[[tool.poetry.source]]
name = "mirror"
url = "http://mirror.example:8080/simple/"
priority = "primary"

== pip-tools ==
# pip-compile and pip-sync read pip.conf and PIP_* variables; nothing more is needed
# when pip is set up as above. Otherwise:
pip-compile --index-url http://mirror.example:8080/simple/ \\
    --trusted-host mirror.example requirements.in
pip-sync --index-url http://mirror.example:8080/simple/ \\
    --trusted-host mirror.example requirements.txt
"""

HTTPS_EXPECTED = """\
== pip ==
# pip.conf: ~/.config/pip/pip.conf (Linux), ~/Library/Application Support/pip/pip.conf
# (macOS), %APPDATA%\\pip\\pip.ini (Windows), /etc/pip.conf (every user),
# $VIRTUAL_ENV/pip.conf (one virtual environment; pip.ini on Windows)
[global]
index-url = https://mirror.example/pypi/simple/

# or in the environment
export PIP_INDEX_URL=https://mirror.example/pypi/simple/

# or for one command
pip install --index-url https://mirror.example/pypi/simple/ <package>

== uv ==
# uv does not read pip.conf. uv.toml: ./uv.toml (one project), ~/.config/uv/uv.toml
# (Linux, macOS), %APPDATA%\\uv\\uv.toml (Windows), /etc/uv/uv.toml (every user)
[[index]]
name = "mirror"
url = "https://mirror.example/pypi/simple/"
default = true

# or in a project's pyproject.toml
[[tool.uv.index]]
name = "mirror"
url = "https://mirror.example/pypi/simple/"
default = true

# or in the environment
export UV_DEFAULT_INDEX=https://mirror.example/pypi/simple/

# or for one command
uv pip install --default-index https://mirror.example/pypi/simple/ <package>
# Only for a self-signed certificate (switches its verification off), in uv.toml:
# allow-insecure-host = ["mirror.example"]   or   UV_INSECURE_HOST=mirror.example

== pdm ==
# every project of this user
pdm config pypi.url https://mirror.example/pypi/simple/

# or in a project's pyproject.toml (a source named "pypi" replaces the default index)
[[tool.pdm.source]]
name = "pypi"
url = "https://mirror.example/pypi/simple/"
verify_ssl = true

== poetry ==
# per project; a primary source replaces the implicit default index
poetry source add --priority=primary mirror https://mirror.example/pypi/simple/

# which writes to pyproject.toml
[[tool.poetry.source]]
name = "mirror"
url = "https://mirror.example/pypi/simple/"
priority = "primary"

== pip-tools ==
# pip-compile and pip-sync read pip.conf and PIP_* variables; nothing more is needed
# when pip is set up as above. Otherwise:
pip-compile --index-url https://mirror.example/pypi/simple/ requirements.in
pip-sync --index-url https://mirror.example/pypi/simple/ requirements.txt
"""


def test_http_output_trusts_the_host_where_a_tool_needs_it() -> None:
    assert client_config("http://mirror.example:8080") == HTTP_EXPECTED


def test_https_output_has_no_trust_settings() -> None:
    assert client_config("https://mirror.example/pypi/simple") == HTTPS_EXPECTED
    assert "trusted-host" not in HTTPS_EXPECTED
    assert "verify_ssl = false" not in HTTPS_EXPECTED


def test_one_section_per_tool() -> None:
    tools = [section.tool for section in client_sections("https://mirror.example/simple/")]
    assert tools == ["pip", "uv", "pdm", "poetry", "pip-tools"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://mirror.example", "http://mirror.example/simple/"),
        ("http://mirror.example/", "http://mirror.example/simple/"),
        ("  https://mirror.example:8443/simple  ", "https://mirror.example:8443/simple/"),
        ("https://mirror.example/simple/", "https://mirror.example/simple/"),
        ("https://mirror.example/pypi", "https://mirror.example/pypi/simple/"),
        ("https://mirror.example/pypi/simple", "https://mirror.example/pypi/simple/"),
        ("HTTP://mirror.example/simple/extra", "http://mirror.example/simple/extra/"),
        ("http://[::1]:8080/", "http://[::1]:8080/simple/"),
    ],
)
def test_index_url_normalization(given: str, expected: str) -> None:
    assert index_url(given) == expected


def test_ipv6_host_is_bracketed_for_trusted_host() -> None:
    assert "--trusted-host [::1] " in client_config("http://[::1]:8080/")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "mirror.example/simple/",
        "ftp://mirror.example/simple/",
        "file:///srv/mirror/web/simple/",
        "http:///simple/",
        "http://mirror.example:port/",
        "http://[::1/simple/",
        "https://mirror.example/simple/?x=1",
        "https://mirror.example/simple/#top",
    ],
)
def test_bad_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        client_config(bad)
