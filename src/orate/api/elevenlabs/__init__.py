"""The ElevenLabs dialect, for the official ``elevenlabs`` SDK and the voice-agent
frameworks: ``routes.py`` (text-to-speech, voices, models, user, history),
``stream_input.py`` and ``multi_stream_input.py`` (the WebSockets), ``dispatch.py``
(which paths are ElevenLabs'), ``errors.py`` (its error shape)."""

from __future__ import annotations

from orate.api.elevenlabs import errors, multi_stream_input, routes, stream_input
from orate.api.elevenlabs.dispatch import PREFIX, ElevenLabsDispatch, answers
from orate.api.http.dialect import Dialect
from orate.api.http.errors import fastapi_validation

DIALECT = Dialect(
    name="elevenlabs",
    routers=(routes.router, stream_input.router, multi_stream_input.router),
    prefix=PREFIX,
    hidden_prefix=True,
    envelope=(errors.envelope, fastapi_validation),
    # a raw client may send its key in the BOS message instead of the handshake
    first_message_keys=(
        (rf"^{PREFIX}/v1/text-to-speech/[^/]+/stream-input$", stream_input.bos_key),
        (rf"^{PREFIX}/v1/text-to-speech/[^/]+/multi-stream-input$", stream_input.bos_key),
    ),
    middlewares=(ElevenLabsDispatch,),
    plain_request_id=answers,
)
