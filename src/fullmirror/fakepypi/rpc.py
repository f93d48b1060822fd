"""PyPI's XML-RPC mirroring methods, and the Fault -32500 it answers everything else with."""

from __future__ import annotations

import math
import xmlrpc.client

from fullmirror.fakepypi.faults import Faults
from fullmirror.fakepypi.index import Index

__all__ = ["RATE_LIMIT_MESSAGE", "answer_xmlrpc"]

#: PyPI's rate-limit fault string; clients parse the number of seconds out of it.
RATE_LIMIT_MESSAGE = (
    "HTTPTooManyRequests: The action could not be performed because there were too many "
    "requests by the client. Limit may reset in {seconds} seconds."
)


def _fault(code: int, message: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True).encode()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def answer_xmlrpc(
    index: Index, method: str | None, params: tuple[object, ...], faults: Faults
) -> bytes:
    """The response body for one call (``method`` None: the request did not parse)."""
    if method is None:
        return _fault(-32700, "parse error: the body is not an XML-RPC method call")
    if faults.roll(faults.xmlrpc_ratelimit_rate, "xmlrpc"):
        seconds = max(math.ceil(faults.ratelimit_seconds), 0)
        return _fault(-32500, RATE_LIMIT_MESSAGE.format(seconds=seconds))
    result: object
    if method == "changelog_last_serial" and not params:
        result = index.last_serial
    elif method == "changelog_since_serial" and len(params) == 1 and _is_int(params[0]):
        since = params[0]
        assert isinstance(since, int)
        result = [list(row) for row in index.changelog_since(since)]
    elif method == "list_packages_with_serial" and not params:
        result = index.serials()
    elif method in ("changelog_last_serial", "changelog_since_serial", "list_packages_with_serial"):
        return _fault(-32602, f"TypeError: wrong arguments for {method}: {params!r}")
    else:
        return _fault(
            -32500, f"RuntimeError: the XML-RPC method {method!r} is disabled on this index"
        )
    return xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True).encode()
