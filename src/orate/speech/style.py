"""ElevenLabs-style voice settings (stability, similarity_boost, style) as voice parameters.

nano-gpt's ElevenLabs models and the ElevenLabs dialect take the same three knobs,
and one name must sound the same through both, so both call this one mapping.
"""

from __future__ import annotations

from dataclasses import replace

from orate.engines.base import VoiceParams


def style_voice(params: VoiceParams, stability: float | None, style: float | None) -> VoiceParams:
    """Low stability and high style widen the pitch range (more expressive speech);
    similarity_boost has no espeak meaning and is only recorded by the caller."""
    if stability is None and style is None:
        return params
    stability = 0.5 if stability is None else stability
    style = 0.0 if style is None else style
    base = 50 if params.pitch_range is None else params.pitch_range
    spread = base + (0.5 - stability) * 40 + style * 30
    return replace(params, pitch_range=int(min(max(spread, 0), 100)))
