"""Streaming encoders: int16 mono PCM in, bytes of the chosen format out, per chunk.

One encoder serves one response and is fed each PCM chunk as the engine makes
it, so the first codec frame leaves within milliseconds. ``finish`` flushes the
codec (the tail is never lost). WAV and pcm bypass PyAV: a 44-byte header and
the samples are all they are. ``whole_file`` is for callers that keep the
entire file (the CLI, stored files): headers then carry exact sizes and mp3
gets its LAME header with encoder delay, so decoders report exact durations.

PyAV is imported only where it is used (resampling, tempo, the PyAV codecs, whole
files): an espeak worker that makes wav, pcm or streamed mp3 never loads FFmpeg,
which is ~17 MiB of resident memory per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import io
import struct
import threading
import weakref
from abc import ABC, abstractmethod
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

import numpy as np

from orate.audio.formats import FORMATS, AudioFormat

if TYPE_CHECKING:
    import av
    from typing_extensions import Buffer

UNKNOWN_SIZE = 0xFFFFFFFF
WAV_HEADER_BYTES = 44


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A canonical 44-byte PCM WAV header; an unknown length is written as 0xFFFFFFFF."""
    data = UNKNOWN_SIZE if data_bytes is None else data_bytes
    riff = UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        data,
    )


def fix_wav_sizes(data: bytes | bytearray) -> bytes:
    """Replace a streamed header's 0xFFFFFFFF sizes with the real ones."""
    if len(data) < WAV_HEADER_BYTES or data[:4] != b"RIFF":
        return bytes(data)
    buf = bytearray(data)
    body = len(buf) - WAV_HEADER_BYTES
    struct.pack_into("<I", buf, 4, 36 + body)
    struct.pack_into("<I", buf, 40, body)
    return bytes(buf)


