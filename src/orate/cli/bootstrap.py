"""First start of ``orate serve`` in a container: the admin key (and the S3 bucket) from
the environment, before the server listens.

A container has no terminal in which to run ``orate keys create`` before the server
starts, yet ``serve`` refuses to listen beyond loopback with no key. So the operator
hands a secret in (``ORATE_ADMIN_KEY``, or ``ORATE_ADMIN_KEY_FILE`` for secrets mounted
as files), and every start makes sure an admin key named ``admin`` with that secret
exists: created on the first start, adopted on later ones, never silently replaced.
The secret is never printed: messages name the variable, not its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orate.cli.common import fail, note, with_library
from orate.config import Settings

if TYPE_CHECKING:
    from orate.library.library import Library

ADMIN_NAME = "admin"
MIN_LENGTH = 16
MAX_LENGTH = 1024
MAX_FILE_BYTES = 64 << 10
HINT = "e.g. `openssl rand -hex 32`"


class BadAdminKey(ValueError):
    """A secret that cannot be an API key; the message names the variable, not the value."""


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be an API key, or None. Keys travel in HTTP headers
    (``Authorization: Bearer …``, ``xi-api-key``), so only printable ASCII without spaces
    survives every client; 16 characters is the least worth guarding a server with."""
    if not secret:
        return "is empty"
    if any(c.isspace() for c in secret):
        return "contains whitespace"
    if len(secret) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    if len(secret) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not all(33 <= ord(c) < 127 for c in secret):
        return "has characters an HTTP header cannot carry (use printable ASCII)"
    return None


def admin_secret(settings: Settings) -> tuple[str, str] | None:
    """``(variable, secret)`` from ``ORATE_ADMIN_KEY`` or ``ORATE_ADMIN_KEY_FILE``, or
    None when neither is set. Raises BadAdminKey with one line saying what to fix."""
    given, path = settings.admin_key, settings.admin_key_file
    if given is not None and path is not None:
        raise BadAdminKey("set ORATE_ADMIN_KEY or ORATE_ADMIN_KEY_FILE, not both")
    if path is not None:
        variable = "ORATE_ADMIN_KEY_FILE"
        try:
            with Path(path).open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise BadAdminKey(f"{variable}={path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise BadAdminKey(
                f"{variable}={path}: larger than {MAX_FILE_BYTES} bytes; it "
                "should hold only the key"
            )
        try:
            secret = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadAdminKey(f"{variable}={path}: not UTF-8 text") from None
        # `echo secret > file` and most secret stores end the file with one newline
        secret = secret.removesuffix("\n").removesuffix("\r")
    elif given is not None:
        variable, secret = "ORATE_ADMIN_KEY", given.get_secret_value()
    else:
        return None
    problem = secret_problem(secret)
    if problem:
        where = f"the key in {variable}" if path is not None else variable
        raise BadAdminKey(
            f"{where} {problem}: use 16 or more printable characters without spaces, {HINT}"
        )
    return variable, secret


def bootstrap(settings: Settings) -> None:
    """Before ``serve`` checks its listeners: create the S3 bucket if asked, then create
    or adopt the admin key. Fails in one line (exit 2) on a bad secret or a conflict."""
    if settings.s3_create_bucket and (settings.blob_url or "").startswith("s3://"):
        from orate.library.s3bucket import BucketError, ensure_bucket

        try:
            if ensure_bucket(settings.blob_url or "", settings.s3_endpoint):
                note(f"created the S3 bucket of {settings.blob_url}")
        except BucketError as exc:
            fail(str(exc))
    try:
        found = admin_secret(settings)
    except BadAdminKey as exc:
        fail(str(exc))
    if found is None:
        return
    variable, secret = found

    async def adopt(lib: Library) -> tuple[str, str | None]:
        return await lib.keys.adopt(ADMIN_NAME, secret)

    outcome, key_id = with_library(adopt)
    if outcome == "created":
        note(f"created the admin key {ADMIN_NAME!r} ({key_id}) from {variable}")
    elif outcome == "conflict":
        fail(
            f"a key named {ADMIN_NAME!r} ({key_id}) already exists with another secret "
            f"than {variable}; it is not replaced. To rotate it, run `orate keys revoke "
            f"{ADMIN_NAME}` against the same data (in a container: docker run --rm -v "
            f"orate-data:/data orate orate keys revoke {ADMIN_NAME}), then start again"
        )
    elif outcome == "taken":
        fail(
            f"{variable} is the secret of another key ({key_id}, revoked or not named "
            f"{ADMIN_NAME!r}); choose a new secret, {HINT}"
        )
