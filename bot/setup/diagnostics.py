"""`/setup check`: what stands between a server and a working interpretation, each problem with its fix.

Every check reads the bots' own caches (each speaker bot's view of the server is its own), the server's
settings, Palabra (one cheap REST call) and the database (one write, rolled back). Findings are one line
each: `problem` (something will not work), `warning` (works, but less than it could), `ok`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import discord

from bot.setup.permissions import (
    MAIN_IN_SIBLING,
    MAIN_IN_SOURCE,
    MAIN_IN_TRANSCRIPT_THREAD,
    MAIN_IN_TRANSCRIPTS,
    MANAGE_WEBHOOKS,
    SPEAKER_IN_SIBLING,
    Need,
    missing,
)

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.db.models import GuildSettings
    from bot.palabra.rest import PalabraRest

Level = Literal["ok", "warning", "problem"]
PALABRA_TIMEOUT_S = 10.0
MARKS = {"ok": "✅", "warning": "⚠️", "problem": "❌"}
CHANNEL_FIX = "Fix: `/setup create-channels`, or `/setup channel`."


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str

    def line(self) -> str:
        return f"{MARKS[self.level]} {self.text}"


def ok(text: str) -> Finding:
    return Finding("ok", text)


def warning(text: str) -> Finding:
    return Finding("warning", text)


def problem(text: str) -> Finding:
    return Finding("problem", text)


@dataclass(frozen=True)
class ServerView:
    """What the checks look at: the listener's view of the server and the server's settings."""

    guild: discord.Guild
    settings: GuildSettings
    source: discord.VoiceChannel | discord.StageChannel | None  # the caller's voice channel, if any


def _mention(channel: discord.abc.GuildChannel | discord.Thread) -> str:
    return f"<#{channel.id}>"


def lacking(who: str, granted: discord.Permissions, needs: Sequence[Need], where: str) -> Finding | None:
    """A problem naming the missing permissions, why each is needed, and where to allow them."""
    absent = missing(granted, needs)
    if not absent:
        return None
    names = ", ".join(n.label for n in absent)
    reasons = "; ".join(f"{n.label} {n.why}" for n in absent)
    return problem(
        f"**{who}** lacks {names} in {where} ({reasons}). "
        f"Fix: {where} → Edit Channel → Permissions → allow {names} for **{who}** or its role."
    )


# ---- the main bot ----------------------------------------------------------------------------------


def main_bot_findings(view: ServerView) -> list[Finding]:
    me = view.guild.me
    findings: list[Finding] = []
    if view.source is None:
        findings.append(
            warning(
                "You are not in a voice channel, so the source channel was not checked: join the one to "
                "interpret and run `/setup check` again."
            )
        )
    else:
        found = lacking(me.display_name, view.source.permissions_for(me), MAIN_IN_SOURCE, _mention(view.source))
        findings.append(found or ok(f"**{me.display_name}** can listen, speak and post in {_mention(view.source)}."))
    findings += transcript_findings(view)
    return findings


def transcript_findings(view: ServerView) -> list[Finding]:
    guild, me = view.guild, view.guild.me
    channel_id = view.settings.transcript_channel_id
    channel: discord.abc.GuildChannel | discord.Thread | None = view.source
    if channel_id:
        channel = guild.get_channel_or_thread(channel_id)
        if channel is None:
            return [
                problem(
                    f"The transcript channel <#{channel_id}> no longer exists (transcripts fall back to the voice "
                    "channel's chat). Fix: choose one with `/setup transcripts`."
                )
            ]
    if channel is None:
        return []
    problems = transcript_channel_problems(me, channel)
    return problems or [
        ok(f"Transcripts can be posted in {_mention(channel)}, under each speaker's name, with the summary files.")
    ]


def transcript_channel_problems(
    me: discord.Member, channel: discord.abc.GuildChannel | discord.Thread
) -> list[Finding]:
    """What keeps the bot from posting transcripts (through a webhook) and the summary files in `channel`."""
    where = _mention(channel)
    if isinstance(channel, discord.Thread):
        found = [lacking(me.display_name, channel.permissions_for(me), MAIN_IN_TRANSCRIPT_THREAD, where)]
        if channel.parent is not None:
            parent = channel.parent
            found.append(lacking(me.display_name, parent.permissions_for(me), (MANAGE_WEBHOOKS,), _mention(parent)))
    elif not hasattr(channel, "webhooks"):
        return [
            problem(
                f"{where} cannot hold webhooks, so transcripts cannot be posted there. "
                "Fix: `/setup transcripts` with a text channel."
            )
        ]
    else:
        found = [lacking(me.display_name, channel.permissions_for(me), MAIN_IN_TRANSCRIPTS, where)]
    return [f for f in found if f is not None]


# ---- sibling channels ------------------------------------------------------------------------------


def sibling_channels(view: ServerView) -> dict[str, discord.VoiceChannel | discord.StageChannel]:
    """Target language -> its sibling voice channel, for those that are set and exist."""
    found = {}
    for language in view.settings.target_languages:
        channel = view.guild.get_channel(view.settings.sibling_channels.get(language, 0))
        if isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
            found[language] = channel
    return found


def sibling_findings(view: ServerView) -> list[Finding]:
    settings, me = view.settings, view.guild.me
    targets = list(settings.target_languages)
    if not targets:
        return [problem("No target languages are set. Fix: `/setup languages source:<code> targets:<codes>`.")]
    findings: list[Finding] = []
    seen: dict[int, str] = {}
    for language in targets:
        channel_id = settings.sibling_channels.get(language)
        channel = view.guild.get_channel(channel_id) if channel_id else None
        if channel_id is None:
            findings.append(
                warning(
                    f"**{language}** has no voice channel: it can only play in the source channel (one language "
                    "at most) or stay text only. " + CHANNEL_FIX
                )
            )
        elif channel is None:
            findings.append(
                problem(f"The voice channel of **{language}** (<#{channel_id}>) no longer exists. {CHANNEL_FIX}")
            )
        elif not isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
            findings.append(problem(f"<#{channel_id}>, set for **{language}**, is not a voice channel. " + CHANNEL_FIX))
        elif channel_id in seen:
            findings.append(
                problem(
                    f"**{seen[channel_id]}** and **{language}** share <#{channel_id}>; each language needs its own. "
                    + CHANNEL_FIX
                )
            )
        elif view.source is not None and channel_id == view.source.id:
            findings.append(
                warning(f"**{language}**'s channel is the source channel itself; it will play there, not separately.")
            )
        else:
            seen[channel_id] = language
            findings.append(
                lacking(me.display_name, channel.permissions_for(me), MAIN_IN_SIBLING, _mention(channel))
                or ok(f"**{language}** is heard in {_mention(channel)}.")
            )
    return findings


# ---- speaker bots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerBots:
    """The speaker clients that logged in, and how many of the configured tokens are still logging in or
    never did (see bot.voice.speakers.start_speakers)."""

    clients: Sequence[discord.Client]
    configured: int
    logging_in: int = 0
    failed: int = 0


def speaker_findings(view: ServerView, bots: SpeakerBots) -> list[Finding]:
    from bot.setup.invite import speaker_invite_url

    findings: list[Finding] = []
    channels = sibling_channels(view)
    speakers, configured = bots.clients, bots.configured
    if configured == 0:
        return [
            warning(
                "No speaker bots are configured (SPEAKER_TOKENS): one language can play in the source channel, the "
                'others are text only. Fix: add speaker bots (README, "Set up on Discord").'
            )
        ]
    # Tokens neither logged in nor failed are still starting (also before start_speakers has begun).
    pending = max(bots.logging_in, configured - len(speakers) - bots.failed)
    if pending:
        findings.append(
            warning(
                f"{pending} of the {configured} speaker bots are still logging in (the bot has just "
                "started); run `/setup check` again in a minute."
            )
        )
    if bots.failed:
        findings.append(
            problem(
                f"{bots.failed} of the {configured} speaker bots in SPEAKER_TOKENS did not log in when the bot "
                "started. Fix: check those tokens (the bot's log names which) and restart the bot."
            )
        )
    usable = 0
    for number, speaker in enumerate(speakers, start=1):
        name = f"Speaker bot {number}" if speaker.user is None else speaker.user.display_name
        if not speaker.is_ready() or speaker.is_closed():
            findings.append(
                problem(
                    f"**{name}** is not connected to Discord right now. "
                    "Fix: wait a minute; if it stays so, check its token and restart the bot."
                )
            )
            continue
        guild = speaker.get_guild(view.guild.id)
        if guild is None:
            app_id = speaker.application_id or (speaker.user.id if speaker.user else 0)
            findings.append(
                problem(f"**{name}** is not in this server. Fix: invite it with {speaker_invite_url(app_id)}")
            )
            continue
        own = [_speaker_can_play(name, guild, channel) for channel in channels.values()]
        blocked = [f for f in own if f is not None]
        findings += blocked
        usable += not blocked
    if usable and len(channels) > usable:
        findings.append(
            warning(
                f"{len(channels)} languages have voice channels but only {usable} speaker bot(s) can play in them: "
                "the rest will play in the source channel or be text only. Fix: add speaker bots."
            )
        )
    if not any(f.level != "ok" for f in findings):
        findings.append(
            ok(f"{usable} speaker bot(s) are ready in this server and can play in every language's channel.")
        )
    return findings


def _speaker_can_play(name: str, guild: discord.Guild, channel: discord.abc.GuildChannel) -> Finding | None:
    own_view = guild.get_channel(channel.id)
    if own_view is None:
        return problem(
            f"**{name}** cannot see {_mention(channel)}. "
            f"Fix: {_mention(channel)} → Edit Channel → Permissions → allow View Channel for **{name}**."
        )
    return lacking(name, own_view.permissions_for(guild.me), SPEAKER_IN_SIBLING, _mention(channel))


# ---- Palabra and the database ----------------------------------------------------------------------


async def palabra_findings(rest: PalabraRest | None, api_url: str) -> list[Finding]:
    """One cheap authenticated call (the first page of the session list), Palabra's own error told as is."""
    from bot.logs import redact
    from bot.palabra.errors import AuthenticationError, PalabraConnectionError, PalabraError

    if rest is None:
        return [
            problem(
                "Palabra credentials are not set. "
                "Fix: set PALABRA_CLIENT_ID and PALABRA_CLIENT_SECRET, or PALABRA_API_KEY, and restart the bot."
            )
        ]
    try:
        await asyncio.wait_for(_first_page(rest), PALABRA_TIMEOUT_S)
    except AuthenticationError as exc:
        return [
            problem(
                f"Palabra rejected the credentials: {redact(str(exc))}. "
                "Fix: check PALABRA_CLIENT_ID and PALABRA_CLIENT_SECRET, or PALABRA_API_KEY."
            )
        ]
    except PalabraConnectionError as exc:
        return [
            problem(
                f"Palabra is unreachable at {api_url}: {redact(str(exc))}. Fix: check PALABRA_API_URL and the network."
            )
        ]
    except TimeoutError:
        return [
            problem(
                f"Palabra did not answer within {PALABRA_TIMEOUT_S:.0f} s at {api_url}. "
                "Fix: check PALABRA_API_URL and the network."
            )
        ]
    except PalabraError as exc:
        return [problem(f"Palabra answered with an error: {redact(str(exc))}.")]
    return [ok(f"Palabra accepts the credentials ({api_url}).")]


