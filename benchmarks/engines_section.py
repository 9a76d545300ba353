"""Section "engines": what the server adds around an ONNX engine, and what the upstream
proxy (gateway) adds to the time to first byte.

1. Pipeline overhead around a neural engine. The repository's tiny ONNX stand-ins
   (``tests/tiny_models.py``: a Piper voice and a Kokoro model with the real inputs
   and outputs, no weights) go into a temporary models dir; one server with
   ``--workers 1``, the cache and the history off serves them. Turn about, one
   request to the server and, in this process, the same model through orate's
   own engine object: espeak-ng's ``phonemize``, the bare ``session.run`` on the
   exact feeds the engine builds (captured from one ``synthesize`` call), and the
   whole ``engine.synthesize``. Server p50 − ``session.run`` p50 is the overhead
   checked.
2. The gateway's added time to first byte. An upstream orate U (cache on, the
   texts rendered once, so it answers from memory) and a gateway orate G whose
   providers file sends the model ``relay-1`` to U's ``tts-1`` (mp3 passes
   through untouched; checked byte for byte). One request at a time, U directly
   and through G in alternating order, both servers idle again before the next.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    HOST,
    SPEECH_PATH,
    TEXTS,
    BenchmarkError,
    CpuClock,
    HttpClient,
    Sample,
    cpu_snapshot,
    env_text,
    fmt_ms,
    outside_load,
    progress,
    serving,
    settle,
    verdict,
)

REPO = Path(__file__).resolve().parents[1]
LABEL = "11 words"
ENGINE_WORKERS = 1
GOAL_OVERHEAD_MS = 2.0  # server p50 − session.run p50
GOAL_PROXY_MS = 2.0  # gateway p50 TTFB − upstream p50 TTFB
PROXY_FORMAT = "mp3"
PROXY_VOICE = "alloy"
RELAY_MODEL = "relay-1"


@dataclass(frozen=True)
class Neural:
    key: str  # column name
    model: str  # the model id in the catalog (the engine's name)
    voice: str


NEURAL = (
    Neural("piper", "piper:en_US-tiny-low", "default"),
    Neural("kokoro", "kokoro", "af_bella"),
)

ENGINE_ENV = {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "false"}
UPSTREAM_ENV = {"ORATE_CACHE_ENABLED": "true"}
GATEWAY_ENV = {"ORATE_CACHE_ENABLED": "false"}
PROVIDERS = """\
[[provider]]
name = "u"
kind = "openai"
base_url = "http://{host}:{port}/v1"
models = ["{relay}"]
upstream_model = {{ "{relay}" = "tts-1" }}
formats = ["mp3", "wav", "pcm"]
"""


@dataclass(frozen=True)
class EnginesBudget:
    engine_seconds: float  # alternation server / in-process, per model
    engine_min: int  # at least this many of each
    proxy_rounds: int  # requests per route and text
    proxy_warm: int  # gateway requests per text before measuring


FULL = EnginesBudget(engine_seconds=7.0, engine_min=50, proxy_rounds=30, proxy_warm=3)
QUICK = EnginesBudget(engine_seconds=2.0, engine_min=20, proxy_rounds=10, proxy_warm=2)


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass
class EngineResult:
    """One neural model: the server and the in-process pieces, measured turn about."""

    server: list[float] = field(default_factory=list)  # request latency
    phonemize: list[float] = field(default_factory=list)
    run: list[float] = field(default_factory=list)  # session.run on the engine's feeds
    synthesize: list[float] = field(default_factory=list)  # engine.synthesize in process
    errors: int = 0
    samples: int = 0  # audio samples per request, in process
    sample_rate: int = 0
    response_bytes: int = 0
    feeds: str = ""  # shapes of the captured inputs

    @property
    def overhead(self) -> float:
        return _p50(self.server) - _p50(self.run)


@dataclass
class ProxyRoute:
    samples: list[Sample] = field(default_factory=list)
    gateway_cpu: list[float] = field(default_factory=list)  # G main process, per request
    upstream_cpu: list[float] = field(default_factory=list)  # U main process, per request

    @property
    def good(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def p50(self, attr: str) -> float:
        return _p50([getattr(s, attr) for s in self.good])

    def cpu_ms(self, which: list[float]) -> float:
        return 1e3 * sum(which) / len(which) if which else math.nan


@dataclass
class EnginesResults:
    engines: dict[str, EngineResult] = field(default_factory=dict)
    proxy: dict[tuple[str, str], ProxyRoute] = field(default_factory=dict)  # (text, route)
    passthrough: dict[str, str] = field(default_factory=dict)  # per text: what was checked
    skipped: str | None = None
    versions: str = ""
    load: str = "unknown"
    budget: EnginesBudget = FULL


# -- 1. pipeline overhead around an ONNX engine -------------------------------------


class _Recorder:
    """Stands in for an onnxruntime session for one call, keeping the feeds it got."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.feeds: dict[str, Any] | None = None

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        self.feeds = dict(feeds)
        return self.session.run(names, feeds)


