"""Several replicas as one service: PostgreSQL + an S3 store (moto_server) + engines as
Ray actors on a Ray cluster of separate node processes (orate.devcluster, the same
launcher as ``orate dev-cluster``). One cluster is shared by every test here; tests
that break something (a replica or a Ray node killed, the store stopped) come last.

Needs ``ORATE_TEST_POSTGRES_URL`` (a database named ``<that>_scale`` is created on the
same server), ``ray`` and ``moto_server``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hume import HumeClient
from hume.core.api_error import ApiError as HumeApiError
from hume.tts import FormatMp3, PostedUtterance, PostedUtteranceVoiceWithName
from openai import OpenAI

from .waiting import wait_for, wait_until

POSTGRES = os.environ.get("ORATE_TEST_POSTGRES_URL")
ORATE = str(Path(sys.executable).parent / "orate")

pytestmark = pytest.mark.skipif(
    not POSTGRES,
    reason="set ORATE_TEST_POSTGRES_URL (the scale tests run several replicas on one PostgreSQL)",
)
pytest.importorskip("ray")

SHORT = "The quick brown fox jumps over the lazy dog."


def unique(text: str = SHORT) -> str:
    return f"{text} Take {secrets.token_hex(3)}."


def sql(cluster, query: str, *args):  # type: ignore[no-untyped-def]
    import asyncpg

    async def run():  # type: ignore[no-untyped-def]
        conn = await asyncpg.connect(cluster.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):  # type: ignore[no-untyped-def]
    from orate.devcluster import DevCluster

    base = tmp_path_factory.mktemp("cluster")
    name = POSTGRES.rsplit("/", 1)[-1] + "_scale"  # type: ignore[union-attr]
    c = DevCluster(
        base,
        base_port=19260,
        ray_port=19389,
        replicas=2,
        ray_nodes=2,
        database_url=POSTGRES,
        database_name=name,
        extra_env={"ORATE_JOB_LEASE_SECONDS": "3"},
    )
    c.start()
    try:
        # a third replica on the local pool: replicas may mix backends
        c.start_replica(2, backend="local")
        # one actor and room for one waiting request: for back-pressure and cancel
        # (and one actor for neural engines only)
        c.start_replica(
            3,
            env={
                "ORATE_RAY_ACTORS": "1",
                "ORATE_MAX_QUEUE": "1",
                "ORATE_CACHE_ENABLED": "false",
                "ORATE_RAY_NEURAL_ACTORS": "1",
                "ORATE_RAY_NEURAL_NUM_CPUS": "0.5",
            },
        )
        c.wait_replica(2)
        c.wait_replica(3)
        out = subprocess.run(
            [ORATE, "keys", "create", "--name", "admin", "--admin"],
            env=c.replica_env(0),
            capture_output=True,
            text=True,
            check=True,
        )
        c.admin = out.stdout.strip().splitlines()[-1]  # type: ignore[attr-defined]
        # every replica sees that auth is on (each caches it for up to 2 s)
        for i in range(4):
            wait_until(
                lambda i=i: (
                    httpx.post(
                        f"http://127.0.0.1:{c.base_port + i}/v1/audio/speech",
                        json={"model": "tts-1", "voice": "alloy", "input": "Hi."},
                        timeout=60,
                    ).status_code
                    == 401
                ),
                f"replica {i} to require a key",
                interval=0.2,
            )
        yield c
    finally:
        c.stop()


def url(cluster, i: int) -> str:  # type: ignore[no-untyped-def]
    return f"http://127.0.0.1:{cluster.base_port + i}"


def client(cluster, i: int, key: str | None = None) -> httpx.Client:  # type: ignore[no-untyped-def]
    return httpx.Client(
        base_url=url(cluster, i),
        timeout=60,
        headers={"Authorization": f"Bearer {key or cluster.admin}"},
    )


def speak(cluster, i: int, text: str, key: str | None = None, **body) -> httpx.Response:  # type: ignore[no-untyped-def]
    with client(cluster, i, key) as c:
        return c.post(
            "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": text, **body}
        )


def test_replicas_ready_on_the_ray_backend(cluster) -> None:
    for i in (0, 1):
        ready = httpx.get(url(cluster, i) + "/readyz").json()
        assert ready["ready"] and ready["database"] and ready["storage"]
        assert ready["backend"] == "ray" and ready["engines_alive"] == 2
    assert httpx.get(url(cluster, 2) + "/readyz").json()["backend"] == "local"
    with client(cluster, 0) as c:
        metrics = c.get("/metrics").text
    assert "orate_workers 2.0" in metrics and "orate_queue_depth" in metrics  # actors alive
    assert 'orate_engines_wanted{backend="ray"} 2.0' in metrics


def test_official_sdks_spread_over_replicas(cluster) -> None:
    for i in (0, 1):
        oa = OpenAI(api_key=cluster.admin, base_url=url(cluster, i) + "/v1")
        audio = oa.audio.speech.create(
            model="tts-1", voice="alloy", input=unique(), response_format="wav"
        ).read()
        assert audio[:4] == b"RIFF" and len(audio) > 10_000
        hume = HumeClient(api_key=cluster.admin, base_url=url(cluster, i))
        result = hume.tts.synthesize_json(
            utterances=[
                PostedUtterance(
                    text=unique(),
                    voice=PostedUtteranceVoiceWithName(name="alloy", provider="HUME_AI"),
                )
            ],
            format=FormatMp3(),
        )
        assert result.generations[0].duration > 1


def test_generation_from_replica_1_listed_fetched_deleted_on_replica_2(cluster) -> None:
    made = speak(cluster, 0, unique(), response_format="wav")
    assert made.status_code == 200
    gen_id = made.headers["x-orate-generation-id"]
    with client(cluster, 1) as c:  # at once: the response ended after the write
        listed = c.get("/v1/history", params={"limit": 20}).json()
        items = listed.get("data") or listed.get("items") or listed.get("history") or []
        assert gen_id in str(items)
        whole = c.get(f"/v1/audio/files/{gen_id}")
        assert whole.status_code == 200 and whole.content[:4] == b"RIFF"
        assert len(whole.content) == len(made.content)
        part = c.get(f"/v1/audio/files/{gen_id}", headers={"Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == whole.content[100:300]
        assert c.delete(f"/v1/history/{gen_id}").status_code in (200, 204)
    with client(cluster, 0) as c:
        assert c.get(f"/v1/audio/files/{gen_id}").status_code == 404


def test_cache_hit_on_replica_2_after_a_miss_on_replica_1(cluster) -> None:
    text = unique()
    first = speak(cluster, 0, text)
    second = speak(cluster, 1, text)
    assert first.headers["x-orate-cache"] == "miss"
    assert second.headers["x-orate-cache"] == "hit"
    assert second.content == first.content


def test_concurrent_identical_misses_synthesize_once_per_replica(cluster) -> None:
    text = unique("Several replicas asked for the same words at the same moment.")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: (i % 2, speak(cluster, i % 2, text)), range(6)))
    assert all(r.status_code == 200 for _, r in answers)
    for replica in (0, 1):
        kinds = [r.headers["x-orate-cache"] for i, r in answers if i == replica]
        assert kinds.count("miss") <= 1, kinds  # at most one synthesis per replica
    rows = sql(cluster, "SELECT count(*) FROM generations WHERE text = $1", text)
    assert rows[0][0] == 6
    keys = sql(cluster, "SELECT DISTINCT cache_key FROM generations WHERE text = $1", text)
    assert len(keys) == 1
    stored = sql(cluster, "SELECT count(*) FROM cache_entries WHERE key = $1", keys[0][0])
    assert stored[0][0] == 1  # stored once


def test_saved_voice_visible_on_the_other_replica(cluster) -> None:
    name = f"announcer-{secrets.token_hex(3)}"
    with client(cluster, 0) as c:
        made = c.post("/v1/voices", json={"name": name, "params": {"voice": "en-gb"}})
        assert made.status_code in (200, 201), made.text
    with client(cluster, 1) as c:
        assert c.get(f"/v1/voices/{name}").status_code == 200


def test_revoked_key_refused_on_another_replica(cluster) -> None:
    with client(cluster, 0) as c:
        created = c.post("/v1/keys", json={"name": f"short-{secrets.token_hex(3)}"}).json()
    secret = created.get("key") or created.get("secret")
    assert speak(cluster, 1, SHORT, key=secret).status_code == 200  # cached as live on 1
    with client(cluster, 0) as c:
        assert c.delete(f"/v1/keys/{created['id']}").status_code in (200, 204)
    # replica 2 cached the key as live; it refuses it once that cache turns over (2 s)
    wait_until(
        lambda: speak(cluster, 1, SHORT, key=secret).status_code == 401,
        "replica 2 to refuse the revoked key",
        interval=0.1,
    )


def test_rate_limit_is_the_total_across_three_replicas(cluster) -> None:
    out = subprocess.run(
        [ORATE, "keys", "create", "--name", "one", "--rate", "1/min"],
        env=cluster.replica_env(0),
        capture_output=True,
        text=True,
        check=True,
    )
    key = out.stdout.strip().splitlines()[-1]
    # the bucket holds one request and refills in 60 s: these few short requests fit in
    # that on any machine (at 5/min a token came back every 12 s, and nine requests on a
    # busy machine could take longer, letting a sixth through). Limited per replica, each
    # of the three would answer its first request
    codes = [speak(cluster, i % 3, SHORT, key=key).status_code for i in range(4)]
    assert codes == [200, 429, 429, 429], codes
    refused = speak(cluster, 2, SHORT, key=key)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"  # OpenAI's envelope


def test_character_quota_is_the_total_across_replicas(cluster) -> None:
    out = subprocess.run(
        [ORATE, "keys", "create", "--name", "quota", "--quota-chars", "100"],
        env=cluster.replica_env(0),
        capture_output=True,
        text=True,
        check=True,
    )
    key = out.stdout.strip().splitlines()[-1]
    sixty = "Sixty characters of text, spoken once on each of two boxes."
    assert speak(cluster, 0, sixty, key=key).status_code == 200
    refused = speak(cluster, 1, sixty, key=key)  # 120 > 100 in total, though 60 each
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"


def test_all_actors_busy_queue_is_bounded_then_503_with_retry_after(cluster) -> None:
    text = " ".join(
        f"Line {i}: a long passage that keeps an engine actor busy for a while." for i in range(70)
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = [pool.submit(hume_long, cluster, 3, unique(text), 2) for _ in range(2)]
        wait_for(  # one request on the actor, one waiting: the queue is full
            lambda: httpx.get(url(cluster, 3) + "/healthz").json()["engines"],
            lambda stats: stats["busy"] == 1 and stats["waiting"] == 1,
            "one request on replica 4's actor and one waiting",
        )
        with client(cluster, 3) as c:
            refused = c.post("/v0/tts", json={"utterances": [{"text": unique()}]})
        assert [f.result()[0] for f in running] == [200, 200]
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "busy" in refused.text  # in Hume's envelope


def test_neural_engines_go_to_their_own_actors(cluster) -> None:
    def engines() -> dict:  # type: ignore[type-arg]
        return httpx.get(url(cluster, 3) + "/healthz").json()["engines"]

    before = engines()
    assert before["neural_workers"] == 1 and before["workers"] == 2
    assert speak(cluster, 3, unique(), model="espeak-ng").status_code == 200
    assert engines()["completed_neural"] == before["completed_neural"]
    natural = speak(cluster, 3, unique(), model="tts-1")  # the natural palette by default
    assert natural.status_code == 200, natural.text
    assert engines()["completed_neural"] == before["completed_neural"] + 1


def test_client_disconnect_cancels_the_actor_work(cluster) -> None:
    before = httpx.get(url(cluster, 3) + "/healthz").json()["engines"]["cancelled"]
    text = " ".join(
        f"Line {i}: a long passage that keeps an engine actor busy for a while." for i in range(40)
    )  # well under 4,096 spoken characters; seconds of mp3
    with (
        client(cluster, 3) as c,
        c.stream(
            "POST",
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": unique(text),
                "response_format": "mp3",
            },
        ) as r,
    ):
        assert r.status_code == 200
        next(r.iter_bytes())  # the first audio, then hang up
    engines = wait_until(
        lambda: (
            (e := httpx.get(url(cluster, 3) + "/healthz").json()["engines"])["cancelled"] > before
            and e["busy"] == 0
            and e
        ),
        "the actor to stop the synthesis its client left",
        interval=0.1,
    )
    assert engines["waiting"] == 0, engines  # the actor is free again
    assert speak(cluster, 3, unique()).status_code == 200


def test_concurrent_claims_take_each_job_once() -> None:  # not fast: migrations run in a child
    """Four processes' worth of job stores (own engines and pools) racing on one
    PostgreSQL: SKIP LOCKED hands each job to exactly one claimer."""
    from orate.devcluster import postgres_database
    from orate.library.db import make_engine, migrate, sessions
    from orate.library.jobs import JobStore

    name = POSTGRES.rsplit("/", 1)[-1] + "_claims"  # type: ignore[union-attr]
    db = postgres_database(POSTGRES, name)

    async def race() -> list[str]:
        engines = [make_engine(db) for _ in range(4)]
        await migrate(engines[0])
        stores = [JobStore(sessions(e)) for e in engines]
        for _ in range(20):
            await stores[0].submit(
                owner="t",
                dialect="nanogpt",
                model="tts-1",
                request={},
                characters=1,
                cost=0.0,
                currency="USD",
            )

        async def claimer(store: JobStore, who: str) -> list[str]:
            got = []
            while (job := await store.claim(who, 30.0)) is not None:
                got.append(job.id)
            return got

        claimed = await asyncio.gather(
            *(claimer(s, f"r{i}:{j}") for i, s in enumerate(stores) for j in range(3))
        )
        for e in engines:
            await e.dispose()
        return [job for part in claimed for job in part]

    taken = asyncio.run(race())
    assert len(taken) == 20 and len(set(taken)) == 20


def test_retention_runs_under_one_lease_for_the_service(cluster) -> None:
    rows = sql(cluster, "SELECT name, holder FROM service_leases")
    assert [r[0] for r in rows] == ["retention"]  # one holder for three replicas


def test_replica_killed_mid_job_the_other_finishes_it_once(cluster) -> None:
    text = " ".join(
        f"Sentence number {i} of a long announcement, read slowly and clearly." for i in range(120)
    )
    with client(cluster, 0) as c:
        accepted = c.post(
            "/api/tts",
            json={"text": text, "model": "tts-1", "voice": "alloy"},
            headers={"Prefer": "respond-async"},
        )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["runId"]
        rows = wait_for(
            lambda: sql(cluster, "SELECT status, lease_owner FROM jobs WHERE id = $1", run_id),
            lambda rows: rows[0]["status"] == "processing" and rows[0]["lease_owner"],
            "a replica to lease the job",
        )
    pid = int(rows[0]["lease_owner"].split(":")[1])
    victim = next(i for i in range(4) if cluster.procs[f"replica{i}"].popen.pid == pid)
    cluster.procs[f"replica{victim}"].kill(signal.SIGKILL)
    other = 1 if victim == 0 else 0
    try:
        with client(cluster, other) as c:
            status = wait_for(
                lambda: c.get("/api/tts/status", params={"runId": run_id}).json(),
                lambda status: status["status"] in ("completed", "failed", "error"),
                "another replica to take the job over once its lease ran out, and end it",
                timeout=120,
                interval=0.3,
            )
        assert status["status"] == "completed", status
        job = sql(
            cluster, "SELECT attempts, lease_owner, generation_id FROM jobs WHERE id = $1", run_id
        )[0]
        assert job["attempts"] == 2 and job["generation_id"]
        made = sql(cluster, "SELECT count(*) FROM generations WHERE text = $1", text)
        assert made[0][0] == 1  # finished exactly once
    finally:
        cluster.procs[f"replica{victim}"].stop()
        cluster.start_replica(victim, backend="local" if victim == 2 else "ray")
        cluster.wait_replica(victim)


def hume_long(cluster, i: int, text: str, parts: int = 1) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    hume = HumeClient(api_key=cluster.admin, base_url=url(cluster, i), timeout=120)
    voice = PostedUtteranceVoiceWithName(name="alloy", provider="HUME_AI")
    try:
        result = hume.tts.synthesize_json(
            utterances=[PostedUtterance(text=f"{n}. {text}", voice=voice) for n in range(parts)],
            format=FormatMp3(),
            request_options={"max_retries": 0},
        )  # see the 503 itself
        return 200, f"{result.generations[0].duration:.1f}"
    except HumeApiError as exc:
        return exc.status_code or 0, str(exc.body)


def test_ray_node_killed_mid_stream_fails_only_its_requests(cluster) -> None:
    text = " ".join(
        f"Line {i}: a long passage that keeps an engine actor busy for a while." for i in range(70)
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hume_long, cluster, i % 2, unique(text), 4) for i in range(4)]
        wait_until(  # every actor of both replicas is rendering now
            lambda: all(
                (e := httpx.get(url(cluster, i) + "/healthz").json()["engines"])["busy"]
                == e["workers"]
                for i in (0, 1)
            ),
            "every actor of both replicas to be rendering",
        )
        cluster.procs["ray-node1"].kill(signal.SIGKILL)
        results = [f.result() for f in futures]
    codes = [code for code, _ in results]
    assert 200 in codes and 503 in codes, results
    failed = [body for code, body in results if code == 503]
    assert all("engine" in body for body in failed), failed  # Hume's envelope, its message
    for i in (0, 1):  # the next requests go to the actors still alive
        code, _ = hume_long(cluster, i, unique())
        assert code == 200
        assert speak(cluster, i, unique()).status_code == 200


def test_readyz_fails_when_the_store_is_unreachable(cluster) -> None:
    cluster.procs["moto"].stop()
    ready = httpx.get(url(cluster, 1) + "/readyz", timeout=20)
    assert ready.status_code == 503 and ready.json()["storage"] is False
    assert ready.json()["database"] is True


def test_orate_say_needs_no_cluster(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORATE_", "RAY_"))}
    env["ORATE_DATA_DIR"] = str(tmp_path)
    out = tmp_path / "hello.wav"
    subprocess.run(
        [ORATE, "say", "Hello without a cluster.", "-o", str(out)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert out.read_bytes()[:4] == b"RIFF"
