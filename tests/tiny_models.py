"""Tiny ONNX models with the inputs and outputs of real Piper and Kokoro exports.

No weights can be downloaded here, so the tests build stand-ins with
``onnx.helper``: each turns its phoneme ids into a tone whose length follows
the durations it reports (frames × hop), so a test can check that the audio
orate returns is exactly what the model made and that timestamps follow the
model's durations. Piper's pitch follows the speaker id; Kokoro's loudness
follows the style vector, so speaker choice and voice blends are audible.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

PIPER_HOP = 256
KOKORO_HOP = 600
PIPER_FRAMES = 4  # per phoneme id at length_scale 1
KOKORO_FRAMES = 3  # per token at speed 1
IPA = sorted(set("abcdefghijklmnopqrstuvwxyzæðŋɐɑɒɔəɚɛɜɡɪɹɾʃʊʌʒʔθˈˌːᵻ .,?!-ɬʎʁɲɣχçʝβɕʑ̃"))


def _const(name: str, value: float | list[float], dtype: int = TensorProto.FLOAT):
    arr = np.array(value, dtype=np.float32 if dtype == TensorProto.FLOAT else np.int64)
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=helper.make_tensor(name + "_v", dtype, arr.shape, arr.ravel().tolist()),
    )


def _save(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_piper(
    directory: Path, name: str, *, speakers: list[str] | None = None, sample_rate: int = 16000
) -> Path:
    """``NAME.onnx`` + ``NAME.onnx.json`` in Piper's format."""
    inputs = [
        helper.make_tensor_value_info("input", TensorProto.INT64, [1, "T"]),
        helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
    ]
    nodes = [
        helper.make_node("Cast", ["input"], ["x"], to=TensorProto.FLOAT),
        _const("zero", 0.0),
        _const("one", 1.0),
        _const("idx1", [1], TensorProto.INT64),
        helper.make_node("Gather", ["scales", "idx1"], ["ls"], axis=0),
        _const("frames", float(PIPER_FRAMES)),
        helper.make_node("Mul", ["ls", "frames"], ["fp_raw"]),
        helper.make_node("Ceil", ["fp_raw"], ["fp"]),
        helper.make_node("Mul", ["x", "zero"], ["xz"]),
        helper.make_node("Add", ["xz", "one"], ["ones"]),
        helper.make_node("Mul", ["ones", "fp"], ["dur_f"]),
        helper.make_node("Cast", ["dur_f"], ["durations"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["dur_f"], ["total_frames"], keepdims=0),
        _const("hop", float(PIPER_HOP)),
        helper.make_node("Mul", ["total_frames", "hop"], ["n"]),
        helper.make_node("Range", ["zero_s", "n", "one_s"], ["t"]),
        _const("zero_s", 0.0),
        _const("one_s", 1.0),
        _const("base_freq", 0.06),
    ]
    # Constant nodes must come before their use: move them to the front
    nodes = [n for n in nodes if n.op_type == "Constant"] + [
        n for n in nodes if n.op_type != "Constant"
    ]
    if speakers:
        inputs.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        nodes += [
            helper.make_node("Cast", ["sid"], ["sid_f"], to=TensorProto.FLOAT),
            _const("half", 0.5),
            helper.make_node("Mul", ["sid_f", "half"], ["sid_half"]),
            helper.make_node("Add", ["sid_half", "one"], ["sid_scale"]),
            helper.make_node("Mul", ["base_freq", "sid_scale"], ["freq"]),
        ]
        nodes = [n for n in nodes if n.op_type == "Constant"] + [
            n for n in nodes if n.op_type != "Constant"
        ]
    else:
        nodes.append(helper.make_node("Identity", ["base_freq"], ["freq"]))
    nodes += [
        helper.make_node("Mul", ["t", "freq"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        _const("amp", 0.3),
        helper.make_node("Mul", ["wave", "amp"], ["audio_flat"]),
        _const("shape", [1, 1, -1], TensorProto.INT64),
        helper.make_node("Reshape", ["audio_flat", "shape"], ["output"]),
    ]
    nodes = [n for n in nodes if n.op_type == "Constant"] + [
        n for n in nodes if n.op_type != "Constant"
    ]
    outputs = [
        helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "N"]),
        helper.make_tensor_value_info("durations", TensorProto.INT64, [1, "T"]),
    ]
    path = directory / f"{name}.onnx"
    _save(helper.make_graph(nodes, name, inputs, outputs), path)
    id_map = {"_": [0], "^": [1], "$": [2]}
    id_map.update({ch: [i + 3] for i, ch in enumerate(IPA)})
    config = {
        "audio": {"sample_rate": sample_rate, "quality": "low"},
        "espeak": {"voice": "en-us"},
        "language": {"code": "en_US"},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_id_map": id_map,
        "num_speakers": len(speakers) if speakers else 1,
        "speaker_id_map": {s: i for i, s in enumerate(speakers or [])},
        "dataset": name,
    }
    (directory / f"{name}.onnx.json").write_text(json.dumps(config))
    return path


def build_kokoro(
    directory: Path,
    name: str = "kokoro",
    voices: tuple[str, ...] = ("af_bella", "af_sky", "bm_george"),
) -> Path:
    """``NAME.onnx`` + ``NAME.voices.bin`` + ``NAME.config.json`` in kokoro-onnx's format."""
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"]),
        helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
        helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1]),
    ]
    nodes = [
        _const("zero", 0.0),
        _const("one", 1.0),
        _const("frames", float(KOKORO_FRAMES)),
        _const("hop", float(KOKORO_HOP)),
        _const("zero_s", 0.0),
        _const("one_s", 1.0),
        _const("freq", 0.05),
        _const("base_amp", 0.05),
        _const("flat", [-1], TensorProto.INT64),
        helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "zero"], ["xz"]),
        helper.make_node("Add", ["xz", "one"], ["ones"]),
        helper.make_node("Div", ["frames", "speed"], ["fp_raw"]),
        helper.make_node("Ceil", ["fp_raw"], ["fp"]),
        helper.make_node("Mul", ["ones", "fp"], ["dur_f"]),
        helper.make_node("Reshape", ["dur_f", "flat"], ["dur_flat"]),
        helper.make_node("Cast", ["dur_flat"], ["duration"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["dur_f"], ["total_frames"], keepdims=0),
        helper.make_node("Mul", ["total_frames", "hop"], ["n"]),
        helper.make_node("Range", ["zero_s", "n", "one_s"], ["t"]),
        helper.make_node("Mul", ["t", "freq"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Abs", ["style"], ["style_abs"]),
        helper.make_node("ReduceMean", ["style_abs"], ["style_mean"], keepdims=0),
        helper.make_node("Add", ["style_mean", "base_amp"], ["amp"]),
        helper.make_node("Mul", ["wave", "amp"], ["waveform"]),
    ]
    outputs = [
        helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("duration", TensorProto.INT64, ["T"]),
    ]
    path = directory / f"{name}.onnx"
    _save(helper.make_graph(nodes, name, inputs, outputs), path)
    rng = np.random.default_rng(7)
    styles = {
        v: (rng.random((510, 1, 256), dtype=np.float32) * (0.1 + 0.3 * i))
        for i, v in enumerate(voices)
    }
    with open(directory / f"{name}.voices.bin", "wb") as f:
        np.savez(f, **styles)
    vocab = {ch: i + 1 for i, ch in enumerate(IPA)}
    (directory / f"{name}.config.json").write_text(json.dumps({"vocab": vocab}))
    return path
