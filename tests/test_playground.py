"""The playground at ``/``, in a real browser: Debian's headless Chromium driven by selenium
against a real ``orate serve`` on loopback. Screenshots of each step go to the test's
temporary folder. The key routes the page's admin panel uses are tested over HTTP too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("playground-server"), workers=1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="orate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1100,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, what: Callable[[Any], Any], timeout: float = 60, msg: str = "") -> Any:
    """Until ``what`` holds. An element the page re-renders between finding and reading
    it (a list redrawn after an action) is looked up again, not an error. The deadline is
    generous: a page waiting on synthesis and real-time playback in a browser on a busy
    machine; it only bounds a failure."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(what, msg)


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def errors_in_console(driver: Any) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def open_page(driver: Any, url: str) -> None:
    driver.get_log("browser")  # drop what earlier tests logged
    driver.get(url + "/")
    wait(
        driver,
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"),
        msg="the page never finished loading its pickers",
    )


def set_text(driver: Any, element_id: str, text: str) -> None:
    # send_keys of a long text is slow; set the value and fire the input event
    js(
        driver,
        "const t = document.getElementById(arguments[0]); t.value = arguments[1];"
        "t.dispatchEvent(new Event('input'));",
        element_id,
        text,
    )


def tab(driver: Any, name: str) -> None:
    driver.find_element(By.ID, f"tab-{name}").click()


# ---- the page in a browser -------------------------------------------------------------


def test_page_loads_and_pickers_fill(browser, srv, shots) -> None:
    open_page(browser, srv.url)
    models = [
        o.get_attribute("value") for o in Select(browser.find_element(By.ID, "model")).options
    ]
    api_models = [m["id"] for m in httpx.get(f"{srv.url}/v1/models").json()["data"]]
    assert models == api_models
    voices = Select(browser.find_element(By.ID, "voice"))
    names = [o.get_attribute("value") for o in voices.options]
    api_voices = httpx.get(f"{srv.url}/v1/audio/voices", params={"model": "tts-1"}).json()
    assert set(names) == set(api_voices["voices"]) and len(names) > 100
    assert browser.find_element(By.ID, "char-count").text.endswith("/ 4,096")
    browser.save_screenshot(str(shots / "01-loaded.png"))
    unlabelled = js(
        browser,
        """return [...document.querySelectorAll('input, select, textarea')]
        .filter((e) => !e.labels.length && !e.getAttribute('aria-label')).map((e) => e.id)""",
    )
    assert unlabelled == []

    # the filters narrow the voice list to what /v1/voices says about each voice
    Select(browser.find_element(By.ID, "lang-filter")).select_by_value("fr-fr")
    french = {o.get_attribute("value") for o in voices.options}
    builtin = httpx.get(
        f"{srv.url}/v1/voices", params={"provider": "builtin", "limit": 500}
    ).json()["voices"]
    offered = set(api_voices["voices"])  # the picker holds the chosen model's voices (tts-1)
    assert french == {v["id"] for v in builtin if v["language"] == "fr-fr"} & offered
    Select(browser.find_element(By.ID, "lang-filter")).select_by_value("")
    Select(browser.find_element(By.ID, "gender-filter")).select_by_value("female")
    female = {o.get_attribute("value") for o in voices.options}
    assert "alloy" in female and "echo" not in female  # alloy maps to en-us+f2, echo to +m1
    assert female == {v["id"] for v in builtin if v["gender"] == "female"} & offered
    Select(browser.find_element(By.ID, "gender-filter")).select_by_value("")

    # the preview speaks a short sample in the chosen voice
    Select(browser.find_element(By.ID, "voice")).select_by_value("fr-fr")
    browser.find_element(By.ID, "preview").click()
    wait(browser, lambda d: js(d, "return document.getElementById('audio').ended"), 60)
    gen = httpx.get(f"{srv.url}/v1/history", params={"limit": 1}).json()["data"][0]
    assert gen["text"] == "Bonjour ! Voici ma voix." and gen["voice"].startswith("fr")

    # the library's tabs follow the keyboard (arrow keys move between tabs)
    history_tab = browser.find_element(By.ID, "tab-history")
    history_tab.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "tab-voices").get_attribute("aria-selected") == "true"
    assert browser.find_element(By.ID, "panel-voices").is_displayed()
    assert not browser.find_element(By.ID, "panel-history").is_displayed()
    assert js(browser, "return document.activeElement.id") == "tab-voices"

    # phone width: everything fits, nothing scrolls sideways
    size = browser.get_window_size()
    browser.set_window_size(390, 900)
    try:
        wait(browser, lambda d: js(d, "return window.innerWidth") < 500)
        assert js(browser, "return document.documentElement.scrollWidth <= window.innerWidth")
        browser.save_screenshot(str(shots / "01-phone.png"))
    finally:
        browser.set_window_size(size["width"], size["height"])
    assert errors_in_console(browser) == []


