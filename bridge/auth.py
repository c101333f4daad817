"""The bridge's bearer token: who may pause, resume, kill or reset the engine (and read it from beyond loopback).

The token is ``$FOXLAKE_BRIDGE_TOKEN`` when set, else the one in ``RESULTS/live/bridge.token`` (created once, mode
0600, 32 random bytes as URL-safe text). Requests send ``Authorization: Bearer <token>``: none gives 401, a wrong
one 403; tokens are compared in constant time. Read endpoints need no token from a loopback client (127.0.0.1,
::1): whoever runs code on this machine can read the ledger file anyway; from any other address they need it too.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request

TOKEN_ENV = "FOXLAKE_BRIDGE_TOKEN"
TOKEN_FILE = "bridge.token"
LOOPBACK_CLIENTS = ("127.0.0.1", "::1", "localhost", "testclient")  # testclient: starlette's in-process client


@dataclass(frozen=True)
class BridgeToken:
    """The token and where it came from (``env``, ``file`` or ``generated``: written now into ``path``)."""

    value: str
    source: str
    path: Path | None = None


def token_file(results: str | Path) -> Path:
    return Path(results) / "live" / TOKEN_FILE


def resolve_token(results: str | Path) -> BridgeToken:
    """The environment's token, else the token file's, else a new one written to the token file (0600).

    Raises:
        ValueError: the token file is readable by others than its owner, or empty.
    """
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return BridgeToken(env, "env")
    path = token_file(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ValueError(f"{path}: mode {mode:o} lets others read the bridge token; chmod 600 it") from None
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise ValueError(f"{path}: empty bridge token file; delete it to generate a new one") from None
        return BridgeToken(value, "file", path)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return BridgeToken(value, "generated", path)


def bearer(request_headers) -> str | None:
    """The bearer token of an ``Authorization`` header (``None`` when there is none)."""
    header = request_headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def check_token(given: str | None, token: BridgeToken) -> None:
    """401 without a token, 403 with a wrong one (constant-time comparison)."""
    if given is None:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode("utf-8"), token.value.encode("utf-8")):
        raise HTTPException(403, "wrong token")


def is_loopback(client_host: str | None) -> bool:
    return client_host in LOOPBACK_CLIENTS


def require_token(token: BridgeToken):
    """A FastAPI dependency for the control endpoints."""

    def dependency(request: Request) -> None:
        check_token(bearer(request.headers), token)

    return dependency


def require_token_beyond_loopback(token: BridgeToken):
    """A FastAPI dependency for the read endpoints: a token only when the client is not on loopback."""

    async def dependency(request: Request) -> None:  # async: checked on the event loop, no worker thread
        if not is_loopback(request.client.host if request.client else None):
            check_token(bearer(request.headers), token)

    return dependency
