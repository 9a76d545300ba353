// The playground page: wires the controls to orate's public routes.

import { api, ApiError, audioBlob, getKey, onApiError, query, setKey } from "./api.js";
import { canStreamMp3, Player, wavHeader } from "./player.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c != null));
  return e;
};
const button = (text, onclick, props = {}) => el("button", { type: "button", onclick, ...props }, text);

// ---- errors and the key -------------------------------------------------------------

function showError(err) {
  if (err?.name === "AbortError") return;
  const box = $("error");
  box.textContent = err instanceof ApiError && err.status
    ? `${err.message} (HTTP ${err.status}${err.code ? `, ${err.code}` : ""})` : String(err.message || err);
  box.hidden = false;
}
const clearError = () => { $("error").hidden = true; };
/** Run an async action for a control, showing the API's message if it fails. */
const guarded = (fn) => async (...args) => {
  clearError();
  try { return await fn(...args); } catch (err) { showError(err); return undefined; }
};
/** The same for refreshes nobody asked for: they keep the message already shown. */
const background = (fn) => async (...args) => {
  try { return await fn(...args); } catch (err) { showError(err); return undefined; }
};

function authBanner(message) {
  const b = $("auth-banner");
  b.textContent = message || "";
  b.hidden = !message;
}

onApiError((err) => {
  if (err.status === 401) {
    authBanner(getKey()
      ? `The server refused this key: ${err.message}. Paste a valid key above.`
      : "This server needs an API key. Paste yours in the “API key” field above " +
        "(an admin makes one with: orate keys create --name NAME).");
  }
});

$("key-input").value = getKey();
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setKey($("key-input").value.trim());
  start();
});
$("key-forget").addEventListener("click", () => {
  setKey("");
  $("key-input").value = "";
  start();
});

// ---- tabs (WAI-ARIA tabs pattern: arrow keys move between tabs) -------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
const loaders = {};
function selectTab(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", on);
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  loaders[tab.id]?.();
}
for (const t of tabs) {
  t.addEventListener("click", () => selectTab(t));
  t.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(t);
    const j = e.key === "ArrowRight" ? (i + 1) % tabs.length
      : e.key === "ArrowLeft" ? (i + tabs.length - 1) % tabs.length : -1;
    if (j >= 0) { tabs[j].focus(); selectTab(tabs[j]); e.preventDefault(); }
  });
}

// ---- models and voices --------------------------------------------------------------

const state = { models: [], builtin: new Map(), custom: [], names: [], limit: 4096 };

async function loadModels() {
  const { data } = await api("/v1/models");
  state.models = data;
  const sel = $("model");
  const before = sel.value || localStorage.getItem("orate.model");
  sel.replaceChildren(...data.map((m) => el("option", { value: m.id, title: m.description },
    `${m.id}${m.mode === "async" ? " (async)" : ""}`)));
  if (data.some((m) => m.id === before)) sel.value = before;
  $("hf-model").replaceChildren(el("option", { value: "" }, "any"),
    ...data.map((m) => el("option", { value: m.id }, m.id)));
  updateLimit();
}

function updateLimit() {
  const m = state.models.find((x) => x.id === $("model").value);
  state.limit = m?.max_input_chars || 4096;
  $("text").maxLength = state.limit;
  countChars();
}

function countChars() {
  const n = Array.from($("text").value).length;
  const c = $("char-count");
  c.textContent = `${n.toLocaleString()} / ${state.limit.toLocaleString()}`;
  c.style.color = n > state.limit ? "var(--err)" : "";
}

async function loadVoiceInfo() {
  const [builtin, custom] = await Promise.all([
    api("/v1/voices?provider=builtin&limit=500"),
    api("/v1/voices?provider=custom&limit=500"),
  ]);
  state.builtin = new Map(builtin.voices.map((v) => [`${v.engine}:${v.id}`, v]));
  state.custom = custom.voices;
  const langs = [...new Set(builtin.voices.map((v) => v.language))].sort();
  const lf = $("lang-filter");
  const keep = lf.value;
  lf.replaceChildren(el("option", { value: "" }, "any"),
    ...langs.map((l) => el("option", { value: l }, l)));
  lf.value = keep;
}

async function loadVoices() {
  const model = state.models.find((m) => m.id === $("model").value);
  if (!model) return;
  const { voices } = await api(`/v1/audio/voices${query({ model: model.id })}`);
  state.names = voices;
  fillVoices();
}

