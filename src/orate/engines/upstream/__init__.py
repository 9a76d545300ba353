"""Upstream providers as an engine: orate as a gateway in front of OpenAI, ElevenLabs
and Hume. ``providers.py`` reads the providers file, ``vendors.py`` shapes each
vendor's request, ``client.py`` streams one request and fails over between providers.
This package's names are its interface; callers import from here."""

from orate.engines.upstream.client import (
    NoProvider,
    ProviderError,
    ProviderUnreachable,
    RemoteError,
    StreamInterrupted,
    UpstreamAudio,
    error_message,
    open_stream,
    synthesize,
)
from orate.engines.upstream.engine import UPSTREAM, UpstreamEngine
from orate.engines.upstream.providers import Provider, load_providers, providers_for

__all__ = [
    "UPSTREAM",
    "NoProvider",
    "Provider",
    "ProviderError",
    "ProviderUnreachable",
    "RemoteError",
    "StreamInterrupted",
    "UpstreamAudio",
    "UpstreamEngine",
    "error_message",
    "load_providers",
    "open_stream",
    "providers_for",
    "synthesize",
]