class _Collect(io.RawIOBase):
    """A non-seekable sink: PyAV's muxer writes here, the encoder drains it per chunk."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Buffer, /) -> int:
        data = bytes(b)
        self.parts.append(data)
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class Resampler:
    """Stateful int16 mono resampler (PyAV/libswresample), safe across chunk edges."""

    def __init__(self, in_rate: int, out_rate: int, out_format: str = "s16") -> None:
        import av

        self.in_rate = in_rate
        self._av = av
        self._rs = av.AudioResampler(format=out_format, layout="mono", rate=out_rate)
        self._fed = False  # flushing a resampler that never saw a frame is an FFmpeg error

    def frames(self, pcm: np.ndarray | None) -> list[av.AudioFrame]:
        if pcm is None:
            return self._rs.resample(None) if self._fed else []
        if not len(pcm):
            return []
        self._fed = True
        frame = self._av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.in_rate
        return self._rs.resample(frame)

    def __call__(self, pcm: np.ndarray | None) -> np.ndarray:
        frames = self.frames(pcm)
        if not frames:
            return np.empty(0, dtype=np.int16)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


class TimeStretch:
    """Tempo change without pitch change (FFmpeg's atempo), for speeds an engine can't reach."""

    def __init__(self, rate: int, tempo: float) -> None:
        import av
        import av.filter

        self.rate = rate
        self._av = av
        graph = av.filter.Graph()
        src = graph.add_abuffer(
            format="s16", sample_rate=rate, layout="mono", time_base=Fraction(1, rate)
        )
        chain = [src]
        remaining = tempo
        while remaining < 0.5:  # one atempo stage spans 0.5..100
            chain.append(graph.add("atempo", "0.5"))
            remaining /= 0.5
        chain.append(graph.add("atempo", f"{remaining:.6f}"))
        chain.append(graph.add("aformat", "sample_fmts=s16:channel_layouts=mono"))
        chain.append(graph.add("abuffersink"))
        graph.link_nodes(*chain).configure()
        self._graph = graph
        self._pts = 0

    def __call__(self, pcm: np.ndarray | None) -> np.ndarray:
        av = self._av
        if pcm is not None:
            if not len(pcm):
                return pcm
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self._pts
            self._pts += len(pcm)
            self._graph.push(frame)
        else:
            self._graph.push(None)
        out = []
        while True:
            try:
                out.append(self._graph.pull().to_ndarray().reshape(-1))
            except (av.BlockingIOError, av.EOFError):
                break
        return np.concatenate(out) if out else np.empty(0, dtype=np.int16)


class Encoder(ABC):
    """Turns PCM at ``in_rate`` into encoded bytes at ``out_rate``, chunk by chunk."""

    def __init__(self, fmt: AudioFormat, in_rate: int, out_rate: int) -> None:
        self.format = fmt
        self.in_rate = in_rate
        self.out_rate = out_rate

    @abstractmethod
    def feed(self, pcm: np.ndarray) -> bytes:
        """Encode a chunk; returns whatever bytes are complete (maybe none)."""

    @abstractmethod
    def finish(self) -> bytes:
        """Flush the codec and return the tail."""


class RawEncoder(Encoder):
    """pcm (headerless s16le) and WAV: samples as they are, resampled if asked."""

    def __init__(
        self, fmt: AudioFormat, in_rate: int, out_rate: int, *, whole_file: bool = False
    ) -> None:
        super().__init__(fmt, in_rate, out_rate)
        self._resample = Resampler(in_rate, out_rate) if in_rate != out_rate else None
        self._header = wav_header(out_rate) if fmt.name == "wav" else b""
        self._whole: bytearray | None = bytearray() if whole_file else None

    def _out(self, data: bytes) -> bytes:
        if self._header:
            data, self._header = self._header + data, b""
        if self._whole is not None:
            self._whole += data
            return b""
        return data

    def feed(self, pcm: np.ndarray) -> bytes:
        if self._resample is not None:
            pcm = self._resample(pcm)
        return self._out(pcm.astype("<i2", copy=False).tobytes())

    def finish(self) -> bytes:
        tail = self._resample(None).astype("<i2", copy=False).tobytes() if self._resample else b""
        tail = self._out(tail)
        if self._whole is None:
            return tail
        return fix_wav_sizes(self._whole) if self.format.name == "wav" else bytes(self._whole)


class CodecEncoder(Encoder):
    """mp3, opus (Ogg), aac (ADTS) and flac through PyAV, one container per response."""

    def __init__(
        self,
        fmt: AudioFormat,
        in_rate: int,
        out_rate: int,
        *,
        bitrate: int | None,
        whole_file: bool,
    ) -> None:
        import av

        super().__init__(fmt, in_rate, out_rate)
        self._av = av
        self._whole = whole_file
        self._sink: io.BytesIO | _Collect = io.BytesIO() if whole_file else _Collect()
        options = {} if whole_file else {"flush_packets": "1"}
        codec_options: dict[str, str] = {}
        # encoder settings for speech, measured here (x real time, 22 kHz mono):
        if fmt.name == "opus":
            options["page_duration"] = "20000"  # flush an Ogg page per 20 ms, not per second
            codec_options["application"] = "audio"
            codec_options["compression_level"] = "5"  # 320x instead of 80x at complexity 10
        elif fmt.name == "mp3":
            codec_options["compression_level"] = str(MP3_QUALITY)  # -q7: 160x, not 110x
        elif fmt.name == "aac":
            codec_options["aac_coder"] = "fast"  # 250x instead of 70x (two-loop search)
        if fmt.codec is None:
            raise ValueError(f"{fmt.name} is not encoded with a codec")
        self._container = av.open(self._sink, "w", format=fmt.container, options=options)
        stream = self._container.add_stream(fmt.codec, rate=out_rate, options=codec_options)
        if not isinstance(stream, av.AudioStream):
            raise ValueError(f"{fmt.codec} is not an audio codec")
        stream.layout = "mono"
        if bitrate and fmt.lossy:
            stream.bit_rate = bitrate
        self._stream = stream
        codec_format = stream.codec_context.format.name
        self._resample = (
            Resampler(in_rate, out_rate, codec_format)
            if (codec_format != "s16" or in_rate != out_rate)
            else None
        )

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def _frames(self, pcm: np.ndarray) -> list[av.AudioFrame]:
        if self._resample is not None:
            return self._resample.frames(pcm)
        frame = self._av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.in_rate
        return [frame]

    def _drain(self) -> bytes:
        return self._sink.drain() if isinstance(self._sink, _Collect) else b""

    def feed(self, pcm: np.ndarray) -> bytes:
        if len(pcm):
            self._encode(self._frames(pcm))
        return self._drain()

    def finish(self) -> bytes:
        if self._resample is not None:
            self._encode(self._resample.frames(None))
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        if isinstance(self._sink, io.BytesIO):  # the whole file
            return self._sink.getvalue()
        return self._sink.drain()


MP3_QUALITY = 7  # LAME's -q: 7 is its fast psychoacoustics, indistinguishable for speech
# Short blocks (LAME's window switching for transients) cost ~8% of the encode and buy
# nothing measurable on espeak speech at 48 kb/s: without them SNR is as good (23.0 dB
# against 22.8 dB) and the ASR round trip as correct (benchmarks/mp3_encoders.py). -q9
# would not help: LAME 3.100 runs its psychoacoustic model at every -q, and at CBR
# -q9 encodes byte for byte what -q7 does.
MP3_SHORT_BLOCKS = False

_VBR_OFF = 0  # lame.h: vbr_off, i.e. CBR at the asked bitrate
_MODE_MONO = 3  # lame.h: MONO


class LameLibrary:
    """libmp3lame's public C API (lame.h) through ctypes: one per loaded library file.

    ``lameenc``'s Python API clamps LAME's quality to 2..7 and exposes no other knob,
    while the same library underneath has them all (short blocks, VBR, lowpass). Calls
    release the GIL (ctypes does for every foreign call), and nothing here is shared
    between encoders except the function table: each encoder owns its own
    ``lame_global_flags``. LAME fills a few global tables on first init, so
    ``lame_init`` and ``lame_init_params`` run under a lock; encoding does not.
    """

    _SETTERS = (
        "lame_set_num_channels",
        "lame_set_in_samplerate",
        "lame_set_out_samplerate",
        "lame_set_VBR",
        "lame_set_brate",
        "lame_set_quality",
        "lame_set_mode",
        "lame_set_bWriteVbrTag",
        "lame_set_write_id3tag_automatic",
        "lame_set_no_short_blocks",
    )

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        vp, c_int = ctypes.c_void_p, ctypes.c_int
        lib.lame_init.restype = vp
        lib.lame_init.argtypes = []
        for name in self._SETTERS:
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [vp, c_int], c_int
        lib.lame_init_params.argtypes, lib.lame_init_params.restype = [vp], c_int
        lib.lame_encode_buffer.argtypes = [vp, vp, vp, c_int, vp, c_int]
        lib.lame_encode_buffer.restype = c_int
        lib.lame_encode_flush.argtypes, lib.lame_encode_flush.restype = [vp, vp, c_int], c_int
        lib.lame_close.argtypes, lib.lame_close.restype = [vp], c_int
        lib.get_lame_version.argtypes, lib.get_lame_version.restype = [], ctypes.c_char_p
        self.path = path
        self.version: str = lib.get_lame_version().decode()
        self.lib = lib
        self._lock = threading.Lock()

    def open(
        self, *, in_rate: int, out_rate: int, kbps: int, quality: int, short_blocks: bool
    ) -> int:
        """A configured ``lame_global_flags`` for CBR mono; the caller must ``lame_close`` it."""
        lib = self.lib
        with self._lock:
            gfp: int = lib.lame_init()
            if not gfp:
                raise MemoryError("lame_init failed")
            lib.lame_set_num_channels(gfp, 1)
            lib.lame_set_mode(gfp, _MODE_MONO)
            lib.lame_set_in_samplerate(gfp, in_rate)
            lib.lame_set_out_samplerate(gfp, out_rate)
            lib.lame_set_VBR(gfp, _VBR_OFF)
            lib.lame_set_brate(gfp, kbps)
            lib.lame_set_quality(gfp, quality)
            # A stream can't be rewritten at the end: no Xing/LAME frame, no ID3 tags (as
            # lameenc does); the first bytes out are plain audio frames.
            lib.lame_set_bWriteVbrTag(gfp, 0)
            lib.lame_set_write_id3tag_automatic(gfp, 0)
            lib.lame_set_no_short_blocks(gfp, 0 if short_blocks else 1)
            if lib.lame_init_params(gfp) < 0:
                lib.lame_close(gfp)
                raise ValueError(f"LAME refused {kbps} kb/s at {out_rate} Hz")
        return gfp


def _lame_candidates() -> list[str]:
    """Library files to try, best first.

    1. ``lameenc``'s own extension module: it links its own LAME statically and
       exports the whole ``lame_*`` API, so it is always installed and is the build
       the fallback would run anyway (measured as fast as Debian's 3.100; their
       outputs differ in 4 bytes of 410 kB).
    2. The system's ``libmp3lame.so.0`` (Debian's libmp3lame0), if any.

    Not PyAV's bundled ``av.libs/libmp3lame-*.so``: it exports the same API but
    measured 3x slower than either (an unoptimized build).
    """
    paths = []
    spec = importlib.util.find_spec("lameenc")
    if spec is not None and spec.origin:
        paths.append(spec.origin)
    system = ctypes.util.find_library("mp3lame")
    if system:
        paths.append(system)
    return paths


@functools.cache
def lame_library() -> LameLibrary | None:
    """The process's libmp3lame, loaded once; ``None`` when no candidate loads."""
    for path in _lame_candidates():
        try:
            return LameLibrary(path)
        except (OSError, AttributeError):  # not loadable, or without the lame_* symbols
            continue
    return None