def _build_models(directory: Path) -> None:
    sys.path.insert(0, str(REPO))
    try:
        from tests.tiny_models import build_kokoro, build_piper
    finally:
        sys.path.remove(str(REPO))
    build_piper(directory, "en_US-tiny-low")
    build_kokoro(directory)


class InProcess:
    """One neural engine loaded here, as the server's worker loads it."""

    def __init__(self, neural: Neural, text: str, registry: Any) -> None:
        from orate.engines.base import VoiceParams
        from orate.speech.text import normalize, split_sentences

        self.engine: Any = registry.engine(neural.model)
        self.params = self.engine.check_voice(VoiceParams(engine=neural.model, voice=neural.voice))
        text = normalize(text)
        spans = split_sentences(text)
        if len(spans) != 1:
            raise BenchmarkError(f"engines: expected one sentence, got {len(spans)}")
        self.sentence = text[spans[0][0] : spans[0][1]]  # what the server gives the engine
        # the phonemizer's language, as the engine picks it
        self.language = getattr(self.engine, "espeak_voice", None) or "en-us"
        # the exact inputs the engine sends: captured from one synthesize call
        lazy = self.engine.session
        session = lazy.get()
        recorder = _Recorder(session)
        lazy._session = recorder  # LazySession.get() hands out whatever it holds
        try:
            result = self.engine.synthesize(self.sentence, self.params, 1.0, _discard)
        finally:
            lazy._session = session
        if recorder.feeds is None:
            raise BenchmarkError(f"engines: {neural.model} did not run its model")
        self.session = session
        self.feeds = recorder.feeds
        self.samples = result.samples

    def phonemize(self) -> None:
        from orate.engines.espeak import phonemize

        phonemize(self.sentence, self.language)

    def run(self) -> None:
        self.session.run(None, self.feeds)

    def synthesize(self) -> None:
        self.engine.synthesize(self.sentence, self.params, 1.0, _discard)


def _discard(pcm: Any, events: Any) -> bool:
    return True


def _timed(fn: Callable[[], None], into: list[float]) -> None:
    start = time.perf_counter()
    fn()
    into.append(time.perf_counter() - start)


def bench_engine(
    runner: asyncio.Runner,
    port: int,
    neural: Neural,
    budget: EnginesBudget,
    registry: Any,
    result: EngineResult,
) -> None:
    text = TEXTS[LABEL]
    local = InProcess(neural, text, registry)
    result.samples = local.samples
    result.sample_rate = local.engine.sample_rate
    result.feeds = ", ".join(f"{k} {list(getattr(v, 'shape', ()))}" for k, v in local.feeds.items())
    body = json.dumps(
        {"model": neural.model, "voice": neural.voice, "input": text, "response_format": "wav"}
    ).encode()
    client = HttpClient(HOST, port)
    try:
        for _ in range(5):  # the worker loads the model on its first request
            sample = runner.run(client.safe_post(SPEECH_PATH, body))
            if not sample.ok:
                raise BenchmarkError(
                    f"engines: warm-up of {neural.model} failed (status {sample.status})"
                )
            local.synthesize()
        result.response_bytes = sample.nbytes
        deadline = time.perf_counter() + budget.engine_seconds
        while time.perf_counter() < deadline or len(result.run) < budget.engine_min:
            sample = runner.run(client.safe_post(SPEECH_PATH, body))
            if sample.ok:
                result.server.append(sample.latency)
            else:
                result.errors += 1
            _timed(local.phonemize, result.phonemize)
            _timed(local.run, result.run)
            _timed(local.synthesize, result.synthesize)
    finally:
        runner.run(client.close())
    progress(
        f"engines {neural.key}: server p50 {_p50(result.server) * 1e3:.2f} ms, "
        f"session.run {_p50(result.run) * 1e3:.2f} ms, phonemize "
        f"{_p50(result.phonemize) * 1e3:.2f} ms, synthesize "
        f"{_p50(result.synthesize) * 1e3:.2f} ms ({len(result.server)} requests)"
    )


