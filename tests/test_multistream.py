"""ElevenLabs' ``multi-stream-input`` WebSocket driven with a plain ``websockets`` client:
contexts, keep-alives, the alignment time base, and bad input (each a clear message on
its context, or a 1008 close with a reason; never 1011)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .conftest import Server
from .waiting import wait_for

RACHEL = "21m00Tcm4TlvDq8ikWAM"
PATH = f"/v1/text-to-speech/{RACHEL}/multi-stream-input"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("multistream"), workers=2)
    yield server
    server.stop()


def ws(
    srv: Server, query: str = "model_id=eleven_flash_v2_5&output_format=pcm_16000", path: str = PATH
) -> ClientConnection:
    return connect(
        srv.url.replace("http", "ws", 1) + f"{path}?{query}", open_timeout=30, close_timeout=30
    )


def send(c: ClientConnection, **msg: Any) -> None:
    c.send(json.dumps(msg))


def until_final(c: ClientConnection, cid: str) -> tuple[list[dict], float]:
    """Messages of context ``cid`` up to its isFinal, and its audio in seconds (16 kHz)."""
    seen, samples = [], 0
    while True:
        m = json.loads(c.recv(timeout=60))
        assert "contextId" in m, m
        if m["contextId"] != cid:
            continue
        seen.append(m)
        if m.get("audio"):
            samples += len(base64.b64decode(m["audio"])) // 2
        if m.get("isFinal"):
            return seen, samples / 16000


def test_two_contexts_keepalives_and_close_socket(srv: Server) -> None:
    with ws(srv) as c:
        send(
            c,
            text=" ",
            context_id="a",
            voice_settings={"stability": 0.3, "speed": 1.1},
            pronunciation_dictionary_locators=[],
        )
        send(c, text=" ", context_id="b", voice_settings={"stability": 0.9})
        send(c, text="")  # keep-alives: none of them ends anything
        send(c, text="", context_id="a")
        send(c, context_id="a", keep_alive=True)
        send(c, text="Hello there. ", context_id="a")
        send(c, text="The weather is cold today.", context_id="b", flush=True)
        send(c, context_id="a", close_context=True)
        finals, audio = set(), {"a": 0, "b": 0}
        while finals != {"a", "b"}:
            m = json.loads(c.recv(timeout=60))
            assert "error" not in m and "message" not in m, m
            if m.get("audio"):
                audio[m["contextId"]] += len(base64.b64decode(m["audio"]))
            if m.get("isFinal"):
                finals.add(m["contextId"])
            if m["contextId"] == "b" and m.get("alignment") and "b" not in finals:
                send(c, context_id="b", close_context=True)
        assert audio["a"] > 16000 and audio["b"] > 16000  # over half a second each
        send(c, text="Once more. ", context_id="c")
        send(c, close_socket=True)  # finishes c, then closes with 1000
        _, seconds = until_final(c, "c")
        assert seconds > 0.3
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


@pytest.mark.parametrize("sync", [False, True])
def test_alignment_time_base(srv: Server, sync: bool) -> None:
    """Without sync_alignment each alignment restarts at zero (pipecat adds the spans);
    with it, times run from the context's start (livekit uses them as given). Either
    way the spans cover the context's audio."""
    query = "model_id=eleven_flash_v2_5&output_format=pcm_16000&auto_mode=true"
    with ws(srv, query + ("&sync_alignment=true" if sync else "")) as c:
        send(c, text="The quick brown fox jumps. Please call me back tomorrow. ", context_id="x")
        send(c, context_id="x", close_context=True)
        seen, seconds = until_final(c, "x")
    aligns = [m["alignment"] for m in seen if m.get("alignment")]
    assert len(aligns) == 2
    starts = [a["charStartTimesMs"][0] for a in aligns]
    ends = [a["charStartTimesMs"][-1] + a["charDurationsMs"][-1] for a in aligns]
    if sync:
        assert starts[1] >= ends[0] - 1 and ends[1] <= seconds * 1000 + 5
    else:
        assert starts == [0, 0] and sum(ends) <= seconds * 1000 + 5
    covered = ends[1] if sync else sum(ends)  # the spans reach the end of the audio
    assert covered >= seconds * 1000 - 200, (covered, seconds)


