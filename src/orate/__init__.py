"""orate: a self-hosted text-to-speech server."""

__version__ = "0.1.0"
