"""`python -m bot invite`: for every configured bot token, the link that adds that bot to a server with
exactly the permissions and scopes it needs (bot.setup.permissions).

The application id comes from the token itself: a bot token's first segment is the bot's user id in
base64, and a bot's user id is its application's id. Only when a token does not have that shape (or
with `--online`) is Discord asked, once per token (GET /oauth2/applications/@me at DISCORD_API_BASE).
Tokens are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.errors import BotError, ConfigurationError
from bot.setup.permissions import (
    MAIN_BOT_NEEDS,
    MAIN_BOT_PERMISSIONS,
    MAIN_BOT_SCOPES,
    SPEAKER_BOT_NEEDS,
    SPEAKER_BOT_PERMISSIONS,
    SPEAKER_BOT_SCOPES,
    labels,
)

LOOKUP_TIMEOUT_S = 10.0


class InviteError(BotError):
    """A token's application could not be found; the message names the token by its setting, never its value."""


@dataclass(frozen=True)
class Account:
    """One configured bot account: which setting holds its token, and what it needs."""

    setting: str
    title: str
    token: str
    permissions: discord.Permissions
    permission_names: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Invite:
    title: str
    setting: str
    application_id: int
    url: str
    permissions: discord.Permissions
    permission_names: tuple[str, ...]
    scopes: tuple[str, ...]


def main_account(token: str) -> Account:
    return Account(
        "DISCORD_TOKEN", "Main bot", token, MAIN_BOT_PERMISSIONS, tuple(labels(MAIN_BOT_NEEDS)), MAIN_BOT_SCOPES
    )


def speaker_account(token: str, number: int) -> Account:
    return Account(
        f"SPEAKER_TOKENS #{number}",
        f"Speaker bot {number}",
        token,
        SPEAKER_BOT_PERMISSIONS,
        tuple(labels(SPEAKER_BOT_NEEDS)),
        SPEAKER_BOT_SCOPES,
    )


def configured_accounts(main_token: str | None, speaker_tokens: Sequence[str]) -> list[Account]:
    accounts = [main_account(main_token)] if main_token else []
    accounts += [speaker_account(token, n) for n, token in enumerate(speaker_tokens, start=1)]
    if not accounts:
        raise ConfigurationError("no bot token is configured: set DISCORD_TOKEN (and SPEAKER_TOKENS for speaker bots)")
    return accounts


def application_id_from_token(token: str) -> int | None:
    """The id encoded in a bot token's first segment, or None when the token does not have that shape."""
    first = token.strip().split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(decoded) if decoded.isdigit() and 15 <= len(decoded) <= 20 else None


def invite_url(application_id: int, permissions: discord.Permissions, scopes: Sequence[str]) -> str:
    return discord.utils.oauth_url(application_id, permissions=permissions, scopes=scopes)


def speaker_invite_url(application_id: int) -> str:
    """The link for a speaker bot (what `/setup check` offers when one is missing from a server)."""
    return invite_url(application_id, SPEAKER_BOT_PERMISSIONS, SPEAKER_BOT_SCOPES)


async def lookup_application_id(account: Account, api_base: str) -> int:
    """Ask Discord which application the token belongs to (one request)."""
    import httpx

    url = f"{api_base.rstrip('/')}/oauth2/applications/@me"
    try:
        async with httpx.AsyncClient(timeout=LOOKUP_TIMEOUT_S) as client:
            response = await client.get(url, headers={"Authorization": f"Bot {account.token}"})
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
        raise InviteError(f"could not ask Discord about {account.setting} at {api_base} ({reason})") from None
    if response.status_code == 401:
        raise InviteError(f"Discord rejected the token in {account.setting} (401 Unauthorized); copy it again")
    if response.status_code != 200:
        raise InviteError(f"Discord answered {response.status_code} about {account.setting}")
    try:
        return int(response.json()["id"])
    except (ValueError, KeyError, TypeError):
        raise InviteError(f"Discord's answer about {account.setting} has no application id") from None


async def build_invites(accounts: Sequence[Account], api_base: str, *, online: bool = False) -> list[Invite]:
    invites = []
    for account in accounts:
        application_id = None if online else application_id_from_token(account.token)
        if application_id is None:
            application_id = await lookup_application_id(account, api_base)
        invites.append(
            Invite(
                account.title,
                account.setting,
                application_id,
                invite_url(application_id, account.permissions, account.scopes),
                account.permissions,
                account.permission_names,
                account.scopes,
            )
        )
    return invites


def render(invites: Sequence[Invite]) -> str:
    blocks = [
        f"{i.title} ({i.setting}), application {i.application_id}:\n"
        f"  {i.url}\n"
        f"  permissions {i.permissions.value}: {', '.join(i.permission_names)}\n"
        f"  scopes: {', '.join(i.scopes)}"
        for i in invites
    ]
    footer = (
        "Open each link signed in as someone with Manage Server in the server, and pick the server.\n"
        "No privileged gateway intents are needed (leave Presence, Server Members and Message Content off).\n"
        "Then run /setup check in the server."
    )
    return "\n\n".join([*blocks, footer])


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--online",
        action="store_true",
        help="ask Discord for each token's application id instead of reading it from the token",
    )


def main(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    settings = load_settings()
    main_token = settings.discord_token.get_secret_value().strip() if settings.discord_token else None
    accounts = configured_accounts(main_token, [t.get_secret_value() for t in settings.speaker_tokens])
    invites = asyncio.run(build_invites(accounts, settings.discord_api_base, online=bool(args.online)))
    print(render(invites))
    return 0