def bench_engines(
    runner: asyncio.Runner,
    budget: EnginesBudget,
    extra_env: dict[str, str],
    results: EnginesResults,
    notes: list[str],
) -> None:
    import onnxruntime

    from orate.engines.registry import EngineRegistry

    models = Path(tempfile.mkdtemp(prefix="orate-bench-models-"))
    try:
        _build_models(models)
        registry = EngineRegistry(models)  # the engines this process compares against
        results.versions = f"onnxruntime {onnxruntime.__version__}"
        env = {**extra_env, **ENGINE_ENV, "ORATE_MODELS_DIR": str(models)}
        with serving(env, notes, "engines (neural)", workers=ENGINE_WORKERS) as (proc, port, _):
            progress(f"engines: neural server ready (pid {proc.pid}, port {port})")
            for neural in NEURAL:
                result = results.engines[neural.key] = EngineResult()
                bench_engine(runner, port, neural, budget, registry, result)
                expected = 2 * result.samples
                if not expected <= result.response_bytes - 44 <= expected + 64:
                    notes.append(
                        f"engines {neural.key}: the server's wav is "
                        f"{result.response_bytes} bytes, the engine in this process "
                        f"made {result.samples} samples ({expected} bytes of PCM)"
                    )
                if result.errors:
                    notes.append(f"engines {neural.key}: {result.errors} requests failed")
            if proc.poll() is not None:
                notes.append(f"the neural server exited early (code {proc.returncode})")
    finally:
        shutil.rmtree(models, ignore_errors=True)


# -- 2. the gateway's added time to first byte ---------------------------------------


def _body(model: str, text: str) -> bytes:
    return json.dumps(
        {"model": model, "voice": PROXY_VOICE, "input": text, "response_format": PROXY_FORMAT}
    ).encode()


async def _fetch(client: HttpClient, body: bytes) -> tuple[Sample, bytes]:
    try:
        async with asyncio.timeout(60):
            sample, _, data = await client.request("POST", SPEECH_PATH, body)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError) as exc:
        await client.close()
        raise BenchmarkError(
            f"engines proxy: request failed ({type(exc).__name__}: {exc})"
        ) from None
    if not sample.ok:
        raise BenchmarkError(f"engines proxy: status {sample.status}: {data[:300]!r}")
    return sample, data


async def _warm_upstream(client: HttpClient, body: bytes) -> bytes:
    """Render once and repeat until U answers from its cache; return that answer."""
    for _ in range(200):
        sample, data = await _fetch(client, body)
        if sample.cache == "hit":
            return data
        await asyncio.sleep(0.02)
    raise BenchmarkError("engines proxy: the upstream's cache never answered with a hit")


