"""ElevenLabs' ``output_format`` names (``codec_samplerate_kbps``) as orate formats.

One row per name the ElevenLabs API accepts: which orate format encodes it, at which
rate and bitrate, and whether it may be streamed (a WAV header must know the size,
so ``wav_*`` is for non-stream routes only).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputFormat:
    name: str
    format: str  # a key of audio.formats.FORMATS
    sample_rate: int
    bitrate: int | None = None
    streamable: bool = True


def _table() -> dict[str, OutputFormat]:
    rows: list[OutputFormat] = [
        OutputFormat("mp3_22050_32", "mp3", 22050, 32_000),
        OutputFormat("mp3_24000_48", "mp3", 24000, 48_000),
    ]
    rows += [OutputFormat(f"mp3_44100_{k}", "mp3", 44100, k * 1000) for k in (32, 64, 96, 128, 192)]
    rates = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
    rows += [OutputFormat(f"pcm_{r}", "pcm", r) for r in rates]
    rows += [OutputFormat("ulaw_8000", "ulaw", 8000), OutputFormat("alaw_8000", "alaw", 8000)]
    rows += [
        OutputFormat(f"opus_48000_{k}", "opus", 48000, k * 1000) for k in (32, 64, 96, 128, 192)
    ]
    rows += [OutputFormat(f"wav_{r}", "wav", r, streamable=False) for r in rates]
    return {r.name: r for r in rows}


OUTPUT_FORMATS: dict[str, OutputFormat] = _table()
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"


def output_format(name: str, *, stream: bool) -> OutputFormat | None:
    """The row for ``name``, or None when this kind of route cannot serve it."""
    row = OUTPUT_FORMATS.get(name)
    if row is None or (stream and not row.streamable):
        return None
    return row


def valid_names(*, stream: bool) -> list[str]:
    return [n for n, r in OUTPUT_FORMATS.items() if r.streamable or not stream]
