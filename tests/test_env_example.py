""".env.example documents every setting with a comment, and a fresh copy of it means "nothing set yet" (so
`run` names what to fill in and `simulate` still uses the bundled emulator)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.app import require_run_settings
from bot.errors import ConfigurationError
from bot.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / ".env.example"
ASSIGNMENT = re.compile(r"^#?\s?([A-Z][A-Z0-9_]+)=")


def _documented() -> dict[str, str]:
    """Variable -> the comment line just above it (or above the group of variables it belongs to)."""
    found: dict[str, str] = {}
    comment = ""
    for line in EXAMPLE.read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            found[match.group(1)] = comment
        elif line.startswith("# ") and not line.startswith("# ---"):
            comment = line
        elif not line.strip():
            comment = ""
    return found


def test_every_setting_is_listed_with_a_comment():
    documented = _documented()
    for name in Settings.model_fields:
        assert name.upper() in documented, f"{name.upper()} is missing from .env.example"
        assert documented[name.upper()], f"{name.upper()} has no comment in .env.example"


def test_a_fresh_copy_sets_nothing_and_run_says_what_to_fill_in(tmp_path, monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / ".env")
    settings = load_settings()
    assert settings.discord_token is None and not settings.has_palabra_credentials
    assert settings.speaker_tokens == [] and settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    with pytest.raises(ConfigurationError) as error:
        require_run_settings(settings)
    assert "DISCORD_TOKEN" in str(error.value) and "PALABRA_API_KEY" in str(error.value)


def test_the_docker_build_context_leaves_out_secrets_and_local_state():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".env", ".venv", "data", "demo-output", "emulator-credentials.env", ".git"} <= ignored
    assert "!.env.example" in ignored
