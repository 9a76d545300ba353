"""The format table: one row per output format a dialect can ask for.

Everything that differs between formats (codec, container, sample-rate
policy, MIME type) lives here so that encoders and dialects never branch on
format names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    """How one output format is produced and labelled.

    ``rates`` lists the sample rates the codec accepts (empty: any rate), and
    ``default_rate`` pins a rate where the wire format defines one (OpenAI's
    headerless pcm is 24 kHz). ``None`` means "keep the engine's rate", which
    avoids a resampling pass for self-describing formats.
    """

    name: str
    content_type: str
    extension: str
    codec: str | None
    container: str | None
    default_rate: int | None = None
    rates: tuple[int, ...] = ()
    lossy: bool = False

    def output_rate(self, engine_rate: int, requested: int | None = None) -> int:
        """Pick the rate to encode at: the caller's, the format's, else the engine's."""
        rate = requested or self.default_rate or engine_rate
        if self.rates and rate not in self.rates:
            # Codecs with a fixed rate set (opus): the smallest allowed rate at or
            # above the wanted one keeps the bandwidth without wasting bits.
            higher = [r for r in self.rates if r >= rate]
            rate = min(higher) if higher else max(self.rates)
        return rate


FORMATS: dict[str, AudioFormat] = {
    "mp3": AudioFormat(
        "mp3",
        "audio/mpeg",
        "mp3",
        "libmp3lame",
        "mp3",
        lossy=True,
        rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    ),
    "opus": AudioFormat(
        "opus",
        "audio/ogg",
        "opus",
        "libopus",
        "ogg",
        default_rate=24000,
        rates=(8000, 12000, 16000, 24000, 48000),
        lossy=True,
    ),
    "aac": AudioFormat(
        "aac",
        "audio/aac",
        "aac",
        "aac",
        "adts",
        lossy=True,
        rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    ),
    "flac": AudioFormat("flac", "audio/flac", "flac", "flac", "flac"),
    "wav": AudioFormat("wav", "audio/wav", "wav", None, None),
    "pcm": AudioFormat("pcm", "audio/pcm", "pcm", None, None, default_rate=24000),
    # G.711, headerless, 8 kHz (telephony; ElevenLabs' ulaw_8000 / alaw_8000)
    "ulaw": AudioFormat(
        "ulaw", "audio/basic", "ulaw", "pcm_mulaw", "mulaw", default_rate=8000, rates=(8000,)
    ),
    "alaw": AudioFormat(
        "alaw", "audio/x-alaw-basic", "alaw", "pcm_alaw", "alaw", default_rate=8000, rates=(8000,)
    ),
}

EXTENSIONS: dict[str, str] = {
    "mp3": "mp3",
    "opus": "opus",
    "ogg": "opus",
    "aac": "aac",
    "adts": "aac",
    "flac": "flac",
    "wav": "wav",
    "wave": "wav",
    "pcm": "pcm",
    "raw": "pcm",
}


def format_for_extension(ext: str) -> str | None:
    """Map a file extension (with or without the dot) to a format name."""
    return EXTENSIONS.get(ext.lower().lstrip("."))
