"""Download neural voice models (Piper, Kokoro, hibari's voices) into the models directory.

Model files are tens to hundreds of megabytes fetched over connections that
drop, so a download goes to ``FILE.part``, resumes with an HTTP ``Range``
request when run again, is checked against a SHA-256 when one is known, and
only then is renamed into place. A file under its final name is therefore
always whole; the model store never sees half a model.

URLs: every catalog file has a *path* relative to its publisher's root::

    piper:NAME   {lang}/{lang_region}/{voice}/{quality}/NAME.onnx
                 {lang}/{lang_region}/{voice}/{quality}/NAME.onnx.json
                 root https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0
    kokoro       model-files-v1.0/kokoro-v1.0.onnx
                 model-files-v1.0/voices-v1.0.bin
                 root https://github.com/thewh1teagle/kokoro-onnx/releases/download
    hibari:NAME  FILE, as hibari's voice registry names it (e.g. am_fenrir_v2.int8.onnx)
                 root hibari's own download URL (hibari.voices.BASE_URL)

``base_url`` replaces the root, so one mirror (or test server) serving both
trees under one prefix works for both kinds: ``{base_url}/{path}``. A mirror may
also serve ``{base_url}/{path}.sha256`` (hex digest) to have the file checked.

Local layout (what the model store scans): a Piper voice is ``NAME.onnx`` +
``NAME.onnx.json``; a Kokoro pair is ``NAME.onnx`` + ``NAME.voices.bin``; a hibari
voice is ``hibari/FILE`` (checked against the sha256 in hibari's registry). Each
finished file gets a ``FILE.sha256`` sidecar holding the digest computed here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

PIPER_ROOT = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0"
KOKORO_ROOT = "https://github.com/thewh1teagle/kokoro-onnx/releases/download"
KOKORO_RELEASE = "model-files-v1.0"

# Bounded so a stalled server fails the pull instead of hanging it forever; the read
# timeout is per chunk, not per file, so slow links still finish big files.
TIMEOUT = httpx.Timeout(10.0, connect=10.0, read=60.0)
CHUNK = 64 * 1024

ACCEPTED_FORMS = (
    "piper:LANG_REGION-VOICE-QUALITY (e.g. piper:en_US-lessac-medium), kokoro, "
    "hibari:VOICE (e.g. hibari:fenrir)"
)

# lang_region-voice-quality, e.g. en_US-lessac-medium, zh_CN-huayan-x_low. Strict on
# purpose: the name becomes both a URL path and a file name, so nothing path-like passes.
_PIPER_NAME = re.compile(
    r"(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<voice>[A-Za-z0-9_]+)"
    r"-(?P<quality>x_low|low|medium|high)"
)
# A plain file stem: no separators, and no leading dot (so never "." or "..").
_STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")

# Suffixes of everything a model may leave in the models dir (see the module docstring;
# the model store also reads an optional Kokoro ``NAME.config.json``).
_MODEL_SUFFIXES = (".onnx", ".onnx.json", ".voices.bin", ".config.json")
_SIDE_SUFFIXES = ("", ".sha256", ".part")


class DownloadError(Exception):
    """A model file could not be fetched; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ChecksumMismatch(DownloadError):
    """The downloaded bytes do not hash to the published digest (the download was deleted)."""

    def __init__(self, path: Path, expected: str, actual: str, *, url: str | None = None):
        super().__init__(
            f"checksum mismatch for {path.name}: expected sha256 {expected}, "
            f"got {actual}; the download was deleted",
            url=url,
        )
        self.path = path
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class RemoteFile:
    """One file of a model: where it lives under the root, and its name on disk."""

    path: str
    filename: str
    sha256: str | None = None  # a pinned digest, trusted over anything a server says


@dataclass(frozen=True)
class ModelSpec:
    """A resolved ``pull`` spec: the local stem, the publisher's root and the files."""

    kind: str
    name: str
    root: str
    files: tuple[RemoteFile, ...]

    def url(self, file: RemoteFile, base_url: str | None = None) -> str:
        return f"{(base_url or self.root).rstrip('/')}/{file.path}"


