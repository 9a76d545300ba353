"""A process that read or wrote a blob exits cleanly.

obstore's ``*_async`` calls resolve their futures from obstore's own runtime threads;
a process exiting while one of them takes the GIL aborts (SIGABRT, sometimes SIGBUS),
about one exit in four when several run at once. ``orate jobs wait -o`` did, after
writing its file. The blob store uses the blocking calls on threads of its own.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BLOBS = Path(__file__).parents[1] / "src" / "orate" / "library" / "blobs.py"

SCRIPT = """
import asyncio, sys
from orate.library.blobs import BlobStore

async def main():
    store = BlobStore("file://" + sys.argv[1])
    await store.put("audio/" + "ab" * 8, b"x" * 100_000)
    assert len(await store.get("audio/" + "ab" * 8)) == 100_000
    assert await store.exists("audio/" + "ab" * 8)
    await store.delete("audio/" + "ab" * 8)

asyncio.run(main())
"""


def test_the_blob_store_calls_no_async_obstore_api() -> None:
    calls = {
        node.attr
        for node in ast.walk(ast.parse(BLOBS.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "obstore"
    }
    assert calls and not {c for c in calls if c.endswith("_async")}, calls


def test_processes_that_used_the_blob_store_exit_cleanly(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path / f"store{i}")],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(12)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0] * 12, [err[-400:] for _, err in results]
