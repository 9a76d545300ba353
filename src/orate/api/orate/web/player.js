// Speaking with playback while the audio streams, and the read-along.
//
// One request does both: POST /v1/audio/speech with stream_format "sse" and
// include_timestamp_types ["word"] sends base64 audio deltas and word timestamps as
// they are made. Two ways to play while it streams:
// - mp3: each delta is appended to a MediaSource SourceBuffer, so the <audio> element
//   plays from the first delta. Chromium (and Safari) accept "audio/mpeg" in MSE;
//   Firefox does not (MediaSource.isTypeSupported("audio/mpeg") is false there).
// - pcm: each delta is scheduled as an AudioBuffer on a Web Audio context, which every
//   current browser has; so pcm is the streaming format where mp3 cannot stream, and
//   the page picks it by default there. Once it has played, the whole take (with a WAV
//   header made here) moves into the <audio> element for replay, seeking and download.
// Other formats (opus in Ogg, aac, flac, wav) have no portable streaming path in a
// browser, so they play once complete.

import { api } from "./api.js";

const MIME = { mp3: "audio/mpeg", opus: "audio/ogg", aac: "audio/aac", flac: "audio/flac",
  wav: "audio/wav", pcm: "audio/wav" };

function b64bytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function wavHeader(dataBytes, rate) {
  const h = new DataView(new ArrayBuffer(44));
  const tag = (o, s) => [...s].forEach((c, i) => h.setUint8(o + i, c.charCodeAt(0)));
  tag(0, "RIFF"); h.setUint32(4, 36 + dataBytes, true); tag(8, "WAVE"); tag(12, "fmt ");
  h.setUint32(16, 16, true); h.setUint16(20, 1, true); h.setUint16(22, 1, true);
  h.setUint32(24, rate, true); h.setUint32(28, rate * 2, true); h.setUint16(32, 2, true);
  h.setUint16(34, 16, true); tag(36, "data"); h.setUint32(40, dataBytes, true);
  return new Uint8Array(h.buffer);
}

/** Whether mp3 can stream into <audio> here (MediaSource with "audio/mpeg"). */
export const canStreamMp3 = () => Boolean(window.MediaSource
  && MediaSource.isTypeSupported("audio/mpeg"));