def resolve(spec: str) -> ModelSpec:
    """Turn a CLI spec (``piper:NAME`` or ``kokoro``) into the files to fetch."""
    kind, _, name = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "piper" and name:
        m = _PIPER_NAME.fullmatch(name)
        if m is None:
            raise ValueError(
                f"not a Piper voice name: {name!r}; expected "
                "LANG_REGION-VOICE-QUALITY, e.g. en_US-lessac-medium "
                "(quality: x_low, low, medium, high)"
            )
        lang_region = f"{m['lang']}_{m['region']}"
        folder = f"{m['lang']}/{lang_region}/{m['voice']}/{m['quality']}"
        return ModelSpec(
            "piper",
            name,
            PIPER_ROOT,
            (
                RemoteFile(f"{folder}/{name}.onnx", f"{name}.onnx"),
                RemoteFile(f"{folder}/{name}.onnx.json", f"{name}.onnx.json"),
            ),
        )
    if kind == "kokoro" and not name:
        return ModelSpec(
            "kokoro",
            "kokoro",
            KOKORO_ROOT,
            (
                RemoteFile(f"{KOKORO_RELEASE}/kokoro-v1.0.onnx", "kokoro.onnx"),
                RemoteFile(f"{KOKORO_RELEASE}/voices-v1.0.bin", "kokoro.voices.bin"),
            ),
        )
    if kind == "hibari" and name:
        return _hibari_spec(name.lower())
    raise ValueError(f"unknown model spec {spec!r}; accepted: {ACCEPTED_FORMS}")


def _hibari_spec(voice: str) -> ModelSpec:
    """One of hibari's downloadable voices: the file its registry names, pinned to the
    registry's sha256, fetched from hibari's own URL into ``hibari/`` in the store."""
    from orate.engines.hibari import STORE_FOLDER, available, registry

    if not available():
        raise ValueError("hibari:VOICE needs the hibari-tts package, which is not installed")
    voices = registry()
    extra = [name for name, meta in voices.items() if not meta.get("bundled")]
    meta = voices.get(voice)
    if meta is None:
        raise ValueError(f"hibari has no voice {voice!r}; installable: {', '.join(extra)}")
    if meta.get("bundled"):
        raise ValueError(
            f"hibari's voice {voice!r} ships inside the hibari-tts wheel; "
            f"nothing to pull (installable: {', '.join(extra)})"
        )
    if not _STEM.fullmatch(meta["file"]):  # becomes a file name in the store
        raise ValueError(f"hibari's registry names an unusable file {meta['file']!r}")
    from hibari.voices import BASE_URL

    return ModelSpec(
        "hibari",
        voice,
        BASE_URL.rstrip("/"),
        (RemoteFile(meta["file"], f"{STORE_FOLDER}/{meta['file']}", meta["sha256"]),),
    )


def pull(
    spec: str,
    models_dir: Path,
    *,
    base_url: str | None = None,
    console: Console | None = None,
    client: httpx.Client | None = None,
) -> list[Path]:
    """Fetch every file of ``spec`` into ``models_dir``; return the final paths.

    Files already complete (present, and hashing to their ``.sha256`` sidecar) are
    skipped without touching the network. An interrupted download raises
    ``DownloadError`` and keeps its ``.part``, which the next call resumes. A given
    ``client`` is used as is (its timeouts, proxies); otherwise one is made with
    bounded timeouts and closed afterwards.
    """
    model = resolve(spec)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    models_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(httpx.Client(timeout=TIMEOUT))
        progress = stack.enter_context(_progress(console))
        done: list[Path] = []
        for file in model.files:
            target = models_dir / file.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            if _is_complete(target):
                console.print(f"{target.name}: already downloaded")
            elif _copied_in(target, file.sha256):
                console.print(f"{target.name}: already in the store (its checksum matches)")
            else:
                _fetch(client, model.url(file, base_url), target, file.sha256, progress)
            done.append(target)
    return done


