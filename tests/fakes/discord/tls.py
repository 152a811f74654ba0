"""TLS for the fake voice gateway: discord.py always dials `wss://{endpoint}/?v=8`, so the fake serves
it with a certificate for 127.0.0.1 (IP SAN) from a test CA made with trustme, and clients trust that
CA through the standard `SSL_CERT_FILE` variable — product code has no "insecure" switch.

When the variable is read: `ssl.create_default_context()` reads it when a context is created, and
aiohttp 3.14 creates its verified default context ONCE, when `aiohttp.connector` is imported. So:

- `trust_test_ca()` writes a bundle (the test CA + the system CAs, so nothing else loses trust) and
  sets `SSL_CERT_FILE` for the rest of the process (idempotent, one CA per process); call it before
  aiohttp (and discord.py) are imported when you can. `FakeDiscord` calls it when it starts.
- If aiohttp was already imported (the usual case inside pytest, where other modules import it
  first), `trust_test_ca()` also loads the same bundle into aiohttp's already-built default context,
  which is exactly the state it would have had with the variable set at start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import ssl
import sys
import tempfile
import threading

import trustme

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_ca: trustme.CA | None = None
_bundle: str | None = None


def test_ca() -> trustme.CA:
    global _ca
    with _lock:
        if _ca is None:
            _ca = trustme.CA()
        return _ca


def server_context() -> ssl.SSLContext:
    """A server-side context with a certificate for 127.0.0.1 signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca().issue_cert(LOOPBACK).configure_cert(context)
    return context


def _system_bundle() -> bytes:
    """The system CA file, appended so that setting SSL_CERT_FILE adds trust instead of replacing it."""
    cafile = os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile
    if cafile and os.path.isfile(cafile):
        with open(cafile, "rb") as file:
            return b"\n" + file.read()
    return b""


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def trust_test_ca() -> str:
    """Make TLS clients in this process trust the test CA; returns the bundle path (SSL_CERT_FILE)."""
    global _bundle
    ca = test_ca()
    with _lock:
        if _bundle is None:
            handle, path = tempfile.mkstemp(prefix="fake-discord-ca-", suffix=".pem")
            with os.fdopen(handle, "wb") as file:
                file.write(ca.cert_pem.bytes())
                file.write(_system_bundle())
            _bundle = path
            atexit.register(_remove, path)
        os.environ["SSL_CERT_FILE"] = _bundle
    connector = sys.modules.get("aiohttp.connector")
    default = getattr(connector, "_SSL_CONTEXT_VERIFIED", None) if connector else None
    if isinstance(default, ssl.SSLContext):
        # Built at aiohttp's import, possibly before the variable existed: give it the bundle too.
        default.load_verify_locations(cafile=_bundle)
    return _bundle
