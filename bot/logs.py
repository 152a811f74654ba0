"""Logging set-up with secret redaction.

Every handler gets a filter that replaces registered secret values, and anything shaped like a
credential in a URL or header, with `***`, so no token, client secret or API key reaches a log.
"""

from __future__ import annotations

import logging
import re
import threading

_REDACTED = "***"
# Credentials that can appear inside URLs, headers or reprs even when their value was never registered.
_PATTERNS = [
    re.compile(r"(?i)(token=)[^&\s'\"]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]+"),
    re.compile(r"(?i)((?:clientsecret|client_secret|stream_key|api_key)[\"']?\s*[:=]\s*[\"']?)[^\s,'\"&}]+"),
    re.compile(r"()\bplbr_[A-Za-z0-9_\-]+"),
    # Stream keys typed into `/broadcast` outputs (`lang=rtmp://host/app|KEY`), e.g. in gateway payloads.
    re.compile(r"(?i)((?:rtmps?|srt)://[^|\s\"']+\|)[^;\s\"']+"),
    # Discord bot tokens: base64 user id . timestamp . hmac
    re.compile(r"()\b[MNO][A-Za-z\d_-]{23,25}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,38}\b"),
]


class _SecretRegistry:
    """The registered secrets, longest first (a longer secret containing a shorter one is redacted whole).
    `longest_first` is rebuilt under the lock on registration and read lock-free by every log record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.longest_first: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        with self._lock:
            if value not in self._secrets:
                self._secrets.add(value)
                self.longest_first = tuple(sorted(self._secrets, key=len, reverse=True))


_registry = _SecretRegistry()


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is redacted wherever it appears in a log record."""
    if value and len(value) >= 4:
        _registry.add(value)


def redact(text: str) -> str:
    for secret in _registry.longest_first:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + _REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not root.handlers:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root.addHandler(console)
    for handler in root.handlers:
        install_redaction(handler)
    root.setLevel(level)
    # discord.py logs full gateway payloads at DEBUG, which include tokens in IDENTIFY.
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, root.level))
    # Alembic announces its plugins and dialect at INFO on every start; bot.db.migrate logs the outcome.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO; failures reach our own log lines with their cause.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