def bench_proxy(
    runner: asyncio.Runner,
    budget: EnginesBudget,
    extra_env: dict[str, str],
    results: EnginesResults,
    notes: list[str],
) -> None:
    routes = {"direct": "tts-1", "gateway": RELAY_MODEL}
    for label in TEXTS:
        for route in routes:
            results.proxy[(label, route)] = ProxyRoute()
    tmp = Path(tempfile.mkdtemp(prefix="orate-bench-gateway-"))
    try:
        with serving(
            {**extra_env, **UPSTREAM_ENV}, notes, "engines (upstream U)", workers=ENGINE_WORKERS
        ) as (up, up_port, _):
            (tmp / "providers.toml").write_text(
                PROVIDERS.format(host=HOST, port=up_port, relay=RELAY_MODEL)
            )
            g_env = {
                **extra_env,
                **GATEWAY_ENV,
                "ORATE_PROVIDERS_FILE": str(tmp / "providers.toml"),
            }
            with serving(g_env, notes, "engines (gateway G)", workers=ENGINE_WORKERS) as (
                gw,
                gw_port,
                _,
            ):
                progress(f"engines: upstream (port {up_port}) and gateway (port {gw_port}) ready")
                clients = {
                    "direct": HttpClient(HOST, up_port),
                    "gateway": HttpClient(HOST, gw_port),
                }
                try:
                    _proxy_rounds(runner, budget, routes, clients, up.pid, gw.pid, results, notes)
                finally:
                    for client in clients.values():
                        runner.run(client.close())
                for name, proc in (("upstream", up), ("gateway", gw)):
                    if proc.poll() is not None:
                        notes.append(f"the {name} server exited early (code {proc.returncode})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _proxy_rounds(
    runner: asyncio.Runner,
    budget: EnginesBudget,
    routes: dict[str, str],
    clients: dict[str, HttpClient],
    up_pid: int,
    gw_pid: int,
    results: EnginesResults,
    notes: list[str],
) -> None:
    for label, text in TEXTS.items():
        direct = runner.run(_warm_upstream(clients["direct"], _body(routes["direct"], text)))
        relayed = b""
        for _ in range(budget.proxy_warm):
            _, relayed = runner.run(_fetch(clients["gateway"], _body(RELAY_MODEL, text)))
        results.passthrough[label] = (
            f"byte-identical ({len(direct)} bytes)"
            if relayed == direct
            else f"DIFFERENT: {len(relayed)} bytes through G, {len(direct)} from U"
        )
        if relayed != direct:
            notes.append(
                f"engines proxy {label}: the gateway's mp3 is not U's mp3 "
                f"({len(relayed)} vs {len(direct)} bytes): not passed through"
            )
    settle(gw_pid)
    settle(up_pid)
    order = list(routes)
    for n in range(budget.proxy_rounds):
        for i, (label, text) in enumerate(TEXTS.items()):
            turn = order if (n + i) % 2 == 0 else order[::-1]  # neither always first
            for route in turn:
                rr = results.proxy[(label, route)]
                g0, u0 = cpu_snapshot(gw_pid)[0], cpu_snapshot(up_pid)[0]
                sample = runner.run(
                    clients[route].safe_post(SPEECH_PATH, _body(routes[route], text))
                )
                settle(gw_pid)  # the gateway records the generation after the response
                settle(up_pid)
                rr.gateway_cpu.append(cpu_snapshot(gw_pid)[0] - g0)
                rr.upstream_cpu.append(cpu_snapshot(up_pid)[0] - u0)
                rr.samples.append(sample)
                if route == "direct" and sample.ok and sample.cache != "hit":
                    notes.append(
                        f"engines proxy {label}: a direct request was a cache "
                        f"{sample.cache or '(no header)'}, not a hit"
                    )
    for (label, route), rr in results.proxy.items():
        failed = len(rr.samples) - len(rr.good)
        if failed:
            notes.append(
                f"engines proxy {label} {route}: {failed} of {len(rr.samples)} requests failed"
            )
        progress(
            f"engines proxy {label} {route}: ttfb p50 {rr.p50('ttfb') * 1e3:.2f} ms, "
            f"latency p50 {rr.p50('latency') * 1e3:.2f} ms ({len(rr.good)} requests)"
        )


def run_engines(
    runner: asyncio.Runner, quick: bool, extra_env: dict[str, str], notes: list[str]
) -> EnginesResults:
    budget = QUICK if quick else FULL
    results = EnginesResults(budget=budget)
    clock, start = CpuClock.now(), time.perf_counter()
    try:
        import onnx  # noqa: F401  (tests/tiny_models.py builds the models with it)
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        results.skipped = (
            f"engine overhead skipped: {exc.name} is not installed "
            "(pip install -e '.[neural,test]')"
        )
        progress(results.skipped)
    else:
        bench_engines(runner, budget, extra_env, results, notes)
    bench_proxy(runner, budget, extra_env, results, notes)
    results.load, share = outside_load(clock, time.perf_counter() - start)
    if share > 0.05:
        notes.append(f"outside load during the engines section: {results.load}")
    return results


# -- report ---------------------------------------------------------------------------


def render_engines(r: EnginesResults) -> list[str]:
    lines = [
        "## Engines: pipeline overhead and the gateway",
        "",
        f"During this section: {r.load}.",
        "",
    ]
    lines += _render_overhead(r) + _render_proxy(r)
    return lines