def remove(spec_or_name: str, models_dir: Path) -> list[Path]:
    """Delete a model's files, their sidecars and any ``.part``; return what was deleted.

    Takes a ``pull`` spec or the local stem (``en_US-lessac-medium``, ``kokoro``).
    Only plain stems are accepted, so the name can never reach outside ``models_dir``.
    Deleting nothing is not an error: the result is then empty.
    """
    text = spec_or_name.strip()
    if text.lower().startswith("hibari:"):  # one file, under the store's hibari folder
        removed = []
        for file in resolve(text).files:
            for side in _SIDE_SUFFIXES:
                path = models_dir / f"{file.filename}{side}"
                if path.is_file() or path.is_symlink():
                    path.unlink()
                    removed.append(path)
        return removed
    stem = resolve(text).name if ":" in text else text
    if not _STEM.fullmatch(stem):
        raise ValueError(
            f"not a model name: {spec_or_name!r}; expected a plain file stem "
            f"(letters, digits, '_', '-', '.') or {ACCEPTED_FORMS}"
        )
    removed = []
    for model_suffix in _MODEL_SUFFIXES:
        for side in _SIDE_SUFFIXES:
            path = models_dir / f"{stem}{model_suffix}{side}"
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed


# --- one file -------------------------------------------------------------------------


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _is_complete(target: Path) -> bool:
    """A final file counts only with a sidecar it still hashes to (catches edits, rot)."""
    side = _sidecar(target)
    if not (target.is_file() and side.is_file()):
        return False
    recorded = _parse_digest(side.read_text(errors="replace"))
    return recorded is not None and _hash_file(target).hexdigest() == recorded


def _copied_in(target: Path, pinned: str | None) -> bool:
    """A file put in the store by hand that hashes to its pinned digest: keep it (and
    record the sidecar) instead of downloading it again."""
    if pinned is None or not target.is_file() or _hash_file(target).hexdigest() != pinned:
        return False
    _write_atomic(_sidecar(target), f"{pinned}  {target.name}\n".encode())
    return True


def _fetch(
    client: httpx.Client, url: str, target: Path, pinned: str | None, progress: Progress
) -> None:
    """Download ``url`` to ``target`` via ``target.part``: resume, verify, rename."""
    part = _part(target)
    expected = pinned or _remote_digest(client, url)
    task = progress.add_task(target.name, total=None)
    hasher, header_digest = _download(client, url, part, progress, task)
    expected = expected or header_digest
    actual = hasher.hexdigest()
    if expected is not None and actual != expected:
        # Bad bytes are never kept (resuming them would only fail again); a file already
        # under the final name was not part of this download and is left alone.
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(target, expected, actual, url=url)
    # Sidecar first: a crash before the rename leaves a whole .part that the next run
    # finds complete (416) and renames, rather than a final file nobody can vouch for.
    _write_atomic(_sidecar(target), f"{actual}  {target.name}\n".encode())
    os.replace(part, target)
    _fsync_dir(target.parent)


def _download(
    client: httpx.Client, url: str, part: Path, progress: Progress, task: TaskID
) -> tuple[hashlib._Hash, str | None]:
    """Bring ``part`` up to the whole file; return its hash and any digest the server sent.

    Resumes from the bytes already in ``part``; a server that ignores ``Range`` (200)
    or answers for another range gets a fresh start, so a wrong resume can't splice
    two versions of a file together.
    """
    offset = part.stat().st_size if part.is_file() else 0
    for _attempt in range(2):
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with client.stream("GET", url, headers=headers, follow_redirects=True) as resp:
                digest = _header_digest(resp)
                if resp.status_code == 416 and offset:
                    total = _unsatisfied_total(resp)
                    if total == offset:  # the .part already holds every byte
                        progress.update(task, total=total, completed=total)
                        return _hash_file(part), digest
                    offset = 0
                    continue
                _raise_for_status(resp, url)
                start, total = _response_span(resp, offset)
                if start != offset:  # 200, or a range we did not ask for: start over
                    offset = 0
                    if start != 0:
                        continue
                hasher = _hash_file(part, limit=offset) if offset else hashlib.sha256()
                progress.update(task, total=total, completed=offset)
                written = _stream_to(resp, part, offset, hasher, progress, task)
        except httpx.TransportError as exc:
            raise DownloadError(
                f"download of {url} was interrupted ({exc}); run again to resume from {part.name}",
                url=url,
            ) from exc
        if total is not None and offset + written != total:
            raise DownloadError(
                f"download of {url} ended at {offset + written} of {total} "
                f"bytes; run again to resume from {part.name}",
                url=url,
            )
        return hasher, digest
    raise DownloadError(f"{url} kept answering a range other than the one requested", url=url)


