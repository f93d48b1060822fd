"""fullmirror: keep a verified local copy of a PyPI-protocol package index."""

__version__ = "0.1.0"