/** Read an SSE body, calling onEvent with each parsed `data:` JSON object. */
async function readSse(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

/** Appends chunks to a SourceBuffer in order; endOfStream once finished and drained. */
class MseSink {
  constructor(audio, mime) {
    this.queue = [];
    this.ended = false;
    this.ms = new MediaSource();
    this.url = URL.createObjectURL(this.ms);
    audio.src = this.url;
    this.ready = new Promise((resolve) => this.ms.addEventListener("sourceopen", () => {
      this.sb = this.ms.addSourceBuffer(mime);
      this.sb.addEventListener("updateend", () => this.pump());
      resolve();
    }, { once: true }));
  }
  push(bytes) { this.queue.push(bytes); this.pump(); }
  finish() { this.ended = true; this.pump(); }
  pump() {
    if (!this.sb || this.sb.updating || this.ms.readyState !== "open") return;
    if (this.queue.length) this.sb.appendBuffer(this.queue.shift());
    else if (this.ended) this.ms.endOfStream();
  }
}

/** Plays s16le mono deltas as they arrive, gap-free, on a Web Audio context. */
class PcmLive {
  constructor() {
    this.ctx = new AudioContext();
    this.t0 = null; // context time of audio position 0
    this.next = 0; // context time where the next delta starts
    this.carry = null; // an odd byte left over from the last delta
    this.complete = false;
    this.finished = false;
    this.last = null;
    this.onfinish = null;
  }

  push(bytes, rate) {
    let data = bytes;
    if (this.carry) {
      data = new Uint8Array(this.carry.length + bytes.length);
      data.set(this.carry);
      data.set(bytes, this.carry.length);
    }
    this.carry = data.length % 2 ? data.slice(-1) : null;
    const n = data.length >> 1;
    if (!n) return;
    const buf = this.ctx.createBuffer(1, n, rate);
    const ch = buf.getChannelData(0);
    const view = new DataView(data.buffer, data.byteOffset, n * 2);
    for (let i = 0; i < n; i++) ch[i] = view.getInt16(i * 2, true) / 32768;
    const now = this.ctx.currentTime;
    if (this.t0 === null) {
      this.t0 = now + 0.05;
      this.next = this.t0;
    } else if (this.next < now + 0.01) { // an underrun: shift the timeline, keep positions
      const gap = now + 0.02 - this.next;
      this.t0 += gap;
      this.next += gap;
    }
    const src = this.ctx.createBufferSource();
    src.buffer = buf;
    src.connect(this.ctx.destination);
    src.start(this.next);
    src.onended = () => { if (this.complete && src === this.last) this.done(); };
    this.last = src;
    this.next += buf.duration;
  }

  /** All deltas are in; `onfinish` runs once the last one has played. */
  finish() {
    this.complete = true;
    if (!this.last || this.ctx.currentTime >= this.next) this.done();
  }

  done() {
    if (this.finished) return;
    this.finished = true;
    this.ctx.close().catch(() => {});
    this.onfinish?.();
  }

  position() {
    if (this.t0 === null) return 0;
    return Math.max(0, Math.min(this.ctx.currentTime, this.next) - this.t0);
  }

  stop() {
    this.onfinish = null;
    this.done();
  }
}

export class Player {
  constructor({ audio, canvas, readalong, download, vtt, srt, root, status }) {
    Object.assign(this, { audio, canvas, readalong, download, vtt, srt, root, status });
    this.words = [];
    this.text = "";
    this.current = -1;
    this.peaks = null;
    this.received = 0; // seconds of audio received so far (estimated while streaming)
    this.expected = 0;
    this.urls = [];
    readalong.addEventListener("click", (e) => {
      const w = e.target.closest(".w");
      if (w) this.seek(this.words[+w.dataset.i].start / 1000);
    });
    readalong.addEventListener("keydown", (e) => {
      const w = e.target.closest(".w");
      if (w && (e.key === "Enter" || e.key === " ")) {
        e.preventDefault();
        this.seek(this.words[+w.dataset.i].start / 1000);
      }
    });
    canvas.addEventListener("click", (e) => {
      const d = this.duration();
      if (!d) return;
      const r = canvas.getBoundingClientRect();
      this.seek(((e.clientX - r.left) / r.width) * d);
    });
    canvas.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight") this.seek(Math.min(this.now() + 5, this.duration()));
      else if (e.key === "ArrowLeft") this.seek(Math.max(0, this.now() - 5));
      else return;
      e.preventDefault();
    });
    const tick = () => { this.highlight(); this.draw(); };
    for (const ev of ["timeupdate", "seeked", "ended", "pause", "durationchange"]) {
      audio.addEventListener(ev, tick);
    }
    audio.addEventListener("play", () => this.loop());
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** Where playback is, in seconds: the Web Audio clock while pcm streams, else <audio>. */
  now() {
    return this.live ? this.live.position() : this.audio.currentTime;
  }

  playing() {
    return this.live ? !this.live.finished : !this.audio.paused && !this.audio.ended;
  }

  duration() {
    const d = this.audio.duration;
    if (!this.live && Number.isFinite(d) && d > 0) return d;
    return Math.max(this.received, this.expected);
  }

  seek(t) {
    if (this.live) {
      this.handoff(t);
      return;
    }
    this.audio.currentTime = t;
    if (this.audio.paused) this.audio.play().catch(() => {});
  }

  /** Leave the live Web Audio stream for the <audio> element at `t` seconds, with what
   * has arrived so far (the rest follows when the stream completes). */
  handoff(t, play = true) {
    const live = this.live;
    this.live = null;
    live.stop();
    const url = URL.createObjectURL(this.pcmBlob());
    this.urls.push(url);
    this.audio.src = url;
    this.audio.addEventListener("loadedmetadata", () => {
      this.audio.currentTime = Math.min(t, this.audio.duration);
      if (play) this.audio.play().catch(() => {});
    }, { once: true });
  }

  pcmBlob() {
    const bytes = this.chunks.reduce((n, c) => n + c.length, 0) & ~1;
    return new Blob([wavHeader(bytes, this.rate), ...this.chunks], { type: "audio/wav" })
      .slice(0, 44 + bytes, "audio/wav");
  }

  loop() {
    if (this.looping) return;
    this.looping = true;
    const step = () => {
      this.highlight();
      this.draw();
      if (this.playing()) requestAnimationFrame(step);
      else this.looping = false;
    };
    requestAnimationFrame(step);
  }

  /** Stop streaming and playing; what has arrived stays in <audio>, paused where it was. */
  stop() {
    this.abort?.abort();
    if (this.live) this.handoff(this.live.position(), false);
    else this.audio.pause();
    this.onidle?.();
  }

  halt() {
    this.abort?.abort();
    this.live?.stop();
    this.live = null;
    this.audio.pause();
    this.onidle?.();
  }

  reset(text) {
    this.halt();
    this.chunks = [];
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
    this.text = text;
    this.words = [];
    this.current = -1;
    this.peaks = null;
    this.received = 0;
    this.expected = 0;
    this.readalong.textContent = text;
    for (const a of [this.download, this.vtt, this.srt]) a.hidden = true;
  }

  setState(state, message) {
    this.root.dataset.state = state;
    if (message !== undefined) this.status.textContent = message;
  }

  /** Speak `body` (an OpenAI speech request) with streaming playback and read-along. */
  async speak(body, { readAlong = true } = {}) {
    this.reset(body.input);
    const fmt = body.response_format || "mp3";
    this.abort = new AbortController();
    const started = performance.now();
    const sink = fmt === "mp3" && canStreamMp3() ? new MseSink(this.audio, "audio/mpeg") : null;
    if (sink) this.urls.push(sink.url);
    // made now, while the click that asked for speech still counts as a user gesture
    const live = fmt === "pcm" && window.AudioContext ? new PcmLive() : null;
    if (live) {
      this.audio.removeAttribute("src");
      this.audio.load();
      this.live = live;
    }
    this.setState("streaming", "Requesting…");
    let res;
    try {
      res = await api("/v1/audio/speech", {
        method: "POST", raw: true, signal: this.abort.signal,
        body: { ...body, stream_format: "sse",
          include_timestamp_types: readAlong ? ["word"] : undefined },
      });
    } catch (err) {
      if (err.name !== "AbortError") this.halt();
      throw err;
    }
    const info = {
      id: res.headers.get("X-Orate-Generation-Id"),
      rate: +res.headers.get("X-Orate-Sample-Rate") || 24000,
      voice: res.headers.get("X-Orate-Voice"), cache: res.headers.get("X-Orate-Cache"),
    };
    this.rate = info.rate;
    if (sink) await sink.ready;
    const chunks = [];
    this.chunks = chunks;
    let bytes = 0;
    let first = true;
    try {
      await readSse(res, (ev) => {
        if (ev.type === "speech.audio.delta") {
          const data = b64bytes(ev.audio);
          chunks.push(data);
          bytes += data.length;
          if (fmt === "mp3") this.received = (bytes * 8) / 48000; // CBR 48 kb/s
          else if (fmt === "pcm") this.received = bytes / 2 / info.rate;
          if (sink) {
            sink.push(data);
            if (first) this.audio.play().catch(() => {});
          } else if (live && this.live === live) {
            live.push(data, info.rate);
            if (first) this.loop();
          }
          first = false;
          this.setState("streaming", `Streaming… ${(bytes / 1024).toFixed(0)} KiB received`);
        } else if (ev.type === "speech.audio.timestamps") {
          this.addWords(ev.timestamps.filter((t) => t.type === "word"));
        } else if (ev.type === "speech.audio.done") {
          info.usage = ev.usage;
          this.expected = (ev.usage?.output_tokens || 0) / 50;
        } else if (ev.type === "error") {
          throw new Error(ev.error?.message || "the stream failed");
        }
      });
    } catch (err) {
      if (err.name === "AbortError") {
        this.setState("stopped", "Stopped.");
        return info;
      }
      this.halt();
      throw err;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    let blob;
    if (fmt === "pcm") {
      blob = new Blob([wavHeader(bytes, info.rate), ...chunks], { type: "audio/wav" });
    } else {
      blob = new Blob(chunks, { type: MIME[fmt] });
    }
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    if (sink) sink.finish();
    else if (live && this.live === live) {
      // still playing live: when it ends, the whole take moves into <audio>, at its end
      live.onfinish = () => {
        this.live = null;
        this.onidle?.();
        this.audio.src = url;
        this.audio.addEventListener("loadedmetadata", () => {
          this.audio.currentTime = this.audio.duration;
        }, { once: true });
        this.highlight();
        this.draw();
      };
      live.finish();
    } else if (live) { // handed off to <audio> by a seek: swap in the whole take
      const at = this.audio.currentTime;
      const paused = this.audio.paused;
      this.audio.src = url;
      this.audio.addEventListener("loadedmetadata", () => {
        this.audio.currentTime = at;
        if (!paused) this.audio.play().catch(() => {});
      }, { once: true });
    } else {
      this.audio.src = url;
      this.audio.play().catch(() => {});
    }
    this.offerDownloads(blob, fmt === "pcm" ? "wav" : fmt, info.id);
    this.setState("complete", `Received ${this.expected.toFixed(1)} s of audio in ${seconds} s` +
      (info.cache === "hit" ? " (from the cache)" : "") + ".");
    this.waveform(blob);
    return info;
  }

  offerDownloads(blob, ext, id) {
    const name = `orate-${(id || "speech").slice(0, 8)}`;
    const link = (a, b, file) => {
      const url = URL.createObjectURL(b);
      this.urls.push(url);
      a.href = url;
      a.download = file;
      a.hidden = false;
    };
    link(this.download, blob, `${name}.${ext}`);
    if (this.words.length) {
      link(this.vtt, new Blob([captions(this.words, "vtt")], { type: "text/vtt" }), `${name}.vtt`);
      link(this.srt, new Blob([captions(this.words, "srt")], { type: "application/x-subrip" }),
        `${name}.srt`);
    }
  }

  /** Play a stored file (history, jobs) in the same player, with no read-along. */
  playBlob(blob, text) {
    this.reset(text || "");
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    this.audio.src = url;
    this.audio.play().catch(() => {});
    this.setState("complete", "");
    this.waveform(blob);
  }

  addWords(stamps) {
    this.words.push(...stamps);
    this.words.sort((a, b) => a.start - b.start);
    this.render();
  }

  render() {
    const el = this.readalong;
    el.textContent = "";
    let pos = 0;
    // the server counts code points; JavaScript strings count UTF-16 units
    const cps = Array.from(this.text);
    const text = { slice: (a, b) => cps.slice(a, b).join("") };
    const frag = document.createDocumentFragment();
    this.words.forEach((w, i) => {
      if (w.char_start == null || w.char_start < pos) return;
      if (w.char_start > pos) frag.append(text.slice(pos, w.char_start));
      const span = document.createElement("span");
      span.className = "w";
      span.dataset.i = i;
      span.tabIndex = 0;
      span.setAttribute("role", "button");
      span.title = `${(w.start / 1000).toFixed(2)} s`;
      span.textContent = text.slice(w.char_start, w.char_end);
      frag.append(span);
      pos = w.char_end;
    });
    frag.append(text.slice(pos));
    el.append(frag);
    this.current = -1;
    this.highlight();
  }

  highlight() {
    const t = this.now() * 1000;
    let lo = 0;
    let hi = this.words.length - 1;
    let idx = -1;
    while (lo <= hi) { // last word that started at or before t
      const mid = (lo + hi) >> 1;
      if (this.words[mid].start <= t) { idx = mid; lo = mid + 1; } else hi = mid - 1;
    }
    const ended = this.live ? this.live.finished : this.audio.ended;
    if (ended) idx = -1;
    if (idx === this.current) return;
    this.current = idx;
    for (const span of this.readalong.querySelectorAll(".w")) {
      const i = +span.dataset.i;
      span.classList.toggle("current", i === idx);
      span.classList.toggle("spoken", i < idx || (ended && i >= 0));
    }
  }

  async waveform(blob) {
    try {
      const ctx = new OfflineAudioContext(1, 1, 8000);
      const buf = await ctx.decodeAudioData(await blob.arrayBuffer());
      const data = buf.getChannelData(0);
      const n = 400;
      const size = Math.max(1, Math.floor(data.length / n));
      this.peaks = Array.from({ length: n }, (_, i) => {
        let m = 0;
        for (let j = i * size; j < Math.min(data.length, (i + 1) * size); j++) {
          m = Math.max(m, Math.abs(data[j]));
        }
        return m;
      });
    } catch { this.peaks = null; } // undecodable here (e.g. aac in some browsers): bar only
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (!w) return;
    const ratio = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * ratio)) c.width = Math.round(w * ratio);
    c.height = Math.round(h * ratio);
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const css = getComputedStyle(document.documentElement);
    const line = css.getPropertyValue("--line").trim();
    const accent = css.getPropertyValue("--accent").trim();
    const muted = css.getPropertyValue("--muted").trim();
    g.clearRect(0, 0, w, h);
    const total = this.duration();
    const played = total ? Math.min(1, this.now() / total) : 0;
    if (this.peaks) {
      const bw = w / this.peaks.length;
      const max = Math.max(...this.peaks, 0.01);
      this.peaks.forEach((p, i) => {
        const bh = Math.max(1, (p / max) * (h - 4));
        g.fillStyle = i / this.peaks.length < played ? accent : muted;
        g.fillRect(i * bw, (h - bh) / 2, Math.max(1, bw - 1), bh);
      });
    } else {
      const recv = total ? Math.min(1, this.received / total) : 0;
      g.fillStyle = line;
      g.fillRect(0, h / 2 - 4, w, 8);
      g.fillStyle = muted;
      g.fillRect(0, h / 2 - 4, w * recv, 8);
      g.fillStyle = accent;
      g.fillRect(0, h / 2 - 4, w * played, 8);
    }
  }
}

function stamp(ms, sep) {
  const t = Math.max(0, Math.round(ms));
  const p = (n, k = 2) => String(n).padStart(k, "0");
  return `${p(Math.floor(t / 3600000))}:${p(Math.floor(t / 60000) % 60)}:` +
    `${p(Math.floor(t / 1000) % 60)}${sep}${p(t % 1000, 3)}`;
}

/** Captions from word timestamps: cues of up to 8 words, split at sentence ends and pauses. */
export function captions(words, kind) {
  const cues = [];
  let cue = [];
  words.forEach((w, i) => {
    cue.push(w);
    const next = words[i + 1];
    if (!next || cue.length >= 8 || /[.!?;:]$/.test(w.text) || next.start - w.end > 600) {
      cues.push(cue);
      cue = [];
    }
  });
  const lines = kind === "vtt" ? ["WEBVTT", ""] : [];
  cues.forEach((c, i) => {
    if (kind === "srt") lines.push(String(i + 1));
    const sep = kind === "vtt" ? "." : ",";
    lines.push(`${stamp(c[0].start, sep)} --> ${stamp(c[c.length - 1].end, sep)}`);
    lines.push(c.map((w) => w.text).join(" "), "");
  });
  return lines.join("\n");
}