async def _first_page(rest: PalabraRest) -> None:
    async for _ in rest.list_sessions(page_size=1):
        break


async def database_findings(database: Database, guild_id: int) -> list[Finding]:
    """A real write to this server's settings row, rolled back: a read-only database fails here."""
    from sqlalchemy import update
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.models import GuildSettings

    try:
        async with database.engine.connect() as connection, connection.begin() as transaction:
            await connection.execute(
                update(GuildSettings)
                .where(GuildSettings.guild_id == guild_id)
                .values(source_language=GuildSettings.source_language)
            )
            await transaction.rollback()
    except (SQLAlchemyError, OSError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return [
            problem(
                f"The database cannot be written ({detail[0] if detail else type(exc).__name__}). "
                "Fix: check DATABASE_URL, the disk and its permissions."
            )
        ]
    return [ok(f"The database ({database.backend}) can be written.")]


# ---- the whole check -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    findings: list[Finding]

    @property
    def problems(self) -> int:
        return sum(f.level == "problem" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level == "warning" for f in self.findings)

    @property
    def title(self) -> str:
        if self.problems:
            return f"Setup check: {self.problems} problem(s) to fix"
        return "Setup check: all good" if not self.warnings else f"Setup check: works, {self.warnings} warning(s)"

    @property
    def colour(self) -> discord.Colour:
        if self.problems:
            return discord.Colour.red()
        return discord.Colour.gold() if self.warnings else discord.Colour.green()

    def lines(self) -> list[str]:
        """Problems first, then warnings, then what is fine."""
        order = {"problem": 0, "warning": 1, "ok": 2}
        return [f.line() for f in sorted(self.findings, key=lambda f: order[f.level])]


async def diagnose(
    view: ServerView,
    *,
    speakers: SpeakerBots,
    palabra: PalabraRest | None,
    palabra_url: str,
    database: Database,
) -> Report:
    findings = main_bot_findings(view) + sibling_findings(view)
    findings += speaker_findings(view, speakers)
    remote = await asyncio.gather(palabra_findings(palabra, palabra_url), database_findings(database, view.guild.id))
    return Report(findings + [f for found in remote for f in found])