def test_speak_plays_whole_audio_and_words_light_up_in_order(browser, srv, shots) -> None:
    open_page(browser, srv.url)
    Select(browser.find_element(By.ID, "voice")).select_by_value("alloy")
    set_text(browser, "text", SENTENCE)
    # record every word that becomes the current one, and the audio element's events
    js(
        browser,
        """
        window.__seen = []; window.__events = [];
        new MutationObserver((ms) => { for (const m of ms) {
            const t = m.target;
            if (t.classList && t.classList.contains('current')) window.__seen.push(+t.dataset.i);
        } }).observe(document.getElementById('readalong'),
                     {subtree: true, attributes: true, attributeFilter: ['class']});
        for (const e of ['playing', 'ended'])
            document.getElementById('audio').addEventListener(e, () => window.__events.push(e));
    """,
    )
    browser.find_element(By.ID, "speak-btn").click()
    wait(browser, lambda d: len(js(d, "return window.__seen")) >= 5, msg="no read-along")
    browser.save_screenshot(str(shots / "02-read-along.png"))
    player = browser.find_element(By.ID, "player")
    js(browser, "arguments[0].scrollIntoView({block: 'center'})", player)
    player.screenshot(str(shots / "02-read-along-player.png"))
    wait(
        browser,
        lambda d: js(d, "return document.getElementById('audio').ended"),
        60,
        msg="the audio never reached its end",
    )
    played = js(browser, "return document.getElementById('audio').duration")
    assert "playing" in js(browser, "return window.__events")

    # the API's duration of this generation matches what the browser played
    gen = httpx.get(f"{srv.url}/v1/history", params={"limit": 1}).json()["data"][0]
    assert gen["text"] == SENTENCE
    assert abs(played - gen["duration"]) < 0.15, (played, gen["duration"])

    # every word of the sentence became current, in the order spoken
    spans = browser.find_elements(By.CSS_SELECTOR, "#readalong .w")
    assert [s.text for s in spans] == SENTENCE.split()
    seen = js(browser, "return window.__seen")
    order = [i for n, i in enumerate(seen) if n == 0 or seen[n - 1] != i]
    assert order == sorted(order), order
    assert len(set(order)) >= len(spans) - 1, (order, len(spans))

    # clicking a word seeks there (the player jumps to its start time)
    jumps = spans[6]
    start = float(jumps.get_attribute("title").rstrip(" s"))
    jumps.click()
    wait(browser, lambda d: js(d, "return document.getElementById('audio').currentTime") >= start)
    now = js(browser, "const a = document.getElementById('audio'); a.pause(); return a.currentTime")
    assert start <= now < start + 1.0

    # captions made from the word timestamps
    vtt = js(browser, "return fetch(document.getElementById('vtt').href).then(r => r.text())")
    assert vtt.startswith("WEBVTT") and "The quick brown fox" in vtt and "-->" in vtt
    audio = js(
        browser,
        "return fetch(document.getElementById('download').href)"
        ".then(r => r.arrayBuffer()).then(b => b.byteLength)",
    )
    assert audio == gen["bytes"]
    browser.save_screenshot(str(shots / "03-played.png"))


