"""inference.club's multi-speaker dialogue: ``POST /v1/voice/generations``. (Its voice
list, ``/v1/audio/voices``, is OpenAI's route, which answers in either shape.)"""

from __future__ import annotations

from orate.api.http.dialect import Dialect
from orate.api.inferenceclub import dialogue

# no prefix of its own: its requests count with orate's own routes in the metrics
DIALECT = Dialect(name="inference.club", routers=(dialogue.router,))
