"""What a newcomer trips on first, API side: languages, genders, model aliases.

The references are espeak-ng's own voice files (the ``espeakng_loader`` wheel's
``espeak-ng-data``), parsed here independently of the engine's ctypes code.
"""

from __future__ import annotations

import re
from pathlib import Path

import espeakng_loader
import httpx
import pytest

from orate.catalog.openai import OPENAI_VOICES
from orate.engines.registry import EngineRegistry

from .waiting import wait_for

DATA = Path(espeakng_loader.get_data_path())
LANGUAGE = re.compile(r"^[a-z]{2,4}(-[A-Za-z0-9]{1,8})*$")


def _voice_file(path: Path) -> tuple[list[str], str | None]:
    """``language xx [priority]`` lines in file order, and the ``gender`` line if any."""
    languages: list[str] = []
    gender = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if parts[:1] == ["language"] and len(parts) > 1:
            languages.append(parts[1])
        elif parts[:1] == ["gender"] and len(parts) > 1:
            gender = parts[1].lower()
    return languages, gender


def _reference(folder: Path) -> dict[str, tuple[list[str], str]]:
    """File id (``gmw/af``) → (languages, gender). espeak lists a voice without a
    ``gender`` line as male (its default formants), so that is the reference too."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        languages, gender = _voice_file(path)
        out[path.relative_to(folder).as_posix()] = (languages, gender or "male")
    return out


@pytest.fixture(scope="module")
def engine():
    return EngineRegistry().engine("espeak")


def test_languages_match_espeaks_voice_files(engine) -> None:
    reference = _reference(DATA / "lang")
    got = {ident: info for info, ident in engine._voice_table.values()}
    assert set(got) == set(reference)
    for ident, info in got.items():
        assert list(info.languages) == reference[ident][0], ident
        assert info.language == reference[ident][0][0]
    assert engine.voices()[0].languages == ("af",)  # was ("af", "f", "s")
    assert got["gmw/en-US"].languages == ("en-us", "en")
    every = {lang for info in got.values() for lang in info.languages}
    assert all(LANGUAGE.match(lang) for lang in every), every


def test_genders_match_espeaks_voice_and_variant_files(engine) -> None:
    voices = _reference(DATA / "lang")
    for info, ident in engine._voice_table.values():
        assert info.gender == voices[ident][1], ident
    variants = _reference(DATA / "voices" / "!v")
    for name, (fname, gender) in engine.variants.items():
        assert gender == variants[fname][1], name
    assert {engine.variants[f"f{i}"][1] for i in range(1, 6)} == {"female"}
    assert {engine.variants[f"m{i}"][1] for i in range(1, 8)} == {"male"}


def test_server_lists_real_languages_and_named_voice_genders(server) -> None:
    reference = {lang for langs, _ in _reference(DATA / "lang").values() for lang in langs}
    model = httpx.get(f"{server.url}/v1/models/tts-1").json()
    assert set(model["languages"]) == reference
    assert len(model["languages"]) == len(reference) < 200
    voices = httpx.get(
        f"{server.url}/v1/voices", params={"provider": "builtin", "limit": 500, "engine": "espeak"}
    ).json()["voices"]
    by_id = {v["id"]: v for v in voices}
    engine = EngineRegistry().engine("espeak")
    for name, params in OPENAI_VOICES.items():
        want = engine.variants[params.variant][1]
        assert by_id[name]["gender"] == want, name
        assert params.label() in by_id[name]["description"]
    assert by_id["alloy"]["gender"] == "female" and by_id["onyx"]["gender"] == "male"
    assert httpx.get(f"{server.url}/v1/voices/nova").json()["gender"] == "female"
    hume = httpx.get(
        f"{server.url}/v0/tts/voices", params={"provider": "HUME_AI", "page_size": 100}
    ).json()["voices_page"]
    tags = {v["id"]: v["tags"]["gender"] for v in hume}
    assert tags["shimmer"] == "female" and tags["echo"] == "male"


@pytest.mark.fast
def test_aliases_say_which_model_serves_them() -> None:
    from orate.catalog.models import Catalog

    catalog = Catalog()  # the shipped defaults (the suite's servers pin the old engines)
    models = {
        mid: {**catalog.describe(m), "description": m.description}
        for mid, m in catalog.models.items()
    }
    assert models["espeak-ng"]["served_by"] == "espeak-ng"
    assert models["espeak-ng"]["alias_of"] is None
    # every vendor id is served by the natural palette that ships
    for alias in (
        "tts-1",
        "Elevenlabs-Turbo-V2.5",
        "octave-1",
        "octave-2",
        "tts-1-hd",
        "gpt-4o-mini-tts",
        "gpt-4o-mini-tts-2025-12-15",
        "Kokoro-82m",
    ):
        m = models[alias]
        assert m["alias_of"] == m["served_by"] == "natural", alias
        assert m["engine"] == models["natural"]["engine"] == "natural"
        assert "alias of natural" in m["description"], m["description"]


@pytest.mark.fast
def test_alias_targets_come_from_the_catalog_table() -> None:
    from orate.catalog.models import ALIASES, Alias, Catalog

    catalog = Catalog((*ALIASES, Alias("my-tts", "espeak-ng", "Example")))
    mine = catalog.model("my-tts")
    assert mine is not None and catalog.describe(mine)["served_by"] == "espeak-ng"
    assert "alias of espeak-ng" in mine.description


_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_this_server(server, page: str) -> None:
    html = httpx.get(f"{server.url}{page}")
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']https?://""", html.text), html.text
    assert "cdn.jsdelivr" not in html.text and "fonts.googleapis" not in html.text
    assets = [a or b for a, b in _ASSET.findall(html.text)]
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        got = httpx.get(f"{server.url}{asset}")
        assert got.status_code == 200 and got.content, asset
        if asset.endswith(".js"):
            assert "javascript" in got.headers["content-type"]


