"""``orate``: serve the API, or synthesize and list voices without a server.

One module per command group, all over the composition root (``services.py``);
importing this package registers every command on ``app`` (the console script),
in the order ``orate --help`` lists them.
"""

# ruff: noqa: I001 (the import order is the order of the commands in --help)
from orate.cli import serve, keys, say, voices, cache, history, models, jobs, lexicon
from orate.cli.common import app

__all__ = ["app", "cache", "history", "jobs", "keys", "lexicon", "models", "say", "serve", "voices"]