function fillVoices() {
  const model = state.models.find((m) => m.id === $("model").value);
  const sel = $("voice");
  const before = sel.value || localStorage.getItem("orate.voice");
  const lang = $("lang-filter").value;
  const gender = $("gender-filter").value;
  const fits = (v) => (!lang || v.language === lang || v.language?.startsWith(`${lang}-`))
    && (!gender || v.gender === gender);
  const aliases = [];
  const engine = [];
  for (const name of state.names) {
    const info = state.builtin.get(`${model?.engine}:${name}`);
    const label = (v) => `${v.name} — ${v.language}${v.gender !== "neutral" ? `, ${v.gender}` : ""}`;
    if (!info) {
      if (!lang && !gender) aliases.push(el("option", { value: name }, name)); // nothing known
    } else if (fits(info)) {
      (info.alias ? aliases : engine).push(el("option", { value: name, title: info.description },
        label(info)));
    }
  }
  const mine = state.custom.filter((v) => v.engine === model?.engine && fits(v))
    .map((v) => el("option", { value: v.id }, `${v.name} — ${v.language}, ${v.gender}`));
  const groups = [];
  if (mine.length) groups.push(el("optgroup", { label: "Your voices" }, ...mine));
  if (aliases.length) groups.push(el("optgroup", { label: "Named voices" }, ...aliases));
  if (engine.length) groups.push(el("optgroup", { label: `${model?.engine} voices` }, ...engine));
  sel.replaceChildren(...groups);
  if (!groups.length) sel.append(el("option", { value: "", disabled: true }, "no voice matches the filters"));
  if ([...sel.options].some((o) => o.value === before)) sel.value = before;
  $("voice-count").textContent = `${sel.querySelectorAll("option:not([disabled])").length} voices`;
}

$("model").addEventListener("change", guarded(async () => {
  localStorage.setItem("orate.model", $("model").value);
  updateLimit();
  await loadVoices();
}));
$("voice").addEventListener("change", () => localStorage.setItem("orate.voice", $("voice").value));
$("lang-filter").addEventListener("change", fillVoices);
$("gender-filter").addEventListener("change", fillVoices);
$("text").addEventListener("input", countChars);
$("speed").addEventListener("input", () => {
  $("speed-out").textContent = `${(+$("speed").value).toFixed(2)}×`;
});

// ---- speak --------------------------------------------------------------------------

const player = new Player({
  audio: $("audio"), canvas: $("wave"), readalong: $("readalong"), download: $("download"),
  vtt: $("vtt"), srt: $("srt"), root: $("player"), status: $("speak-status"),
});

player.onidle = () => { if (!$("speak-btn").disabled) $("stop-btn").disabled = true; };

function speechBody(input) {
  const body = { model: $("model").value, voice: $("voice").value, input,
    response_format: $("format").value, speed: +$("speed").value };
  const instructions = $("instructions").value.trim();
  if (instructions) body.instructions = instructions;
  return body;
}

async function speak(body, opts) {
  $("speak-btn").disabled = true;
  $("stop-btn").disabled = false;
  try {
    await player.speak(body, opts);
    refreshHistorySoon();
  } catch (err) {
    player.setState("failed", "");
    throw err;
  } finally {
    $("speak-btn").disabled = false;
    $("stop-btn").disabled = !player.live; // pcm may still be playing through Web Audio
  }
}

$("speak-form").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  await speak(speechBody($("text").value));
}));
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("speak-form").requestSubmit();
});
$("stop-btn").addEventListener("click", () => player.stop());
$("preview").addEventListener("click", guarded(async () => {
  const v = $("voice").selectedOptions[0];
  if (!v) return;
  const custom = state.custom.find((c) => c.id === v.value);
  const lang = custom?.language || state.builtin.get(`${state.models.find(
    (m) => m.id === $("model").value)?.engine}:${v.value}`)?.language || "en";
  await speak({ ...speechBody(sampleText(lang)), response_format: "mp3" });
}));

const SAMPLES = { en: "Hello! This is how I sound.", fr: "Bonjour ! Voici ma voix.",
  de: "Hallo! So klingt meine Stimme.", es: "¡Hola! Así suena mi voz.",
  it: "Ciao! Questa è la mia voce.", pt: "Olá! Esta é a minha voz.", ja: "こんにちは。これが私の声です。",
  nl: "Hallo! Zo klinkt mijn stem.", pl: "Cześć! Tak brzmi mój głos." };
const sampleText = (lang) => SAMPLES[(lang || "en").slice(0, 2)] || SAMPLES.en;

// ---- history ------------------------------------------------------------------------

const PAGE = 10;
const history = { offset: 0, filter: {} };
let historyTimer;
function refreshHistorySoon() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(background(loadHistory), 300);
}