def test_openapi_document_validates(server) -> None:
    from openapi_spec_validator import validate

    spec = httpx.get(f"{server.url}/openapi.json").json()
    validate(spec)
    ids = [
        op["operationId"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert len(ids) == len(set(ids))
    assert {"get", "head"} <= set(spec["paths"]["/v1/audio/files/{gen_id}"])


SAY = {"model": "tts-1", "voice": "alloy", "input": "Hello there."}
HUME = {"utterances": [{"text": "Hello there."}]}
# every JSON route of every dialect, with a body it accepts and the status it answers
JSON_ROUTES = [
    ("/v1/audio/speech", SAY, 200),
    ("/audio/speech", SAY, 200),
    ("/v0/tts", HUME, 200),
    ("/v0/tts/file", HUME, 200),
    ("/v0/tts/stream/json", HUME, 200),
    ("/v0/tts/stream/file", HUME, 200),
    ("/api/tts", {"text": "Hello there.", "model": "Kokoro-82m", "voice": "af_bella"}, 200),
    ("/v1/voices", {"name": "no-content-type", "params": {"voice": "en-gb"}}, 201),
    # parsed: the answer is about the unknown generation, not about the body
    ("/v0/tts/voices", {"name": "x", "generation_id": "nope"}, 404),
]


@pytest.mark.parametrize("path,body,status", JSON_ROUTES, ids=[r[0] for r in JSON_ROUTES])
def test_json_body_without_content_type_is_accepted(server, path, body, status) -> None:
    import json

    r = httpx.post(f"{server.url}{path}", content=json.dumps(body).encode(), timeout=60)
    assert "content-type" not in r.request.headers
    assert r.status_code == status, r.text
    if status == 404:
        assert "generation" in r.text


def test_curl_d_without_header_works_and_form_bodies_are_explained(server, tmp_path) -> None:
    import json
    import subprocess

    from .conftest import duration

    out = tmp_path / "hello.mp3"
    code = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            str(out),
            "-w",
            "%{http_code}",
            f"{server.url}/v1/audio/speech",
            "-d",
            json.dumps(SAY),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert code == "200" and duration(out.read_bytes(), "mp3") > 0.3
    for path, envelope in (
        ("/v1/audio/speech", "openai"),
        ("/api/tts", "openai"),
        ("/v0/tts", "hume"),
    ):
        got = subprocess.run(
            [
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                f"{server.url}{path}",
                "-d",
                "input=hello&model=tts-1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        text, status = got.rsplit("\n", 1)
        err = json.loads(text)
        if envelope == "openai":
            assert status == "400" and err["error"]["code"] == "invalid_json", text
            message = err["error"]["message"]
        else:  # Hume's SDK reads FastAPI's validation list
            assert status == "422", text
            message = err["detail"][0]["msg"]
        assert "Content-Type: application/json" in message, message
        assert "application/x-www-form-urlencoded" in message, message


def _open_webui_voices(base_url: str) -> dict[str, str]:
    """What Open WebUI does (backend/open_webui/routers/audio.py, get_available_voices,
    OpenAI engine with a custom base URL): GET {base}/audio/voices with a bare aiohttp
    session, no headers of its own, then ``{voice["id"]: voice["name"]}``."""
    import asyncio

    import aiohttp

    async def fetch() -> dict[str, str]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=True) as session,
            session.get(f"{base_url}/audio/voices") as response,
        ):
            response.raise_for_status()
            data = await response.json()
            voices_list = data.get("voices", [])
            return {voice["id"]: voice["name"] for voice in voices_list}

    return asyncio.run(fetch())


def test_open_webui_fills_its_voice_dropdown(server) -> None:
    voices = _open_webui_voices(f"{server.url}/v1")
    assert len(voices) > 141
    assert voices["alloy"].startswith("Alloy") and "female" in voices["alloy"]
    assert "en-gb" in voices and "fr-fr" in voices
    # inference.club's documented shape stays for everyone else
    plain = httpx.get(f"{server.url}/v1/audio/voices").json()["voices"]
    assert all(isinstance(v, str) for v in plain) and plain[0] == "alloy"
    assert set(plain) == set(voices)
    forced = httpx.get(f"{server.url}/v1/audio/voices", params={"format": "objects"}).json()
    assert forced["voices"][0]["id"] == "alloy"
    names = httpx.get(
        f"{server.url}/audio/voices",
        params={"format": "names"},
        headers={"User-Agent": "Python/3.12 aiohttp/3.11.0"},
    ).json()
    assert names["voices"][0] == "alloy"
    bad = httpx.get(f"{server.url}/v1/audio/voices", params={"format": "xml"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"


def test_open_webui_lists_voices_on_a_server_with_keys(tmp_path: Path) -> None:
    """Open WebUI sends no key when it lists voices: the built-in list is open."""
    import os
    import subprocess
    import sys

    from .conftest import Server

    env = {**os.environ, "ORATE_DATA_DIR": str(tmp_path)}
    made = subprocess.run(
        [sys.executable, "-m", "orate.cli", "keys", "create", "--name", "w"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    srv = Server(tmp_path, workers=1)
    try:
        assert _open_webui_voices(f"{srv.url}/v1")["nova"].startswith("Nova")
        assert httpx.get(f"{srv.url}/v1/voices").status_code == 401  # saved voices: keyed
        assert httpx.post(f"{srv.url}/v1/audio/speech", json=SAY, timeout=60).status_code == 401
        # the documentation stays readable in a browser, which cannot send a key
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{srv.url}{path}").status_code == 200, path
        html = httpx.get(f"{srv.url}/docs").text
        for asset in re.findall(r"""(?:src|href)\s*=\s*["'](/docs-assets/[^"']+)["']""", html):
            assert httpx.get(f"{srv.url}{asset}").status_code == 200, asset
        assert httpx.get(f"{srv.url}/v1/history").status_code == 401  # data is still keyed
    finally:
        srv.stop()


def _wait_job(url: str, run_id: str) -> dict:
    return wait_for(
        lambda: httpx.get(f"{url}/api/tts/status", params={"runId": run_id}).json(),
        lambda status: status["status"] in ("completed", "failed"),
        f"job {run_id} to finish",
        timeout=60,
        interval=0.1,
    )


def test_local_engines_cost_nothing_by_default(server) -> None:
    for m in httpx.get(f"{server.url}/v1/models").json()["data"]:
        assert m["price"]["per_1k_chars"] == m["price"]["per_second"] == 0, m["id"]
    sync = httpx.post(
        f"{server.url}/api/tts",
        json={"text": "Free of charge, once.", "model": "tts-1-hd"},
        timeout=60,
    ).json()
    assert sync["cost"] == 0
    ticket = httpx.post(
        f"{server.url}/api/tts",
        json={
            "text": "Free of charge, queued.",
            "model": "Elevenlabs-Turbo-V2.5",
            "voice": "Rachel",
        },
        timeout=60,
    )
    assert ticket.status_code == 202, ticket.text
    body = ticket.json()
    assert body["charged"] is False and body["cost"] == 0 and body["paymentSource"] == "none"
    done = _wait_job(server.url, body["runId"])
    assert done["status"] == "completed" and done["cost"] == 0
    assert done["paymentSource"] == "none" and done["charged"] is False


def test_operator_prices_are_billed_truthfully(tmp_path: Path) -> None:
    import json

    from .conftest import Server

    providers = tmp_path / "providers.toml"
    providers.write_text(
        '[[provider]]\nname = "far"\nkind = "openai"\n'
        'base_url = "http://127.0.0.1:9/v1"\nmodels = ["far-tts"]\n'
        "price = {per_1k_chars = 0.5, per_second = 0.01}\n"
    )
    prices = {"tts-1": {"per_1k_chars": 0.015}, "Elevenlabs-Turbo-V2.5": {"per_1k_chars": 0.06}}
    srv = Server(
        tmp_path,
        workers=1,
        env={"ORATE_PRICES": json.dumps(prices), "ORATE_PROVIDERS_FILE": str(providers)},
    )
    try:
        models = {m["id"]: m for m in httpx.get(f"{srv.url}/v1/models").json()["data"]}
        assert models["tts-1"]["price"]["per_1k_chars"] == 0.015
        assert models["espeak-ng"]["price"]["per_1k_chars"] == 0  # not in the table: free
        assert models["far-tts"]["price"] == {
            "per_1k_chars": 0.5,
            "per_second": 0.01,
            "currency": "USD",
        }
        text = "Pay for these words, please."
        r = httpx.post(f"{srv.url}/v1/audio/speech", json={**SAY, "input": text}, timeout=60)
        gen = r.headers["x-orate-generation-id"]
        record = wait_for(  # the record is written once the response is sent
            lambda: httpx.get(f"{srv.url}/v1/history/{gen}"),
            lambda got: got.status_code == 200,
            "the generation's history record",
        ).json()
        assert record["cost"] == pytest.approx(len(text) / 1000 * 0.015)
        # the cache entry is written after the response, in the background (until then the
        # same request joins the finished synthesis, "shared"): wait for the hit
        again = wait_for(
            lambda: httpx.post(
                f"{srv.url}/v1/audio/speech", json={**SAY, "input": text}, timeout=60
            ),
            lambda got: got.headers["x-orate-cache"] == "hit",
            "the same request to come from the cache",
        )
        hit = httpx.get(
            f"{srv.url}/v1/history/{again.headers['x-orate-generation-id']}", timeout=60
        )
        assert hit.json()["cost"] == 0  # a replay from the cache bills nothing
        words = "A paid job, queued for later."
        ticket = httpx.post(
            f"{srv.url}/api/tts",
            json={"text": words, "model": "Elevenlabs-Turbo-V2.5", "voice": "Rachel"},
            timeout=60,
        ).json()
        assert ticket["charged"] is True and ticket["paymentSource"] == "USD"
        assert ticket["cost"] == pytest.approx(len(words) / 1000 * 0.06)
        done = _wait_job(srv.url, ticket["runId"])
        assert done["cost"] == pytest.approx(ticket["cost"]) and done["paymentSource"] == "USD"
        free = httpx.post(
            f"{srv.url}/api/tts",
            json={"text": "Kokoro is not priced here.", "model": "Kokoro-82m"},
            timeout=60,
        ).json()
        assert free["cost"] == 0
    finally:
        srv.stop()


@pytest.mark.parametrize("price", ['"cheap"', "{per_1k_chars = -1}", "{per_word = 1}", "{}"])
def test_bad_provider_prices_stop_startup_with_a_clear_message(tmp_path: Path, price) -> None:
    from orate.engines.upstream import load_providers

    path = tmp_path / "providers.toml"
    path.write_text(
        f'[[provider]]\nname = "p"\nkind = "openai"\nbase_url = "http://x/v1"\n'
        f'models = ["m"]\nprice = {price}\n'
    )
    with pytest.raises(ValueError, match="price"):
        load_providers(path)


def test_cli_voices_show_real_languages_and_genders(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "orate.cli", "voices", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "ORATE_DATA_DIR": str(tmp_path)},
    ).stdout
    voices = {v["id"]: v for v in json.loads(out)}
    assert voices["af"]["languages"] == ["af"]
    assert voices["alloy"]["gender"] == "female" and voices["echo"]["gender"] == "male"
    models = json.loads(
        subprocess.run(
            [sys.executable, "-m", "orate.cli", "models", "list", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env={**os.environ, "ORATE_DATA_DIR": str(tmp_path)},
        ).stdout
    )
    reference = {lang for langs, _ in _reference(DATA / "lang").values() for lang in langs}
    tts1 = next(m for m in models if m["id"] == "tts-1")
    assert set(tts1["languages"]) == reference and tts1["served_by"] == "espeak-ng"
    assert tts1["per_1k_chars"] == 0
