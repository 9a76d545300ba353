"""Upstream providers behind the engine protocol, so the catalog and the pipeline treat
a gateway model like any other: its voices, its voice check, its version and its
listing come from this adapter, not from ``engine == "remote"`` branches.

Synthesis is the one thing it does not do in a worker: ``runs_upstream`` tells the
speech layer to stream it from the providers (speech/upstream.py) instead of the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orate.engines.base import (
    Engine,
    Sink,
    SynthesisResult,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
)
from orate.engines.upstream.providers import Provider

UPSTREAM = "remote"  # the engine name of models served by upstream providers
UPSTREAM_RATE = 24000  # what a provider's PCM is planned at (the pipeline resamples)


class UpstreamEngine(Engine):
    """The providers of the providers file, as one engine named ``remote``."""

    name = UPSTREAM
    sample_rate = UPSTREAM_RATE
    speed_range = (0.25, 4.0)
    runs_upstream = True  # synthesized by a provider over HTTP, never in a worker
    designs_voices = False  # descriptions and directions are the upstream's business
    empty_voice = "voice is empty; name one of the provider's voices"

    def __init__(self, providers: Sequence[Provider]) -> None:
        self.providers = list(providers)
        self.version = "remote:" + ",".join(p.name for p in self.providers)

    def serving(self, model_id: str) -> list[str]:
        """The providers that serve a model, in failover order of the file."""
        return [p.name for p in self.providers if model_id in p.models]

    def version_of(self, model_id: str) -> str:
        """What one model's audio depends on: the providers serving it. Part of the cache
        key, so two upstream models never share a cached answer."""
        return "remote:" + ",".join(self.serving(model_id))

    def listing(self, model_id: str) -> dict[str, Any]:
        """A model's facts for catalogs: its providers; voices and rate are theirs."""
        return {
            "providers": self.serving(model_id),
            "languages": [],
            "voice_count": None,
            "sample_rate": None,
        }

    def voices(self) -> list[VoiceInfo]:
        return []  # the provider knows its voices; it says if one is wrong

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        name = params.voice.strip()
        if not name:
            raise UnknownVoice(self.empty_voice)
        return VoiceParams(engine=UPSTREAM, voice=name)

    def synthesize(
        self,
        text: str,
        params: VoiceParams,
        speed: float,
        sink: Sink,
        *,
        ssml: bool = False,
        phonemes: bool = False,
    ) -> SynthesisResult:
        raise RuntimeError("upstream models are synthesized by their providers, not here")