def test_long_text_starts_playing_before_its_last_byte(browser, srv) -> None:
    open_page(browser, srv.url)
    long_text = " ".join(
        [
            "This long passage streams while it is being spoken, and it keeps "
            "going for quite a while so the player can start early."
        ]
        * 30
    )
    assert 3500 < len(long_text) <= 4096
    set_text(browser, "text", long_text)
    js(
        browser,
        """
        window.__t = {};
        const a = document.getElementById('audio');
        a.addEventListener('playing', () => { window.__t.playing ??= performance.now(); });
        new MutationObserver(() => {
            if (document.getElementById('player').dataset.state === 'complete')
                window.__t.complete ??= performance.now();
        }).observe(document.getElementById('player'), {attributes: true});
    """,
    )
    browser.find_element(By.ID, "speak-btn").click()
    wait(browser, lambda d: js(d, "return window.__t.complete"), 60, msg="stream never ended")
    t = js(browser, "return window.__t")
    assert t.get("playing") is not None and t["playing"] < t["complete"], t
    js(browser, "document.getElementById('audio').pause()")

    # past the limit: the page shows the API's own message
    too_long = "word " * 1000
    set_text(browser, "text", too_long)
    assert browser.find_element(By.ID, "char-count").text.startswith("5,000 / ")
    browser.find_element(By.ID, "speak-btn").click()
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    api = httpx.post(
        f"{srv.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": too_long},
        timeout=60,
    ).json()["error"]
    shown = browser.find_element(By.ID, "error").text
    assert api["message"] in shown and api["code"] in shown and "413" in shown


