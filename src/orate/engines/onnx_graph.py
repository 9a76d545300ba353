"""Expose a TTS model's per-phoneme durations as an extra graph output, without ``onnx``.

Piper, Kokoro and hibari all predict how many frames each phoneme lasts,
round them (``Ceil`` or ``Round``) and run a ``CumSum`` over them to build the
alignment that expands phonemes to frames. Exports made for inference often
drop that tensor from the outputs, which leaves only guesses for timestamps.
Adding it back as a graph output gives the exact frame counts the audio was
built from: the timestamps are measured, not estimated.

The edit works on the serialized ModelProto directly (a few protobuf fields),
so serving needs neither the ``onnx`` package nor a modified copy on disk:
the patched bytes go straight to ``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

from collections.abc import Iterator

DURATIONS = "orate_durations"  # the documented name we report; the tensor keeps its own
_ROUNDING = {"Round", "Ceil"}
_MODEL_GRAPH, _GRAPH_NODE, _GRAPH_OUTPUT = 7, 1, 12
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP = 1, 2, 4


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field, wire type, start, end) of each field; for varints start is the value."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value, pos
        elif wire == 1:
            yield field, wire, pos, pos + 8
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield field, wire, pos, pos + size
            pos += size
        elif wire == 5:
            yield field, wire, pos, pos + 4
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _node(buf: memoryview, start: int, end: int) -> tuple[str, list[str], list[str]]:
    op, inputs, outputs = "", [], []
    for field, wire, s, e in _fields(buf, start, end):
        if wire != 2:
            continue
        if field == _NODE_OP:
            op = bytes(buf[s:e]).decode()
        elif field == _NODE_INPUT:
            inputs.append(bytes(buf[s:e]).decode())
        elif field == _NODE_OUTPUT:
            outputs.append(bytes(buf[s:e]).decode())
    return op, inputs, outputs


def duration_tensor(nodes: list[tuple[str, list[str], list[str]]]) -> str | None:
    """The input of the ``CumSum`` that turns rounded phoneme durations into an alignment."""
    producer = {out: (op, ins) for op, ins, outs in nodes for out in outs}
    for op, ins, _ in nodes:
        if op != "CumSum" or not ins:
            continue
        name = ins[0]
        for _ in range(5):  # Cast / Clip / Gather may sit between the rounding and the sum
            found = producer.get(name)
            if found is None:
                break
            if found[0] in _ROUNDING:
                return ins[0]
            if not found[1]:
                break
            name = found[1][0]
    return None


def with_durations(model: bytes) -> tuple[bytes, str | None]:
    """The model with its duration tensor added as a last output, and that tensor's name.

    Returns the bytes unchanged and ``None`` when the model already outputs it,
    or has no recognizable duration step (the caller then gives no timestamps
    rather than invented ones).
    """
    buf = memoryview(model)
    graph: tuple[int, int, int] | None = None  # tag start, payload start, payload end
    pos = 0
    while pos < len(buf):
        tag_start = pos
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            size, pos = _varint(buf, pos)
            if field == _MODEL_GRAPH:
                graph = (tag_start, pos, pos + size)
            pos += size
        elif wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if graph is None:
        return model, None
    tag_start, g_start, g_end = graph
    nodes = []
    outputs = []
    for field, wire, s, e in _fields(buf, g_start, g_end):
        if wire == 2 and field == _GRAPH_NODE:
            nodes.append(_node(buf, s, e))
        elif wire == 2 and field == _GRAPH_OUTPUT:
            for f2, w2, s2, e2 in _fields(buf, s, e):
                if f2 == 1 and w2 == 2:
                    outputs.append(bytes(buf[s2:e2]).decode())
    name = duration_tensor(nodes)
    if name is None or name in outputs:
        return model, name
    encoded = name.encode()
    value_info = b"\x0a" + _encode_varint(len(encoded)) + encoded  # ValueInfoProto.name
    extra = _encode_varint(_GRAPH_OUTPUT << 3 | 2) + _encode_varint(len(value_info)) + value_info
    new_len = g_end - g_start + len(extra)
    header = _encode_varint(_MODEL_GRAPH << 3 | 2) + _encode_varint(new_len)
    patched = b"".join(
        (bytes(buf[:tag_start]), header, bytes(buf[g_start:g_end]), extra, bytes(buf[g_end:]))
    )
    return patched, name


_GRAPH_INITIALIZER = 5
_TENSOR_RAW, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 9, 13, 14
EXTERNAL_ALIGN = 4096  # onnxruntime maps external data in place when its offset is page-aligned


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _spans(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field, wire, tag start, payload start, payload end) of each field."""
    pos = start
    while pos < end:
        tag_start = pos
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, after = _varint(buf, pos)
            yield field, wire, tag_start, pos, after
            pos = after
        elif wire == 1:
            yield field, wire, tag_start, pos, pos + 8
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield field, wire, tag_start, pos, pos + size
            pos += size
        elif wire == 5:
            yield field, wire, tag_start, pos, pos + 4
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def with_external_data(
    model: bytes, location: str, threshold: int = 1024
) -> tuple[bytes, list[tuple[int, memoryview]]]:
    """The model with every initializer of ``threshold`` bytes or more moved out to the
    file ``location`` (beside the model), and the pieces to write there: (offset, data).

    onnxruntime maps such a file into memory instead of copying the weights into each
    session, so the sessions of a process and the processes of a machine that load the
    same file share one copy of its pages (the page cache). Offsets are page-aligned.
    """
    buf = memoryview(model)
    pieces: list[tuple[int, memoryview]] = []
    offset = 0
    name = location.encode()

    def tensor(start: int, end: int) -> bytes | None:
        nonlocal offset
        raw = None
        kept = []
        for field, _wire, tag_start, s, e in _spans(buf, start, end):
            if field == _TENSOR_RAW:
                raw = (s, e)
            elif field in (_TENSOR_EXTERNAL, _TENSOR_LOCATION):
                return None  # already external: leave it as it is
            else:
                kept.append(bytes(buf[tag_start:e]))
        if raw is None or raw[1] - raw[0] < threshold:
            return None
        size = raw[1] - raw[0]
        offset += -offset % EXTERNAL_ALIGN
        pieces.append((offset, buf[raw[0] : raw[1]]))
        entries = b"".join(
            _field(_TENSOR_EXTERNAL, _field(1, key) + _field(2, value))
            for key, value in (
                (b"location", name),
                (b"offset", str(offset).encode()),
                (b"length", str(size).encode()),
            )
        )
        offset += size
        return b"".join(kept) + entries + _encode_varint(_TENSOR_LOCATION << 3) + b"\x01"

    out = []
    for field, wire, tag_start, s, e in _spans(buf, 0, len(buf)):
        if field != _MODEL_GRAPH or wire != 2:
            out.append(bytes(buf[tag_start:e]))
            continue
        graph = []
        for g_field, g_wire, g_tag, gs, ge in _spans(buf, s, e):
            moved = tensor(gs, ge) if g_field == _GRAPH_INITIALIZER and g_wire == 2 else None
            graph.append(
                bytes(buf[g_tag:ge]) if moved is None else _field(_GRAPH_INITIALIZER, moved)
            )
        out.append(_field(_MODEL_GRAPH, b"".join(graph)))
    return b"".join(out), pieces
