"""PEP 691 content negotiation, the way PyPI answers it.

No Accept header (or ``*/*``) gets ``text/html``; the ``latest`` meta-types are answered with the
concrete v1 type; ``?format=`` overrides Accept; q-values rank the candidates and ``q=0`` rules
one out. When nothing offered fits, the caller answers 406.
"""

from __future__ import annotations

__all__ = ["SIMPLE_HTML", "SIMPLE_JSON", "TEXT_HTML", "is_json", "negotiate"]

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

_EXACT = {
    SIMPLE_JSON: SIMPLE_JSON,
    "application/vnd.pypi.simple.latest+json": SIMPLE_JSON,
    SIMPLE_HTML: SIMPLE_HTML,
    "application/vnd.pypi.simple.latest+html": SIMPLE_HTML,
    TEXT_HTML: TEXT_HTML,
}
_WILDCARDS = {"*/*": TEXT_HTML, "text/*": TEXT_HTML, "application/*": SIMPLE_JSON}
# Between equal q-values an exact type beats a wildcard, then JSON beats HTML.
_PREFERENCE = {SIMPLE_JSON: 3, SIMPLE_HTML: 2, TEXT_HTML: 1}


def is_json(media_type: str) -> bool:
    return media_type == SIMPLE_JSON


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def negotiate(accept: str | None, format_: str | None = None) -> str | None:
    """The media type to answer with, or None when no offered type is acceptable."""
    if format_ is not None:
        return _EXACT.get(format_.strip().lower())
    if accept is None or not accept.strip():
        return TEXT_HTML
    best: tuple[float, bool, int] | None = None
    chosen: str | None = None
    for item in accept.split(","):
        media, *parameters = item.split(";")
        media = media.strip().lower()
        answer = _EXACT.get(media) or _WILDCARDS.get(media)
        quality = _quality(parameters)
        if answer is None or quality <= 0:
            continue
        rank = (quality, media in _EXACT, _PREFERENCE[answer])
        if best is None or rank > best:
            best, chosen = rank, answer
    return chosen
