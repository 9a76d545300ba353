"""The text layer's cost, and how well each engine's word timestamps hold their words.

    python benchmarks/reading.py            # prints two Markdown tables

1. Text layer cost: ``normalize_text`` on 4,096 characters of English prose, number-dense
   text and hostile inputs, as CPU ms per 1,000 characters (best of several runs), beside
   the same inputs through the text layer as it was before the reading tables (a copy of
   that module from git, loaded side by side), so the ratio is measured in one run.
2. Word spans: sentences full of normalized tokens are planned and rendered by the same
   pipeline code ``orate say`` uses (espeak, hibari, the Piper voice in its wheel), with
   word timestamps. Each word's span is cut from the audio (padded with 0.3 s of silence)
   and pocketsphinx, held to a grammar of the word and its two neighbours as spoken (the
   words a drifting span lands on), says which it holds: the fraction that hold their own
   word is the span accuracy. The
   whole sentence is also force-aligned by pocketsphinx to its known spoken text; the
   mean distance between each word's span start/end and the aligned one is the boundary
   error. Goals: accuracy >= 95% and boundary error <= 60 ms on every engine, <= 1 ms of
   text layer per 1,000 characters of prose.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from orate.config import Settings  # noqa: E402
from orate.services import build_services  # noqa: E402
from orate.speech.normalize import normalize_text  # noqa: E402
from orate.speech.service import SpeechService  # noqa: E402
from orate.speech.types import SpeechRequest, Utterance  # noqa: E402

PROSE = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the "
    "porch and the children play in the garden. "
)
DENSE = (
    "Call 555-0142 ext. 12; add 3½ kg at −5°F, 9am–5pm, v2.3.1, FY2024 Q3 YoY, "
    "03/04/2025, $4.50, 50%, 221B Baker St. "
)
HOSTILE = {
    "+1 +1 …": "+1 ",
    "1,1,1…": "1,",
    "1:1:1…": "1:",
    "1-1-1…": "1-",
    "1/2 …": "1/2 ",
    "½½½…": "½",
    "−±≈…": "−±≈5 ",
    "Tue. ext. …": "Tue. ext. ",
    "YoY SQL …": "YoY SQL ",
}
SIZE = 4096
BASELINE_COMMIT = "a028853"  # the text layer before the reading tables

# (text, the spoken words of each of its tokens), tokens as the timestamps name them
SENTENCES: list[tuple[str, list[str]]] = [
    (
        "Version 2.3.1 fixed 17 bugs.",
        ["version", "two point three point one", "fixed", "seventeen", "bugs"],
    ),
    (
        "It was −5°F in the morning.",
        ["it", "was", "minus five degrees fahrenheit", "in", "the", "morning"],
    ),
    (
        "Add 3½kg of rice to the pot.",
        ["add", "three and a half kilograms", "of", "rice", "to", "the", "pot"],
    ),
    (
        "Call 555-0142 today please.",
        ["call", "five five five zero one four two", "today", "please"],
    ),
    (
        "From 1990–95 prices rose 12% each year.",
        [
            "from",
            "nineteen ninety to ninety five",
            "prices",
            "rose",
            "twelve percent",
            "each",
            "year",
        ],
    ),
    (
        "We met Dr. Smith on Main St. at 3:30pm.",
        ["we", "met", "doctor", "smith", "on", "main", "street", "at", "three thirty p m"],
    ),
    (
        "Please read chapter 21 before the 2nd test.",
        ["please", "read", "chapter", "twenty one", "before", "the", "second", "test"],
    ),
]
ENGINES = [
    ("espeak", "tts-1", "en-us+f2"),
    ("hibari", "hibari", "heart"),
    ("piper (joe)", "piper:en_US-joe-medium", "default"),
]


def load_baseline() -> Any:
    """The normalizer as of ``BASELINE_COMMIT``, loaded as its own module."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{BASELINE_COMMIT}:src/orate/speech/normalize.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "orate_normalize_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("orate_normalize_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cpu_ms(fn: Any, text: str, runs: int = 15) -> float:
    best = 1e9
    for _ in range(runs):
        t = time.process_time()
        fn(text, "en-us")
        best = min(best, time.process_time() - t)
    return best * 1000


def text_costs() -> list[str]:
    old = load_baseline()
    rows = [
        "| input (4,096 chars) | before, ms per 1,000 chars | now, ms per 1,000 chars "
        "| now / before | now, ms per 4,096 chars |",
        "|---|---|---|---|---|",
    ]
    inputs = {
        "prose": PROSE,
        "number-dense": DENSE,
        **{f"hostile {k}": v for k, v in HOSTILE.items()},
    }
    for name, unit in inputs.items():
        text = (unit * (SIZE // len(unit) + 1))[:SIZE]
        before = cpu_ms(old.normalize_text, text)
        now = cpu_ms(normalize_text, text)
        rows.append(
            f"| {name} | {before / SIZE * 1000:.3f} | {now / SIZE * 1000:.3f} | "
            f"{now / before:.2f} | {now:.2f} |"
        )
    return rows


class Listener:
    """pocketsphinx: which phrase a segment holds, and a forced alignment of a sentence."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, logfn=os.devnull)

    @staticmethod
    def to16k(pcm: np.ndarray, rate: int) -> np.ndarray:
        import av

        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
        parts = [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def which(self, audio16: np.ndarray, phrases: list[str]) -> str:
        """The phrase the segment holds: pocketsphinx held to a grammar of the sentence's
        phrases; where that search finds no path at all (it does for some one-word
        segments), each phrase is force-aligned to the segment and the best score wins."""
        pad = np.zeros(4800, np.int16)
        audio = np.concatenate([pad, audio16, pad]).tobytes()
        alternatives = " | ".join(f"( {p} )" for p in dict.fromkeys(phrases))
        self.decoder.add_jsgf_string(
            "w", f"#JSGF V1.0;\ngrammar w;\npublic <s> = {alternatives} ;\n"
        )
        self.decoder.activate_search("w")
        self.decoder.start_utt()
        self.decoder.process_raw(audio, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        if hyp is not None and hyp.hypstr:
            return str(hyp.hypstr)
        best, best_score = "", -float("inf")
        for phrase in dict.fromkeys(phrases):
            self.decoder.set_align_text(phrase)
            self.decoder.start_utt()
            self.decoder.process_raw(audio, full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            if hyp is not None and hyp.score > best_score:
                best, best_score = phrase, hyp.score
        return best

    def align(self, audio16: np.ndarray, words: str) -> list[tuple[str, float, float]]:
        """(word, start ms, end ms) of each spoken word, forced to ``words``."""
        self.decoder.set_align_text(words)
        self.decoder.start_utt()
        pad = np.zeros(4800, np.int16)  # 0.3 s, so the first word need not start at 0
        self.decoder.process_raw(np.concatenate([pad, audio16, pad]).tobytes(), full_utt=True)
        self.decoder.end_utt()
        out = []
        for seg in self.decoder.seg():
            word = seg.word
            if word in ("<s>", "</s>", "<sil>") or word.startswith("[") or word.startswith("+"):
                continue
            out.append(
                (word.split("(")[0], seg.start_frame * 10.0 - 300, (seg.end_frame + 1) * 10.0 - 300)
            )
        return out


def render(
    speech: SpeechService, model: str, voice: str, text: str
) -> tuple[np.ndarray, int, list[dict[str, Any]]]:
    req = SpeechRequest(
        model=model,
        utterances=[Utterance(text, voice)],
        format="pcm",
        timestamps=frozenset({"word"}),
        framing=None,
    )
    plan = asyncio.run(speech.plan(req))
    audio = io.BytesIO()
    stamps: list[dict[str, Any]] = []

    def on_event(event: Any) -> None:
        if event.kind == "audio":
            audio.write(event.audio)
        elif event.kind == "timestamps":
            stamps.extend(t.to_dict() for t in event.timestamps if t.type == "word")

    speech.render_local(plan, on_event)
    return np.frombuffer(audio.getvalue(), "<i2"), plan.sample_rate, stamps


def spans() -> tuple[list[str], dict[str, tuple[float, float]]]:
    settings = Settings()
    speech = SpeechService(settings, build_services(settings).catalog, None)
    listener = Listener()
    rows = [
        "| engine | words | span holds its word | mean boundary error (ms) "
        "| median start offset (ms) | misses |",
        "|---|---|---|---|---|---|",
    ]
    results: dict[str, tuple[float, float]] = {}
    for label, model, voice in ENGINES:
        held = total = 0
        errors: list[float] = []
        offsets: list[float] = []
        misses: list[str] = []
        for text, phrases in SENTENCES:
            pcm, rate, stamps = render(speech, model, voice, text)
            audio16 = listener.to16k(pcm, rate)
            if len(stamps) != len(phrases):
                misses.append(f"{text!r}: {len(stamps)} spans for {len(phrases)} words")
            aligned = listener.align(audio16, " ".join(phrases))
            cursor = 0
            for k, (stamp, phrase) in enumerate(zip(stamps, phrases, strict=False)):
                total += 1
                s, e = int(stamp["start"] * 16), int(stamp["end"] * 16)
                # its own word against the words it could have drifted onto: the one
                # before and the one after
                near = phrases[max(0, k - 1) : k + 2]
                heard = listener.which(audio16[s:e], near)
                if not heard:  # no path through a very short word: 30 ms more each side
                    heard = listener.which(audio16[max(0, s - 480) : e + 480], near)
                if heard == phrase:
                    held += 1
                else:
                    misses.append(f"{stamp['text']!r} heard as {heard!r}")
                n = len(phrase.split())
                if cursor + n <= len(aligned):
                    a_start, a_end = aligned[cursor][1], aligned[cursor + n - 1][2]
                    errors.append((abs(stamp["start"] - a_start) + abs(stamp["end"] - a_end)) / 2)
                    offsets.append(stamp["start"] - a_start)
                cursor += n
        accuracy = held / total if total else 0.0
        error = statistics.fmean(errors) if errors else float("nan")
        results[label] = (accuracy, error)
        offset = statistics.median(offsets) if offsets else float("nan")
        rows.append(
            f"| {label} | {total} | {accuracy:.1%} | {error:.0f} | {offset:+.0f} | "
            f"{'; '.join(misses[:4]) or '-'} |"
        )
    return rows, results


def main() -> None:
    print("## Text layer cost (CPU, best of 15)\n")
    if "--spans-only" not in sys.argv:
        print("\n".join(text_costs()))
    print("\n## Word spans against the audio\n")
    rows, _ = spans()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
