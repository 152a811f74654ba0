"""`python -m bot invite`: the invite links carry exactly the permission bits the code needs (stated here
from Discord's documented bit values, independently of the product's list) and the right scopes."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import parse_qs, urlparse

import discord
import pytest

from bot.setup import permissions
from bot.setup.invite import InviteError, application_id_from_token, build_invites, configured_accounts
from tests.fakes import secrets
from tests.fakes.discord.model import (
    ATTACH_FILES,
    CONNECT,
    MANAGE_CHANNELS,
    MANAGE_WEBHOOKS,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    SPEAK,
    VIEW_CHANNEL,
)
from tests.fakes.discord.server import FakeDiscord

# What the bots do (see bot/setup/permissions.py): listen and speak, post notices, transcripts through a
# webhook (in a thread too), attach the summary files, create sibling channels.
MAIN_BITS = (
    VIEW_CHANNEL
    | CONNECT
    | SPEAK
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | ATTACH_FILES
    | MANAGE_WEBHOOKS
    | MANAGE_CHANNELS
)
SPEAKER_BITS = VIEW_CHANNEL | CONNECT | SPEAK
USER_IDS = ["1090123456789012345", "1090123456789012346", "1090123456789012347"]  # the test tokens' first segments


def _links(output: str) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(word).query) for word in output.split() if word.startswith("https://discord.com/")]


def test_cli_prints_one_link_per_token_with_the_needed_bits_and_scopes_without_network(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DISCORD_TOKEN": secrets.DISCORD_TOKEN,
        "SPEAKER_TOKENS": ",".join(secrets.SPEAKER_TOKENS),
        "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",  # nothing listens: a network call would fail
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "invite"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    main, *speakers = _links(result.stdout)
    assert main == {"client_id": [USER_IDS[0]], "scope": ["bot applications.commands"], "permissions": [str(MAIN_BITS)]}
    assert speakers == [
        {"client_id": [user_id], "scope": ["bot"], "permissions": [str(SPEAKER_BITS)]} for user_id in USER_IDS[1:]
    ]
    assert "Main bot (DISCORD_TOKEN)" in result.stdout and "Speaker bot 2 (SPEAKER_TOKENS #2)" in result.stdout
    assert "Manage Webhooks" in result.stdout and "No privileged gateway intents" in result.stdout
    for token in [secrets.DISCORD_TOKEN, *secrets.SPEAKER_TOKENS]:
        assert token not in result.stdout + result.stderr
        assert token.split(".")[1] not in result.stdout + result.stderr


def test_without_any_token_it_says_what_to_set(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "invite"],
        check=False,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: no bot token is configured: set DISCORD_TOKEN")


def test_the_checked_needs_and_the_invited_permissions_are_one_list():
    assert permissions.MAIN_BOT_PERMISSIONS.value == MAIN_BITS
    assert permissions.SPEAKER_BOT_PERMISSIONS.value == SPEAKER_BITS
    invited = permissions.MAIN_BOT_PERMISSIONS
    for needs in (
        permissions.MAIN_IN_SOURCE,
        permissions.MAIN_IN_TRANSCRIPTS,
        permissions.MAIN_IN_TRANSCRIPT_THREAD,
        permissions.MAIN_IN_SIBLING,
        permissions.MAIN_FOR_NEW_CHANNELS,
    ):
        assert permissions.permissions_of(needs) <= invited, needs
    # What /interpret start itself refuses without (bot.interpretation.manager) is part of the source's needs.
    assert discord.Permissions(connect=True, speak=True, view_channel=True) <= permissions.permissions_of(
        permissions.MAIN_IN_SOURCE
    )


def test_the_application_id_is_read_from_the_token():
    assert [application_id_from_token(t) for t in [secrets.DISCORD_TOKEN, *secrets.SPEAKER_TOKENS]] == [
        int(u) for u in USER_IDS
    ]
    assert application_id_from_token("not-a-token") is None
    assert application_id_from_token("aGVsbG8.x.y") is None  # base64, but not an id


OLD_STYLE_TOKEN = "legacy-token-without-an-id.abcdef.0123456789abcdefghij"


async def test_a_token_without_an_id_is_looked_up_once_and_a_rejected_one_is_named_by_its_setting():
    async with FakeDiscord(bot_tokens=[OLD_STYLE_TOKEN, secrets.DISCORD_TOKEN]) as fake:
        (invite,) = await build_invites(configured_accounts(OLD_STYLE_TOKEN, []), fake.api_base)
        assert invite.application_id == fake.bot(OLD_STYLE_TOKEN).application_id
        assert [r for r in fake.rest.requests if "applications" in r[1]] == [("GET", "/oauth2/applications/@me")]
        assert f"client_id={invite.application_id}&" in invite.url

        online = await build_invites(configured_accounts(secrets.DISCORD_TOKEN, []), fake.api_base, online=True)
        assert online[0].application_id == fake.bot(secrets.DISCORD_TOKEN).application_id

        with pytest.raises(InviteError) as caught:
            await build_invites(configured_accounts(None, ["unknown-token.abc.def"]), fake.api_base)
        assert str(caught.value) == "Discord rejected the token in SPEAKER_TOKENS #1 (401 Unauthorized); copy it again"