def test_without_mp3_in_mediasource_pcm_streams_through_web_audio(browser, srv) -> None:
    """Firefox has no "audio/mpeg" in MediaSource: the page then picks pcm, which plays
    through Web Audio as it arrives (simulated here by hiding mp3 from MediaSource)."""
    hide = browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": """
        const supported = MediaSource.isTypeSupported.bind(MediaSource);
        MediaSource.isTypeSupported = (t) => !t.startsWith('audio/mpeg') && supported(t);"""
        },
    )
    try:
        open_page(browser, srv.url)
    finally:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": hide["identifier"]}
        )
    assert Select(browser.find_element(By.ID, "format")).first_selected_option.text == "pcm"
    assert "cannot stream mp3" in browser.find_element(By.ID, "format-hint").text
    text = " ".join(
        [
            "Web Audio plays each piece of this passage as soon as it arrives, "
            "long before the last of it has been made."
        ]
        * 25
    )
    set_text(browser, "text", text)
    js(
        browser,
        """
        window.__t = {}; window.__seen = [];
        new MutationObserver((ms) => { for (const m of ms) {
            const t = m.target;
            if (t.classList && t.classList.contains('current')) {
                window.__t.word ??= performance.now(); window.__seen.push(+t.dataset.i); }
        } }).observe(document.getElementById('readalong'),
                     {subtree: true, attributes: true, attributeFilter: ['class']});
        new MutationObserver(() => {
            if (document.getElementById('player').dataset.state === 'complete')
                window.__t.complete ??= performance.now();
        }).observe(document.getElementById('player'), {attributes: true});
    """,
    )
    browser.find_element(By.ID, "speak-btn").click()
    wait(browser, lambda d: js(d, "return window.__t.complete"), 60, msg="stream never ended")
    t = js(browser, "return window.__t")
    assert t.get("word") is not None and t["word"] < t["complete"], t  # heard before the end
    wait(browser, lambda d: len(set(js(d, "return window.__seen"))) >= 3)
    seen = js(browser, "return window.__seen")
    assert seen == sorted(seen), seen
    stop = browser.find_element(By.ID, "stop-btn")
    assert stop.is_enabled()  # still playing after the last byte: Stop stops it
    stop.click()
    assert not stop.is_enabled()
    # what was heard moves into <audio>, paused where it stopped, to resume or replay
    wait(browser, lambda d: js(d, "return document.getElementById('audio').currentTime") > 0)
    assert js(browser, "return document.getElementById('audio').paused") is True


def test_history_gains_the_item_and_delete_removes_it(browser, srv, shots) -> None:
    open_page(browser, srv.url)
    set_text(browser, "text", "A sentence for the history list.")
    # pcm has no MediaSource path: it plays once complete, with a WAV header made here
    Select(browser.find_element(By.ID, "format")).select_by_value("pcm")
    browser.find_element(By.ID, "speak-btn").click()
    ended = "const a = document.getElementById('audio'); return a.ended && a.duration"
    played = wait(browser, lambda d: js(d, ended), 60, msg="pcm never played to its end")
    gen = httpx.get(f"{srv.url}/v1/history", params={"limit": 1}).json()["data"][0]
    assert gen["text"] == "A sentence for the history list." and gen["format"] == "pcm"
    assert abs(played - gen["duration"]) < 0.05, (played, gen["duration"])
    item = (By.CSS_SELECTOR, f'#history-list li[data-id="{gen["id"]}"]')
    wait(browser, lambda d: d.find_elements(*item), msg="history did not gain the item")
    first = browser.find_element(By.CSS_SELECTOR, "#history-list li")
    assert first.get_attribute("data-id") == gen["id"]  # newest first

    # the filter asks the server: text that no generation has leaves the list empty
    set_text(browser, "hf-text", "for the history")
    browser.find_element(By.CSS_SELECTOR, "#history-filter button").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-list li[data-id]")) == 1)
    browser.save_screenshot(str(shots / "04-history.png"))

    row = browser.find_element(*item)
    js(browser, "document.getElementById('audio').src = ''")
    row.find_element(By.XPATH, ".//button[text()='Play']").click()  # the stored file
    replayed = wait(browser, lambda d: js(d, ended), 60, msg="history playback never ended")
    assert abs(replayed - gen["duration"]) < 0.05
    row.find_element(By.XPATH, ".//button[text()='Save as voice']").click()
    browser.find_element(By.ID, "name-dialog-input").send_keys("From history")
    browser.find_element(By.CSS_SELECTOR, "#name-dialog button[value=ok]").click()
    wait(browser, lambda d: "From history" in d.find_element(By.ID, "voice").text)
    saved = httpx.get(f"{srv.url}/v1/voices/From history").json()
    assert saved["source"] == "generation" and saved["source_generation_id"] == gen["id"]
    assert saved["params"] == gen["voice_params"][0]

    delete = row.find_element(By.XPATH, ".//button[starts-with(text(), 'Delete')]")
    delete.click()
    assert delete.text == "Confirm delete"
    delete.click()
    wait(browser, lambda d: not d.find_elements(*item), msg="the item stayed")
    assert httpx.get(f"{srv.url}/v1/history/{gen['id']}").status_code == 404


def test_designed_voices_appear_in_the_picker_and_rename(browser, srv, shots) -> None:
    open_page(browser, srv.url)
    # descriptions design natural voices; this suite's server keeps tts-1 on espeak-ng
    # (tests/conftest.py), so pick the model whose voices they are, as a user would
    wait(
        browser,
        lambda d: (
            "natural"
            in [o.get_attribute("value") for o in Select(d.find_element(By.ID, "model")).options]
        ),
    )
    Select(browser.find_element(By.ID, "model")).select_by_value("natural")
    tab(browser, "voices")
    browser.find_element(By.ID, "design-name").send_keys("Narrator")
    browser.find_element(By.ID, "design-desc").send_keys("a deep, slow, older British man")
    set_text(browser, "design-n", "2")
    browser.find_element(By.CSS_SELECTOR, "#design-form button[type=submit]").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#variations .card")) == 2)
    saved = httpx.get(f"{srv.url}/v1/voices", params={"provider": "custom"}).json()["voices"]
    by_name = {v["name"]: v for v in saved}
    assert {"Narrator #1", "Narrator #2"} <= set(by_name)
    assert by_name["Narrator #1"]["params"] != by_name["Narrator #2"]["params"]  # variations
    picker = [
        o.get_attribute("value") for o in Select(browser.find_element(By.ID, "voice")).options
    ]
    assert by_name["Narrator #1"]["id"] in picker and by_name["Narrator #2"]["id"] in picker
    browser.save_screenshot(str(shots / "05-voices.png"))

    # audition one side by side: it speaks with that voice
    card = browser.find_element(
        By.CSS_SELECTOR, f'#variations .card[data-id="{by_name["Narrator #2"]["id"]}"]'
    )
    card.find_element(By.XPATH, ".//button[text()='Play']").click()
    wait(
        browser, lambda d: d.find_element(By.ID, "player").get_attribute("data-state") == "complete"
    )
    gen = httpx.get(f"{srv.url}/v1/history", params={"limit": 1}).json()["data"][0]
    assert gen["voice_params"][0] == by_name["Narrator #2"]["params"]
    js(browser, "document.getElementById('audio').pause()")

    # rename through the dialog
    row = browser.find_element(
        By.CSS_SELECTOR, f'#voice-list li[data-id="{by_name["Narrator #1"]["id"]}"]'
    )
    row.find_element(By.XPATH, ".//button[text()='Rename']").click()
    field = browser.find_element(By.ID, "name-dialog-input")
    field.clear()
    field.send_keys("Old storyteller")
    browser.find_element(By.CSS_SELECTOR, "#name-dialog button[value=ok]").click()
    wait(browser, lambda d: "Old storyteller" in d.find_element(By.ID, "voice-list").text)
    got = httpx.get(f"{srv.url}/v1/voices/{by_name['Narrator #1']['id']}").json()
    assert got["name"] == "Old storyteller"
    assert errors_in_console(browser) == []


def test_jobs_and_usage(browser, srv) -> None:
    open_page(browser, srv.url)
    tab(browser, "jobs")
    set_text(browser, "job-text", "A job that runs on the server while the page polls it.")
    browser.find_element(By.CSS_SELECTOR, "#job-form button[type=submit]").click()
    done = (By.CSS_SELECTOR, '#job-list li[data-status="completed"]')
    wait(browser, lambda d: d.find_elements(*done), 60, msg="the job never completed")
    run_id = browser.find_element(*done).get_attribute("data-run")
    status = httpx.get(f"{srv.url}/api/tts/status", params={"runId": run_id}).json()
    assert status["status"] == "completed"

    tab(browser, "usage")
    body = (By.CSS_SELECTOR, "#usage-table tbody tr")
    wait(browser, lambda d: d.find_elements(*body))
    usage = httpx.get(f"{srv.url}/v1/usage", params={"group_by": "model"}).json()
    total = browser.find_element(By.CSS_SELECTOR, "#usage-table tfoot tr").text.split()
    assert total[:2] == ["Total", str(usage["total"]["requests"])]
    assert [r.text.split()[0] for r in browser.find_elements(*body)] == [
        g["model"] for g in usage["data"]
    ]


def test_with_auth_on_the_page_asks_for_a_key_then_works(browser, tmp_path, shots) -> None:
    s = Server(tmp_path, workers=1)
    try:
        # with no key yet the local owner is the admin, so the first key comes from the API
        admin = httpx.post(f"{s.url}/v1/keys", json={"name": "ops", "admin": True}, timeout=60)
        assert admin.status_code == 201, admin.text
        secret = admin.json()["key"]
        browser.get(s.url + "/")  # another port: another origin, so no key stored yet
        wait(browser, lambda d: d.find_element(By.ID, "auth-banner").is_displayed())
        assert "needs an API key" in browser.find_element(By.ID, "auth-banner").text
        assert not Select(browser.find_element(By.ID, "model")).options
        browser.save_screenshot(str(shots / "06-needs-key.png"))

        browser.find_element(By.ID, "key-input").send_keys(secret)
        browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        assert not browser.find_element(By.ID, "auth-banner").is_displayed()
        assert js(browser, "return localStorage.getItem('orate.apiKey')") == secret
        set_text(browser, "text", "Hello with a key.")
        browser.find_element(By.ID, "speak-btn").click()
        wait(browser, lambda d: js(d, "return document.getElementById('audio').ended"), 60)

        # an admin manages keys from the page
        tab(browser, "keys")
        browser.find_element(By.ID, "kc-name").send_keys("team-a")
        browser.find_element(By.CSS_SELECTOR, "#key-create button[type=submit]").click()
        wait(browser, lambda d: d.find_element(By.ID, "key-secret").is_displayed())
        shown = browser.find_element(By.CSS_SELECTOR, "#key-secret code").text
        assert shown.startswith("orate_")
        auth = {"Authorization": f"Bearer {secret}"}
        keys = httpx.get(f"{s.url}/v1/keys", headers=auth).json()["data"]
        team = next(k for k in keys if k["name"] == "team-a")
        assert (
            httpx.get(
                f"{s.url}/v1/models", headers={"Authorization": f"Bearer {shown}"}
            ).status_code
            == 200
        )
        browser.save_screenshot(str(shots / "07-keys.png"))
        row = browser.find_element(By.CSS_SELECTOR, f'#key-list li[data-id="{team["id"]}"]')
        row.find_element(By.XPATH, ".//button[text()='Revoke']").click()
        wait(
            browser,
            lambda d: (
                "revoked"
                in d.find_element(By.CSS_SELECTOR, f'#key-list li[data-id="{team["id"]}"]').text
            ),
        )
        keys = httpx.get(f"{s.url}/v1/keys", headers=auth).json()["data"]
        assert next(k for k in keys if k["id"] == team["id"])["revoked"] is True

        # a wrong key is refused with the API's own message
        js(browser, "localStorage.setItem('orate.apiKey', 'orate_wrong')")
        browser.refresh()
        wait(browser, lambda d: d.find_element(By.ID, "auth-banner").is_displayed())
        assert "not valid" in browser.find_element(By.ID, "auth-banner").text
    finally:
        s.stop()


# ---- the routes behind the page --------------------------------------------------------


def test_key_routes_are_admin_only_and_the_page_is_open(tmp_path) -> None:
    s = Server(tmp_path, workers=1)
    try:
        admin = httpx.post(
            f"{s.url}/v1/keys", json={"name": "root", "admin": True}, timeout=60
        ).json()
        as_admin = {"Authorization": f"Bearer {admin['key']}"}
        # auth is on now: the routes need a key, the page and its files do not
        assert httpx.get(f"{s.url}/v1/keys").status_code == 401
        page = httpx.get(f"{s.url}/")
        assert page.status_code == 200 and "orate playground" in page.text
        script = httpx.get(f"{s.url}/ui/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]

        user = httpx.post(
            f"{s.url}/v1/keys",
            headers=as_admin,
            json={"name": "user", "rate_per_minute": 100},
            timeout=60,
        ).json()
        assert user["key"].startswith("orate_") and user["admin"] is False
        as_user = {"Authorization": f"Bearer {user['key']}"}
        for method, path in (
            ("GET", "/v1/keys"),
            ("POST", "/v1/keys"),
            ("DELETE", f"/v1/keys/{admin['id']}"),
        ):
            r = httpx.request(
                method,
                f"{s.url}{path}",
                headers=as_user,
                json={"name": "x"} if method == "POST" else None,
                timeout=60,
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only", r.text
        listed = httpx.get(f"{s.url}/v1/keys", headers=as_admin).json()["data"]
        assert [k["name"] for k in listed] == ["root", "user"]
        assert all("key" not in k and "hash" not in k for k in listed)  # no secrets again
        assert (
            httpx.post(
                f"{s.url}/v1/keys",
                headers=as_admin,
                json={"name": "bad", "rate_per_minute": 0},
                timeout=60,
            ).status_code
            == 400
        )
        assert (
            httpx.delete(f"{s.url}/v1/keys/{user['id']}", headers=as_admin).json()["revoked"]
            is True
        )
        assert httpx.delete(f"{s.url}/v1/keys/{user['id']}", headers=as_admin).status_code == 404
        # the key cache holds a revoked key for up to two seconds, then refuses it
        wait_until(
            lambda: httpx.get(f"{s.url}/v1/models", headers=as_user).status_code == 401,
            "the revoked key to be refused",
            interval=0.1,
        )
    finally:
        s.stop()


def test_voice_rename_and_history_filters(srv) -> None:
    base = srv.url
    v = httpx.post(
        f"{base}/v1/voices", json={"name": "Calm", "description": "calm woman"}, timeout=60
    )
    w = httpx.post(
        f"{base}/v1/voices", json={"name": "Bright", "description": "bright man"}, timeout=60
    )
    assert v.status_code == w.status_code == 201
    vid = v.json()["id"]
    r = httpx.patch(f"{base}/v1/voices/{vid}", json={"name": "Calmer"})
    assert r.status_code == 200 and r.json()["name"] == "Calmer"
    assert httpx.get(f"{base}/v1/voices/Calmer").json()["id"] == vid
    clash = httpx.patch(f"{base}/v1/voices/{vid}", json={"name": "Bright"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "voice_exists"
    assert httpx.patch(f"{base}/v1/voices/nope", json={"name": "x"}).status_code == 404
    assert httpx.patch(f"{base}/v1/voices/{vid}", json={"name": ""}).status_code == 400

    for text, model, voice in (
        ("filter me 100% please", "tts-1", "alloy"),
        ("filter me too", "tts-1-hd", "echo"),
        ("something else", "tts-1", "echo"),
    ):
        httpx.post(
            f"{base}/v1/audio/speech",
            json={"model": model, "voice": voice, "input": text, "response_format": "wav"},
            timeout=60,
        )

    def texts(**params: str) -> list[str]:
        data = httpx.get(f"{base}/v1/history", params={"limit": 50, **params}).json()["data"]
        return [g["text"] for g in data]

    assert texts(q="FILTER ME") == ["filter me too", "filter me 100% please"]
    assert texts(q="100%") == ["filter me 100% please"]
    assert texts(q="_") == []  # LIKE wildcards match themselves only
    assert texts(q="filter", model="tts-1-hd") == ["filter me too"]
    assert "something else" in texts(voice="m1")  # echo is en-us+m1
    assert "filter me 100% please" not in texts(voice="m1")
