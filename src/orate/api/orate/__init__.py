"""orate's own routes: history, voices, usage and cache (``library.py``), stored audio
(``files.py``), API keys (``keys.py``), pronunciation dictionaries in ElevenLabs' shapes,
which every dialect's requests may name (``lexicons.py``), and the playground
(``web.py`` and its files in ``web/``)."""

from __future__ import annotations

from orate.api.http.dialect import Dialect
from orate.api.orate import files, keys, lexicons, library, web

DIALECT = Dialect(
    # the metrics label these routes have always had
    name="library",
    routers=(files.router, library.router, keys.router, web.router, lexicons.router),
    # the playground holds no secret: its page and files are served without a key
    open_paths=frozenset({"/"}),
    open_prefixes=(web.ASSET_PREFIX,),
    mounts=((web.ASSET_PREFIX.rstrip("/"), web.assets, "playground"),),
)