const fmtTime = (iso) => new Date(iso).toLocaleString(undefined,
  { dateStyle: "short", timeStyle: "medium" });

async function loadHistory() {
  const page = await api(`/v1/history${query({ limit: PAGE, offset: history.offset,
    ...history.filter })}`);
  const list = $("history-list");
  list.replaceChildren(...page.data.map(historyItem));
  if (!page.data.length) list.append(el("li", { className: "hint" }, "Nothing yet."));
  const last = Math.min(history.offset + page.data.length, page.total);
  $("history-page").textContent = page.total
    ? `${history.offset + 1}–${last} of ${page.total}` : "";
  $("history-newer").disabled = history.offset === 0;
  $("history-older").disabled = !page.has_more;
}

function historyItem(g) {
  const ext = g.format === "pcm" ? "pcm" : g.format;
  const del = button("Delete", null, { "aria-label": `Delete “${g.text.slice(0, 40)}”` });
  del.addEventListener("click", guarded(async () => {
    if (del.dataset.armed !== "1") { // a second click confirms
      del.dataset.armed = "1";
      del.textContent = "Confirm delete";
      setTimeout(() => { del.dataset.armed = ""; del.textContent = "Delete"; }, 4000);
      return;
    }
    await api(`/v1/history/${g.id}`, { method: "DELETE" });
    await loadHistory();
  }));
  // headerless pcm gets a WAV header so the player can play it
  const playable = async () => {
    const blob = await audioBlob(g.audio_url);
    return g.format === "pcm"
      ? new Blob([wavHeader(blob.size, g.sample_rate || 24000), blob], { type: "audio/wav" }) : blob;
  };
  return el("li", { dataset: { id: g.id } },
    el("span", { className: "text" }, g.text),
    el("span", { className: "meta" }, `${fmtTime(g.created_at)} · ${g.model} · ${g.voice} · ` +
      `${g.format} · ${g.duration.toFixed(2)} s · ${g.cost} ${g.currency}`),
    el("span", { className: "btns" },
      g.audio_url ? button("Play", guarded(async () => player.playBlob(await playable(), g.text)),
        { "aria-label": `Play “${g.text.slice(0, 40)}”` }) : null,
      g.audio_url ? button("Download", guarded(async () => saveBlob(await audioBlob(g.audio_url),
        `orate-${g.id.slice(0, 8)}.${ext}`))) : null,
      button("Save as voice", guarded(async () => {
        const name = await askName("Save this voice as", "");
        if (!name) return;
        await api("/v1/voices", { method: "POST", body: { name, generation_id: g.id } });
        await loadVoiceInfo();
        fillVoices();
      })),
      del));
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

$("history-filter").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  history.filter = { q: $("hf-text").value.trim(), model: $("hf-model").value,
    voice: $("hf-voice").value.trim() };
  history.offset = 0;
  await loadHistory();
}));
$("history-newer").addEventListener("click", guarded(async () => {
  history.offset = Math.max(0, history.offset - PAGE);
  await loadHistory();
}));
$("history-older").addEventListener("click", guarded(async () => {
  history.offset += PAGE;
  await loadHistory();
}));
loaders["tab-history"] = guarded(loadHistory);

// a small modal for names (save as voice, rename)
function askName(title, value) {
  const dlg = $("name-dialog");
  $("name-dialog-h").textContent = title;
  $("name-dialog-input").value = value;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => dlg.addEventListener("close", () => {
    resolve(dlg.returnValue === "ok" ? $("name-dialog-input").value.trim() : "");
  }, { once: true }));
}

// ---- voices: design with variations, rename, delete -------------------------------------

async function auditionBody(voice, language) {
  return { ...speechBody(sampleText(language)), voice, response_format: "mp3" };
}

$("design-form").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  const name = $("design-name").value.trim();
  const description = $("design-desc").value.trim();
  const n = Math.min(4, Math.max(1, +$("design-n").value || 1));
  const box = $("variations");
  box.replaceChildren();
  for (let seed = 0; seed < n; seed++) {
    const v = await api("/v1/voices", { method: "POST",
      body: { name: n > 1 ? `${name} #${seed + 1}` : name, description, seed } });
    box.append(variationCard(v, seed));
  }
  await loadVoiceInfo();
  fillVoices();
  await loadVoiceList();
}));