class LameEncoder(Encoder):
    """Streamed mp3 through libmp3lame directly, without a muxer.

    A streamed response carries bare MPEG frames either way (no LAME header can be
    written before the length is known), so PyAV's container, packet and frame objects
    per ~60 ms chunk buy nothing. LAME is called through ctypes (``LameLibrary``) at
    -q7, CBR, without short blocks; when no library loads, through ``lameenc``'s Python
    API (-q7, short blocks on: it can't turn them off). Whole files keep PyAV, which
    writes the LAME header that gives decoders the exact length.
    """

    def __init__(
        self,
        fmt: AudioFormat,
        in_rate: int,
        out_rate: int,
        *,
        bitrate: int | None,
        library: LameLibrary | Literal["auto", "lameenc"] = "auto",
        quality: int = MP3_QUALITY,
        short_blocks: bool = MP3_SHORT_BLOCKS,
    ) -> None:
        super().__init__(fmt, in_rate, out_rate)
        kbps = max(8, round((bitrate or 48_000) / 1000))
        lib = lame_library() if library == "auto" else library
        self.library: LameLibrary | None = lib if isinstance(lib, LameLibrary) else None
        self._fed = False  # finishing an encoder that was never fed gives no bytes
        self._finished = False
        self._resample = Resampler(in_rate, out_rate) if in_rate != out_rate else None
        if self.library is not None:
            gfp = self.library.open(
                in_rate=out_rate,
                out_rate=out_rate,
                kbps=kbps,
                quality=quality,
                short_blocks=short_blocks,
            )
            # frees LAME's state (~290 KB) when finished, or when a response is dropped
            self._close = weakref.finalize(self, self.library.lib.lame_close, gfp)
            # ctypes objects and raw addresses made once: per call, converting an int
            # and asking numpy for ``.ctypes.data`` cost more than copying 60 ms of PCM
            self._gfp = ctypes.c_void_p(gfp)
            self._in = np.empty(0, dtype=np.int16)
            self._in_ptr = 0
            self._buf = ctypes.create_string_buffer(8192)
        else:
            import lameenc

            enc = lameenc.Encoder()
            enc.set_channels(1)
            enc.set_in_sample_rate(out_rate)
            enc.set_out_sample_rate(out_rate)
            enc.set_bit_rate(kbps)
            enc.set_quality(min(7, max(2, quality)))  # lameenc's own range
            self._enc = enc

    def feed(self, pcm: np.ndarray) -> bytes:
        return self._encode(self._resample(pcm) if self._resample is not None else pcm)

    def _encode(self, pcm: np.ndarray) -> bytes:
        if not len(pcm):
            return b""
        self._fed = True
        if self.library is None:
            return bytes(self._enc.encode(pcm.astype("<i2", copy=False).tobytes()))
        if not self._close.alive:  # lame_close'd: LAME would write into freed memory
            raise RuntimeError("mp3 encoder fed after finish")
        count = len(pcm)
        if len(self._in) < count:
            self._in = np.empty(max(count, 4096), dtype=np.int16)
            self._in_ptr = self._in.ctypes.data
            self._buf = ctypes.create_string_buffer(len(self._in) * 5 // 4 + 7200)
        self._in[:count] = pcm  # buffer size: lame.h's worst case, 1.25 x samples + 7200
        n = self.library.lib.lame_encode_buffer(
            self._gfp, self._in_ptr, None, count, self._buf, len(self._buf)
        )
        if n < 0:
            raise RuntimeError(f"lame_encode_buffer failed ({n})")
        return ctypes.string_at(self._buf, n)

    def finish(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        tail = self._encode(self._resample(None)) if self._resample is not None else b""
        if self.library is None:
            return tail + bytes(self._enc.flush()) if self._fed else tail
        out = b""
        if self._fed:  # no audio at all (a text the engine made nothing of): an empty mp3
            if len(self._buf) < 7200:
                self._buf = ctypes.create_string_buffer(7200)
            n = self.library.lib.lame_encode_flush(self._gfp, self._buf, len(self._buf))
            if n < 0:
                raise RuntimeError(f"lame_encode_flush failed ({n})")
            out = ctypes.string_at(self._buf, n)
        self._close()
        return tail + out


def make_encoder(
    format_name: str,
    in_rate: int,
    out_rate: int,
    *,
    bitrate: int | None = None,
    whole_file: bool = False,
) -> Encoder:
    fmt = FORMATS[format_name]
    if fmt.codec is None:
        return RawEncoder(fmt, in_rate, out_rate, whole_file=whole_file)
    if fmt.name == "mp3" and not whole_file:
        return LameEncoder(fmt, in_rate, out_rate, bitrate=bitrate)
    return CodecEncoder(fmt, in_rate, out_rate, bitrate=bitrate, whole_file=whole_file)
