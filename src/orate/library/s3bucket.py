"""Create the S3 bucket of ``ORATE_BLOB_URL`` when it is missing (``ORATE_S3_CREATE_BUCKET``).

obstore reads and writes objects but has no bucket calls, and a fresh S3-compatible
store (SeaweedFS, Garage, MinIO in a compose file) starts with no buckets; without this
an operator must run an S3 client by hand before the first start. Two requests, signed
with AWS Signature Version 4 from the same ``AWS_*`` variables the blob store reads:
HEAD the bucket, and PUT it when the answer is 404.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlparse

import httpx

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class BucketError(Exception):
    """The bucket could not be checked or created; the message says why, in one line."""


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sigv4_headers(
    method: str,
    url: str,
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    session_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers that sign one S3 request (AWS Signature Version 4, payload hashed)."""
    now = now or datetime.now(UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urlparse(url)
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    if session_token:
        headers["x-amz-security-token"] = session_token
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            parts.query,
            *(f"{n}:{headers[n].strip()}" for n in names),
            "",
            ";".join(names),
            payload,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(
        _sign(_sign(_sign(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def ensure_bucket(blob_url: str, endpoint: str | None, *, timeout: float = 10.0) -> bool:
    """Create the bucket of an ``s3://bucket/prefix`` URL if it does not exist.

    Returns True when it was created, False when it was there. Raises BucketError.
    """
    bucket = urlparse(blob_url).netloc
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise BucketError(f"ORATE_BLOB_URL: {bucket!r} is not an S3 bucket name")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = (
        endpoint or os.environ.get("AWS_ENDPOINT_URL") or f"https://s3.{region}.amazonaws.com"
    ).rstrip("/")
    access = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        raise BucketError(
            "ORATE_S3_CREATE_BUCKET needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    url = f"{endpoint}/{bucket}"  # path-style: works on every S3-compatible store
    token = os.environ.get("AWS_SESSION_TOKEN")

    def call(method: str, body: bytes = b"") -> httpx.Response:
        headers = sigv4_headers(
            method,
            url,
            body,
            access_key=access,
            secret_key=secret,
            region=region,
            session_token=token,
        )
        return client.request(method, url, content=body, headers=headers)

    try:
        with httpx.Client(timeout=timeout) as client:
            head = call("HEAD")
            if head.status_code == 200:
                return False
            if head.status_code != 404:
                raise BucketError(
                    f"S3 bucket {bucket} at {endpoint}: HEAD answered "
                    f"{head.status_code}; check the credentials and endpoint"
                )
            body = (
                b""
                if region == "us-east-1"
                else (
                    '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<LocationConstraint>{region}</LocationConstraint>"
                    "</CreateBucketConfiguration>"
                ).encode()
            )
            made = call("PUT", body)
            if made.status_code == 200:
                return True
            # replicas starting together race to create it: the loser finds it there
            if call("HEAD").status_code == 200:
                return False
    except httpx.HTTPError as exc:
        raise BucketError(f"S3 endpoint {endpoint}: {exc or type(exc).__name__}") from exc
    code = re.search(r"<Code>([^<]{1,100})</Code>", made.text)
    raise BucketError(
        f"could not create S3 bucket {bucket} at {endpoint}: "
        f"{made.status_code} {code.group(1) if code else ''}".rstrip()
    )
