// Calls to orate's public API: the key from local storage as a Bearer token, JSON
// bodies with Content-Type: application/json, and errors carrying the API's own message.

const KEY = "orate.apiKey";

export const getKey = () => localStorage.getItem(KEY) || "";
export function setKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const listeners = new Set();
/** Called with every ApiError (the page shows 401s as "a key is needed"). */
export const onApiError = (fn) => listeners.add(fn);

export function headers(extra = {}) {
  const h = { ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`;
  let code = "";
  try {
    const body = await res.json();
    const e = body.error && typeof body.error === "object" ? body.error : body;
    if (e.message) message = e.message;
    else if (Array.isArray(body.detail)) message = body.detail.map((d) => d.msg).join("; ");
    code = e.code || "";
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(res.status, code, message);
}

/** fetch() against the API; returns the Response (raw) or its JSON. Throws ApiError. */
export async function api(path, { method = "GET", body, extraHeaders = {}, raw = false,
  signal } = {}) {
  const h = headers(extraHeaders);
  let payload;
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", `could not reach the server: ${err.message}`);
  }
  if (!res.ok) {
    const err = await errorOf(res);
    listeners.forEach((fn) => fn(err));
    throw err;
  }
  return raw ? res : res.json();
}

/** A stored audio file as a Blob (an <a href> could not send the key). */
export async function audioBlob(url) {
  const res = await api(url, { raw: true });
  return res.blob();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