function variationCard(v, seed) {
  const p = v.params;
  const card = el("div", { className: "card", dataset: { id: v.id } },
    el("strong", {}, v.name),
    el("div", { className: "meta" }, `seed ${seed} · ${p.voice}${p.variant ? `+${p.variant}` : ""}` +
      ` · pitch ${p.pitch ?? "–"} · range ${p.pitch_range ?? "–"} · rate ${p.rate}`),
    el("div", { className: "actions" },
      button("Play", guarded(async () => speak(await auditionBody(v.id, v.language),
        { readAlong: true })), { "aria-label": `Play ${v.name}` }),
      button("Use", () => useVoice(v), { "aria-label": `Use ${v.name}` }),
      button("Discard", guarded(async () => {
        await api(`/v1/voices/${encodeURIComponent(v.id)}`, { method: "DELETE" });
        card.remove();
        await loadVoiceInfo();
        fillVoices();
        await loadVoiceList();
      }), { "aria-label": `Discard ${v.name}` })));
  return card;
}

function useVoice(v) {
  const model = state.models.find((m) => m.id === $("model").value);
  if (model?.engine !== v.engine) {
    const fit = state.models.find((m) => m.engine === v.engine);
    if (fit) $("model").value = fit.id;
  }
  $("lang-filter").value = "";
  $("gender-filter").value = "";
  fillVoices();
  $("voice").value = v.id;
  $("voice").dispatchEvent(new Event("change"));
  $("text").focus();
}

async function loadVoiceList() {
  const { voices } = await api("/v1/voices?provider=custom&limit=500");
  const list = $("voice-list");
  list.replaceChildren(...voices.map((v) => el("li", { dataset: { id: v.id } },
    el("span", { className: "text" }, el("strong", {}, v.name),
      v.description ? ` — ${v.description}` : ""),
    el("span", { className: "meta" }, `${v.language} · ${v.gender} · ${v.source}`),
    el("span", { className: "btns" },
      button("Play", guarded(async () => speak(await auditionBody(v.id, v.language))),
        { "aria-label": `Play ${v.name}` }),
      button("Use", () => useVoice(v), { "aria-label": `Use ${v.name}` }),
      button("Rename", guarded(async () => {
        const name = await askName(`Rename “${v.name}”`, v.name);
        if (!name || name === v.name) return;
        await api(`/v1/voices/${encodeURIComponent(v.id)}`, { method: "PATCH", body: { name } });
        await refreshVoices();
      }), { "aria-label": `Rename ${v.name}` }),
      button("Delete", guarded(async () => {
        await api(`/v1/voices/${encodeURIComponent(v.id)}`, { method: "DELETE" });
        await refreshVoices();
      }), { "aria-label": `Delete ${v.name}` })))));
  if (!voices.length) list.append(el("li", { className: "hint" }, "No saved voices yet."));
}
async function refreshVoices() {
  await Promise.all([loadVoiceList(), loadVoiceInfo()]);
  fillVoices();
}
loaders["tab-voices"] = guarded(loadVoiceList);

// ---- jobs ---------------------------------------------------------------------------

const JOBS = "orate.jobs";
const savedJobs = () => JSON.parse(localStorage.getItem(JOBS) || "[]");
const saveJobs = (jobs) => localStorage.setItem(JOBS, JSON.stringify(jobs.slice(0, 20)));
let jobTimer;

$("job-form").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  const text = $("job-text").value;
  const body = { text, model: $("model").value, voice: $("voice").value,
    response_format: $("format").value, speed: +$("speed").value };
  const job = await api("/api/tts", { method: "POST", body,
    extraHeaders: { Prefer: "respond-async" } });
  saveJobs([{ runId: job.runId, text: text.slice(0, 120), model: job.model,
    created: new Date().toISOString() }, ...savedJobs()]);
  await pollJobs();
}));

async function pollJobs() {
  clearTimeout(jobTimer);
  const jobs = savedJobs();
  const list = $("job-list");
  const items = [];
  let busy = false;
  for (const j of jobs) {
    let s;
    try {
      s = await api(`/api/tts/status${query({ runId: j.runId })}`);
    } catch (err) {
      s = { status: "failed", error: err.message };
    }
    if (s.status === "pending" || s.status === "processing") busy = true;
    const pct = Math.round((s.progress || 0) * 100);
    items.push(el("li", { dataset: { run: j.runId, status: s.status } },
      el("span", { className: "text" }, j.text),
      el("span", { className: "meta" }, `${fmtTime(j.created)} · ${j.model} · ${s.status}` +
        (s.error ? `: ${s.error}` : "") + (s.duration ? ` · ${s.duration.toFixed(1)} s` : "")),
      s.status === "completed" ? el("span", { className: "btns" },
        button("Play", guarded(async () => player.playBlob(await audioBlob(s.audioUrl), j.text))),
        button("Download", guarded(async () => saveBlob(await audioBlob(s.audioUrl),
          `orate-${j.runId.slice(0, 8)}`)))) :
        s.status === "failed" ? button("Remove", () => {
          saveJobs(savedJobs().filter((x) => x.runId !== j.runId));
          pollJobs();
        }) : el("progress", { max: 100, value: pct, "aria-label": `progress ${pct}%` })));
  }
  list.replaceChildren(...items);
  if (!items.length) list.append(el("li", { className: "hint" }, "No jobs from this browser yet."));
  if (busy) jobTimer = setTimeout(background(pollJobs), 1000);
}
loaders["tab-jobs"] = guarded(pollJobs);