def _stream_to(
    resp: httpx.Response,
    part: Path,
    offset: int,
    hasher: hashlib._Hash,
    progress: Progress,
    task: TaskID,
) -> int:
    """Append the body to ``part`` at ``offset`` (truncating there), hashing as it goes."""
    encoding = resp.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        # Byte offsets for Range refer to the encoded body; refuse rather than mix them.
        raise DownloadError(
            f"{resp.url} sent a {encoding}-encoded body though identity was asked for",
            url=str(resp.url),
            status=resp.status_code,
        )
    written = 0
    with open(part, "r+b" if offset else "wb") as f:
        f.seek(offset)
        f.truncate()
        try:
            for chunk in resp.iter_raw(CHUNK):
                f.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
                progress.advance(task, len(chunk))
        finally:
            # Whatever arrived is kept durably, so the next run resumes after it.
            f.flush()
            os.fsync(f.fileno())
    return written


def _response_span(resp: httpx.Response, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's total size if known."""
    if resp.status_code == 206:
        m = _CONTENT_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
        if m is None:
            return -1, None  # unparseable: not a range we can trust
        total = None if m[3] == "*" else int(m[3])
        return int(m[1]), total
    length = resp.headers.get("content-length")
    return 0, int(length) if length and length.isdigit() else None


def _unsatisfied_total(resp: httpx.Response) -> int | None:
    m = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
    return int(m[1]) if m else None


def _raise_for_status(resp: httpx.Response, url: str) -> None:
    if resp.status_code not in (200, 206):
        raise DownloadError(f"HTTP {resp.status_code} from {url}", url=url, status=resp.status_code)


# --- digests --------------------------------------------------------------------------


def _parse_digest(text: str) -> str | None:
    """The hex digest of a ``sha256sum``-style line (``HEX`` or ``HEX  NAME``)."""
    token = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    return token if _SHA256.fullmatch(token) else None


def _remote_digest(client: httpx.Client, url: str) -> str | None:
    """The digest a ``URL.sha256`` sidecar publishes, or None when there is none."""
    side_url = url + ".sha256"
    try:
        resp = client.get(side_url, follow_redirects=True)
    except httpx.TransportError as exc:
        raise DownloadError(f"could not reach {side_url}: {exc}", url=side_url) from exc
    if resp.status_code in (401, 403, 404, 410):  # not published: rely on the headers
        return None
    _raise_for_status(resp, side_url)
    digest = _parse_digest(resp.text[:1024])
    if digest is None:
        raise DownloadError(f"{side_url} does not hold a sha256 digest", url=side_url)
    return digest


def _header_digest(resp: httpx.Response) -> str | None:
    """Hugging Face's ``X-Linked-Etag`` (the LFS sha256), which it sends on the redirect."""
    for r in (*resp.history, resp):
        digest = _parse_digest(r.headers.get("x-linked-etag", "").strip().strip('"'))
        if digest is not None:
            return digest
    return None


def _hash_file(path: Path, limit: int | None = None) -> hashlib._Hash:
    hasher = hashlib.sha256()
    for chunk in _read_chunks(path, limit):
        hasher.update(chunk)
    return hasher


def _read_chunks(path: Path, limit: int | None) -> Iterator[bytes]:
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            chunk = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


# --- durable writes -------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