def test_reused_unknown_and_too_many_contexts(srv: Server) -> None:
    with ws(srv) as c:
        send(c, text="Short. ", context_id="once")
        send(c, context_id="once", close_context=True)
        until_final(c, "once")
        send(c, text="Again? ", context_id="once")
        m = json.loads(c.recv(timeout=30))
        assert m["contextId"] == "once" and m["error"] == "context_closed", m
        assert json.loads(c.recv(timeout=30)) == {"isFinal": True, "contextId": "once"}
        send(c, context_id="never", flush=True)
        m = json.loads(c.recv(timeout=30))
        assert m["error"] == "context_not_found" and "never" in m["message"]
        json.loads(c.recv(timeout=30))  # its isFinal
        for n in range(1000):  # 1,000 contexts on one socket, none closed
            send(c, text=" ", context_id=f"ctx{n}")
        refused = 0
        while refused < 1000 - 16:
            m = json.loads(c.recv(timeout=30))
            if m.get("error"):
                assert m["error"] == "max_active_contexts", m
                refused += 1
        send(c, text="Still speaking. ", context_id="ctx0")
        send(c, context_id="ctx0", close_context=True)
        _, seconds = until_final(c, "ctx0")
        assert seconds > 0.3  # the socket is still usable


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"\x00\x01binary", "binary frames"),
        ("not json", "invalid message"),
        ('{"text": "hi", "context_id": 5}', "invalid message"),
        (
            '{"text": "Hi.", "context_id": "a", "voice_settings": {"stability": 7}}',
            "invalid message",
        ),
    ],
)
def test_bad_frames_close_with_1008_and_a_reason(srv: Server, bad: Any, reason: str) -> None:
    with ws(srv) as c:
        c.send(bad)
        m = json.loads(c.recv(timeout=30))
        assert reason in m["message"], m
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=30)
        assert closed.value.rcvd.code == 1008 and reason in closed.value.rcvd.reason


def test_unknown_voice_and_format_and_unknown_path(srv: Server) -> None:
    bad_voice = PATH.replace(RACHEL, "nobody")
    with ws(srv, path=bad_voice) as c:
        send(c, text="Hello there. ", context_id="v", flush=True)
        m = json.loads(c.recv(timeout=30))
        assert m["error"] == "voice_not_found" and m["contextId"] == "v", m
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=30)
        assert closed.value.rcvd.code == 1008
    with ws(srv, "output_format=wav_9") as c:
        assert "output_format" in json.loads(c.recv(timeout=30))["message"]
    with ws(srv, path="/v1/text-to-speech/x/nothing-here") as c:
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=30)
        assert closed.value.rcvd.code == 1008
        assert "no WebSocket route /v1/text-to-speech/x/nothing-here" in closed.value.rcvd.reason


# -- keys: quota and history, as on every other route --------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from .test_elevenlabs import create_key

    data = tmp_path_factory.mktemp("multistream-keys")
    keys = {
        "alice": create_key(data, "--name", "alice"),
        "small": create_key(data, "--name", "small", "--quota-chars", "30"),
    }
    server = Server(data, workers=2)
    server.keys = keys  # type: ignore[attr-defined]
    yield server
    server.stop()


def keyed_ws(srv: Server, who: str, query: str = "output_format=pcm_16000") -> ClientConnection:
    return connect(
        srv.url.replace("http", "ws", 1) + f"{PATH}?{query}",
        open_timeout=30,
        additional_headers={"xi-api-key": srv.keys[who]},
    )  # type: ignore[attr-defined]


def test_quota_spans_the_contexts_of_a_socket(keyed: Server) -> None:
    with keyed_ws(keyed, "small") as c:  # 30 characters in all, across contexts
        send(c, text="Twenty characters ok. ", context_id="a", flush=True)
        until_final_or_audio = []
        while not any(m.get("audio") for m in until_final_or_audio):
            until_final_or_audio.append(json.loads(c.recv(timeout=30)))
        send(c, text="Twenty more are not. ", context_id="b", flush=True)
        messages = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(json.loads(c.recv(timeout=30)))
    assert messages[-1]["error"] == "quota_exceeded" and messages[-1]["contextId"] == "b"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_history_and_enable_logging(keyed: Server) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {keyed.keys['alice']}"}  # type: ignore[attr-defined]

    def texts() -> list[str]:
        rows = httpx.get(f"{keyed.url}/v1/history", headers=auth, timeout=30).json()["data"]
        return [r.get("text", "") for r in rows]

    for logging, text in (("true", "Remember this one. "), ("false", "Forget this one. ")):
        with keyed_ws(keyed, "alice", f"output_format=pcm_16000&enable_logging={logging}") as c:
            send(c, text=text, context_id="h")
            send(c, context_id="h", close_context=True)
            until_final(c, "h")
    # a generation is recorded once its audio is all out, not necessarily before its
    # isFinal reaches the client: wait for the kept one, then the other is surely absent
    # (the sessions ran one after the other)
    seen = wait_for(
        texts,
        lambda rows: any("Remember this one" in t for t in rows),
        "the logged context's generation in the history",
        timeout=60,
    )
    assert not any("Forget this one" in t for t in seen), seen