// ---- usage --------------------------------------------------------------------------

async function loadUsage() {
  const u = await api(`/v1/usage${query({ from: $("usage-from").value, to: $("usage-to").value,
    group_by: $("usage-group").value })}`);
  const cells = (g, label) => [label, g.requests, g.characters.toLocaleString(),
    g.audio_seconds.toFixed(1), `${g.cost.toFixed(6)} ${u.total.currency}`]
    .map((c) => el("td", {}, String(c)));
  $("usage-table").tBodies[0].replaceChildren(...u.data.map((g) =>
    el("tr", {}, ...cells(g, g.model ?? g.day ?? g.group ?? ""))));
  $("usage-table").tFoot.replaceChildren(el("tr", {}, ...cells(u.total, "Total")));
}
$("usage-form").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  await loadUsage();
}));
loaders["tab-usage"] = guarded(loadUsage);

// ---- keys (admin) -------------------------------------------------------------------

async function loadKeys() {
  let rows;
  try {
    rows = (await api("/v1/keys")).data;
  } catch (err) {
    $("keys-note").textContent = err.status === 403
      ? "Your key is not an admin key: only admins can see and manage keys." : err.message;
    $("key-create").hidden = true;
    $("key-list").replaceChildren();
    return;
  }
  $("key-create").hidden = false;
  const live = rows.filter((k) => !k.revoked);
  $("keys-note").textContent = live.length
    ? `${live.length} active key(s): every route needs one.`
    : "No keys yet: the server is open to anyone who can reach it. Creating a key turns auth on " +
      "(make the first one an admin, and use it here).";
  $("key-list").replaceChildren(...rows.map((k) => el("li", { dataset: { id: k.id } },
    el("span", { className: "text" }, el("strong", {}, k.name), ` ${k.prefix}…`),
    el("span", { className: "meta" }, [k.admin ? "admin" : "", k.revoked ? "revoked" : "active",
      k.rate_per_minute ? `${k.rate_per_minute}/min` : "",
      k.quota_chars ? `${k.used_chars}/${k.quota_chars} chars` : `${k.used_chars} chars used`,
      fmtTime(k.created_at)].filter(Boolean).join(" · ")),
    k.revoked ? null : button("Revoke", guarded(async () => {
      await api(`/v1/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
      await loadKeys();
    }), { "aria-label": `Revoke ${k.name}` }))));
}

$("key-create").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  const body = { name: $("kc-name").value.trim(), admin: $("kc-admin").checked };
  if ($("kc-rate").value) body.rate_per_minute = +$("kc-rate").value;
  if ($("kc-quota").value) body.quota_chars = +$("kc-quota").value;
  const k = await api("/v1/keys", { method: "POST", body });
  const box = $("key-secret");
  const code = el("code", {}, k.key);
  box.replaceChildren(`Key “${k.name}” created. Copy it now — it is not shown again: `, code, " ",
    button("Use this key here", () => {
      setKey(k.key);
      $("key-input").value = k.key;
      start();
    }));
  box.hidden = false;
  await loadKeys();
}));
loaders["tab-keys"] = guarded(loadKeys);

// ---- start --------------------------------------------------------------------------

async function start() {
  clearError();
  authBanner("");
  try {
    await loadModels();
    await loadVoiceInfo();
    await loadVoices();
  } catch (err) {
    if (err.status !== 401) showError(err);
    return;
  }
  const selected = tabs.find((t) => t.getAttribute("aria-selected") === "true");
  loaders[selected.id]?.();
  document.body.dataset.ready = "1";
}

// mp3 streams through MediaSource where the browser allows it, pcm through Web Audio
// everywhere; elsewhere (Firefox has no "audio/mpeg" in MediaSource) start with pcm
if (!canStreamMp3()) {
  $("format").value = "pcm";
  $("format-hint").textContent = "This browser cannot stream mp3, so pcm is chosen: it " +
    "plays as it arrives. Other formats play once complete.";
} else {
  $("format-hint").textContent = "mp3 and pcm play as they arrive; other formats once complete.";
}

countChars();
start();