def _render_overhead(r: EnginesResults) -> list[str]:
    if r.skipped:
        return [r.skipped, ""]
    keys = [n.key for n in NEURAL]
    e = r.engines

    def row(name: str, f: Callable[[EngineResult], str]) -> str:
        return "| " + " | ".join([name, *(f(e[k]) for k in keys)]) + " |"

    lines = [
        f"Per-request overhead around an ONNX engine, {LABEL}, wav, c=1: "
        "the tiny stand-in models of `tests/tiny_models.py` (real inputs and outputs, no "
        f"weights; {r.versions}), one server with `--workers {ENGINE_WORKERS}` and "
        f"`{env_text(ENGINE_ENV)}`. Each server request alternates with the same model in "
        "this process through orate's engine object (same session options: one intra-op "
        "and one inter-op thread): espeak-ng `phonemize`, the bare `session.run` on the "
        "exact feeds the engine sent (captured from a `synthesize` call), and the whole "
        "`engine.synthesize` (phonemize, ids, run, PCM, events, 60 ms chunks to a no-op "
        "sink). The server runs the same steps in its worker, then encodes and streams.",
        "",
        "| metric | "
        + " | ".join(f"{n.key} (`{n.model}`, voice `{n.voice}`)" for n in NEURAL)
        + " |",
        "|---|" + "|".join(["---:"] * len(keys)) + "|",
        row("**server** p50 latency, c=1 (ms)", lambda x: fmt_ms(_p50(x.server))),
        row("`session.run` p50 (ms)", lambda x: fmt_ms(_p50(x.run))),
        row("`phonemize` p50 (ms)", lambda x: fmt_ms(_p50(x.phonemize))),
        row("`engine.synthesize` p50, in process (ms)", lambda x: fmt_ms(_p50(x.synthesize))),
        row("**overhead**: server − `session.run` (ms)", lambda x: f"{x.overhead * 1e3:.2f}"),
        row(
            "of which outside the engine: server − `engine.synthesize` (ms)",
            lambda x: f"{(_p50(x.server) - _p50(x.synthesize)) * 1e3:.2f}",
        ),
        row(
            "audio per request (s)",
            lambda x: (
                f"{x.samples / x.sample_rate:.2f} at {x.sample_rate // 1000} kHz"
                if x.sample_rate
                else "n/a"
            ),
        ),
        row("response (kB)", lambda x: f"{x.response_bytes / 1000:.0f}"),
        row("model inputs", lambda x: x.feeds),
        row("server requests measured", lambda x: str(len(x.server))),
        "",
    ]
    for n in NEURAL:
        x = e[n.key]
        ms = x.overhead * 1e3
        lines.append(
            f"- {verdict(ms < GOAL_OVERHEAD_MS)} {n.key} server p50 − "
            f"`session.run` p50: {ms:.2f} ms ({_p50(x.server) * 1e3:.2f} − "
            f"{_p50(x.run) * 1e3:.2f}, measured alternately; goal < "
            f"{GOAL_OVERHEAD_MS:g} ms)"
        )
    return [*lines, ""]


def _render_proxy(r: EnginesResults) -> list[str]:
    labels = list(TEXTS)
    cols = [(t, route) for t in labels for route in ("direct", "gateway")]
    names = {"direct": "U direct", "gateway": "via G"}

    def row(name: str, f: Callable[[ProxyRoute], str]) -> str:
        return "| " + " | ".join([name, *(f(r.proxy[c]) for c in cols)]) + " |"

    b = r.budget
    lines = [
        f"Upstream proxy, {PROXY_FORMAT}: U is an orate with `{env_text(UPSTREAM_ENV)}` "
        "(each text rendered once first, so U answers from its cache), G an orate with "
        f"`{env_text(GATEWAY_ENV)}` and a providers file sending `{RELAY_MODEL}` to U's "
        f"`tts-1` (kind `openai`); both `--workers {ENGINE_WORKERS}`, history on. "
        f"{b.proxy_rounds} requests per column, one at a time, U and G in alternating "
        "order, both servers idle again before the next request. CPU is the main "
        "process's per request, including what it does after the response (history, "
        "audio duration), read from /proc in 10 ms ticks and averaged over the column. "
        "Pass-through: " + "; ".join(f"{t} {v}" for t, v in r.passthrough.items()) + ".",
        "",
        "| metric | " + " | ".join(f"{t} {names[route]}" for t, route in cols) + " |",
        "|---|" + "|".join(["---:"] * len(cols)) + "|",
        row("**p50 time to first byte** (ms)", lambda x: fmt_ms(x.p50("ttfb"))),
        row("p50 latency (ms)", lambda x: fmt_ms(x.p50("latency"))),
        row("G main-process CPU ms per request", lambda x: f"{x.cpu_ms(x.gateway_cpu):.1f}"),
        row("U main-process CPU ms per request", lambda x: f"{x.cpu_ms(x.upstream_cpu):.1f}"),
        row("response (kB)", lambda x: f"{x.good[0].nbytes / 1000:.1f}" if x.good else "n/a"),
        row("requests ok / sent", lambda x: f"{len(x.good)} / {len(x.samples)}"),
        "",
    ]
    for t in labels:
        u, g = r.proxy[(t, "direct")], r.proxy[(t, "gateway")]
        d = (g.p50("ttfb") - u.p50("ttfb")) * 1e3
        lines.append(
            f"- {verdict(d < GOAL_PROXY_MS)} {t} gateway − direct, p50 time to "
            f"first byte: {d:+.2f} ms ({g.p50('ttfb') * 1e3:.2f} − "
            f"{u.p50('ttfb') * 1e3:.2f}, measured alternately; goal < "
            f"{GOAL_PROXY_MS:g} ms); G's main process "
            f"{g.cpu_ms(g.gateway_cpu):.1f} ms CPU per request"
        )
    return [*lines, ""]
