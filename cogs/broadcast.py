"""/broadcast create|list|show|update|delete|listen|announce: Palabra broadcasts owned by this server.

Outputs are one compact option (`es=rtmp://host/app|KEY; fr=srt://host:9000|KEY; hls=original,es`,
see bot/broadcasts/validation.py): a broadcast has a variable number of outputs and a slash command
cannot repeat an option, while one string can be pasted, edited and shown back as typed.

Secrets: the ingest URL + stream key (create, `show ingest:True`) and the WebRTC token (listen) are
only ever sent in ephemeral replies; public replies (list, show, update, delete, announce) and status
announcements never carry a stream key.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.broadcasts.poller import DEFAULT_INTERVAL_S, BroadcastPoller
from bot.broadcasts.service import BroadcastRejected, BroadcastService, BroadcastView, Ingest
from bot.broadcasts.validation import MAX_OUTPUTS, parse_create
from bot.errors import ConfigurationError
from bot.messages import clip
from cogs.common import (
    guild_id_of,
    may_configure,
    require_configure,
    services_of,
    source_autocomplete,
    targets_autocomplete,
    with_warnings,
)

if TYPE_CHECKING:
    from bot.client import InterpreterBot

log = logging.getLogger(__name__)

INPUTS = [
    app_commands.Choice(name="RTMP push", value="rtmp_push"),
    app_commands.Choice(name="SRT push", value="srt_push"),
]
# Option descriptions are capped at 100 characters by Discord, so the example uses short keys.
OUTPUTS_EXAMPLE = "es=rtmp://host/app|KEY; fr=srt://host:9000|KEY; hls=original,es"
OUTPUTS_HELP = f"Up to {MAX_OUTPUTS}: {OUTPUTS_EXAMPLE}"


NO_PINGS = discord.AllowedMentions.none()  # titles are free text: never let one ping @everyone


async def reply(interaction: discord.Interaction, text: str, *, ephemeral: bool = False) -> None:
    """The final answer to a deferred command."""
    await interaction.followup.send(text, ephemeral=ephemeral, allowed_mentions=NO_PINGS)


def service_of(interaction: discord.Interaction) -> BroadcastService:
    service: BroadcastService | None = services_of(interaction).broadcasts
    assert service is not None, "the cog is only loaded with a broadcast service"
    return service


async def broadcast_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None or not await may_configure(interaction):
        return []
    pairs: list[tuple[str, str]] = await service_of(interaction).choices(interaction.guild_id, current)
    return [app_commands.Choice(name=label[:100], value=value) for label, value in pairs[:25]]


# --- rendering -----------------------------------------------------------------------------------------
def ingest_text(ingest: Ingest | None) -> str:
    if ingest is None or not ingest.server:
        return "Palabra gave no ingest address; check the broadcast with `/broadcast show ingest:True`."
    lines = [f"**Send your stream ({ingest.protocol})** — keep this private:", f"Server: `{ingest.server}`"]
    if ingest.stream_key:
        lines.append(f"Stream key: ||`{ingest.stream_key}`||")
    return "\n".join(lines)


def summary_line(view: BroadcastView) -> str:
    outputs = f", {len(view.outputs)} output(s)" if view.outputs else ""
    stale = " (last known; Palabra unreachable)" if not view.live else ""
    return f"• **{view.title}** `{view.id}` — {view.status_text}{stale}{outputs}"


def detail_text(view: BroadcastView) -> str:
    lines = [f"**{view.title}** `{view.id}`", f"Status: {view.status_text}"]
    if view.source:
        lines.append(f"Languages: **{view.source}** → {', '.join(f'**{t}**' for t in view.targets) or 'none'}")
    if view.input_protocol:
        lines.append(f"Input: {view.input_protocol}")
    for output in view.outputs:
        if output.protocol == "hls_pull":
            urls = ", ".join(f"{lang}: <{url}>" for lang, url in output.urls.items()) or ", ".join(output.languages)
            lines.append(f"Output HLS: {urls}")
        else:
            lines.append(f"Output {', '.join(output.languages)} → {output.protocol} `{output.server}`")
    if view.mixing:
        lines.append("Mixing: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in view.mixing.items()))
    where = f"<#{view.announce_channel_id}>" if view.announce_channel_id else "nowhere (set with `/broadcast announce`)"
    lines.append(f"Status changes announced in: {where}")
    return clip("\n".join(lines))


# --- the cog ---------------------------------------------------------------------------------------------
@app_commands.guild_only()
class Broadcast(commands.GroupCog, group_name="broadcast", group_description="Palabra broadcasts of this server"):
    def __init__(self, bot: InterpreterBot) -> None:
        self.bot = bot
        services = bot.services
        if services.broadcasts is None:
            raise ConfigurationError("the broadcast commands need Services.broadcasts (bot.app builds it)")
        self.service: BroadcastService = services.broadcasts
        interval = services.options.broadcast_poll_interval_s
        self._poll_enabled = interval > 0
        self.poller = BroadcastPoller(
            self.service, self.announce, interval_s=interval if interval > 0 else DEFAULT_INTERVAL_S
        )
        super().__init__()

    async def cog_load(self) -> None:
        if self._poll_enabled:
            self.poller.start()

    async def cog_unload(self) -> None:
        await self.poller.stop()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        await require_configure(interaction)
        return True

    async def announce(self, channel_id: int, text: str) -> None:
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        await channel.send(text, allowed_mentions=NO_PINGS)  # type: ignore[union-attr]

    @app_commands.command(
        name="create", description="Create a broadcast: Palabra translates your stream and re-streams it"
    )
    @app_commands.describe(
        title="A name for the broadcast",
        source="Language spoken in the stream (a code such as en)",
        targets="Comma-separated target languages, e.g. es, fr",
        outputs=OUTPUTS_HELP,
        input="How you send the stream to Palabra (default RTMP)",
        announce="Text channel for status changes",
        voices="Voice per language, e.g. es=default_low, fr=default_high",
        delay="Delay of the original under the translation, seconds (0-60)",
        original_volume="Volume of the original, 0-1",
        ducked_volume="Volume of the original while translated speech plays, 0-1",
        ignore_video="Audio only: drop the video",
    )
    @app_commands.choices(input=INPUTS)
    @app_commands.autocomplete(source=source_autocomplete, targets=targets_autocomplete)
    async def create(
        self,
        interaction: discord.Interaction,
        title: str,
        source: str,
        targets: str,
        outputs: str,
        input: str = "rtmp_push",
        announce: discord.TextChannel | None = None,
        voices: str | None = None,
        delay: float | None = None,
        original_volume: float | None = None,
        ducked_volume: float | None = None,
        ignore_video: bool | None = None,
    ) -> None:
        request = parse_create(
            title=title,
            source=source,
            targets=targets,
            input_protocol=input,
            outputs=outputs,
            voices=voices,
            delay_s=delay,
            base_volume=original_volume,
            ducked_volume=ducked_volume,
            ignore_video=ignore_video,
        )
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            created = await self.service.create(
                guild_id=guild_id_of(interaction),
                user_id=interaction.user.id,
                request=request,
                announce_channel_id=announce.id if announce else None,
            )
        except BroadcastRejected as exc:  # the warnings often explain the refusal (an unknown language)
            raise BroadcastRejected(with_warnings(str(exc), request.warnings)) from None
        # The ingest comes first: a long reply is clipped at the end, never through the stream key.
        text = f"✅ Broadcast created.\n{ingest_text(created.ingest)}\n\n{detail_text(created.broadcast)}"
        await reply(interaction, with_warnings(text, created.warnings), ephemeral=True)

    @app_commands.command(name="list", description="This server's broadcasts and their status")
    async def list_(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        views = await self.service.list(guild_id_of(interaction))
        if not views:
            await reply(interaction, "This server has no broadcasts. Create one with `/broadcast create`.")
            return
        await reply(interaction, clip("**Broadcasts of this server**\n" + "\n".join(map(summary_line, views))))

    @app_commands.command(name="show", description="One broadcast in detail")
    @app_commands.describe(
        broadcast="The broadcast (its id)", ingest="Also show the ingest address and stream key, privately"
    )
    @app_commands.autocomplete(broadcast=broadcast_autocomplete)
    async def show(self, interaction: discord.Interaction, broadcast: str, ingest: bool = False) -> None:
        await interaction.response.defer(ephemeral=ingest, thinking=True)
        view, ingest_info = await self.service.show(guild_id_of(interaction), broadcast)
        text = detail_text(view)
        if ingest:
            text = clip(f"{text}\n\n{ingest_text(ingest_info)}")
        await reply(interaction, text, ephemeral=ingest)

    @app_commands.command(name="update", description="Change a broadcast (only the options you give)")
    @app_commands.describe(
        broadcast="The broadcast (its id)",
        title="New name",
        targets="New comma-separated target languages",
        outputs=f"Replaces all outputs: {OUTPUTS_EXAMPLE}",
        voices="Voice per language, e.g. es=default_low",
        delay="Delay of the original, seconds (0-60)",
        original_volume="Volume of the original, 0-1",
        ducked_volume="Volume of the original under translated speech, 0-1",
        ignore_video="Audio only: drop the video",
    )
    @app_commands.autocomplete(broadcast=broadcast_autocomplete, targets=targets_autocomplete)
    async def update(
        self,
        interaction: discord.Interaction,
        broadcast: str,
        title: str | None = None,
        targets: str | None = None,
        outputs: str | None = None,
        voices: str | None = None,
        delay: float | None = None,
        original_volume: float | None = None,
        ducked_volume: float | None = None,
        ignore_video: bool | None = None,
    ) -> None:
        await interaction.response.defer(thinking=True)
        updated = await self.service.update(
            guild_id_of(interaction),
            broadcast,
            title=title,
            targets=targets,
            outputs=outputs,
            voices=voices,
            delay_s=delay,
            base_volume=original_volume,
            ducked_volume=ducked_volume,
            ignore_video=ignore_video,
        )
        await reply(
            interaction, with_warnings(f"✏️ Broadcast updated.\n{detail_text(updated.broadcast)}", updated.warnings)
        )

    @app_commands.command(name="delete", description="Delete a broadcast at Palabra and here")
    @app_commands.describe(broadcast="The broadcast (its id)")
    @app_commands.autocomplete(broadcast=broadcast_autocomplete)
    async def delete(self, interaction: discord.Interaction, broadcast: str) -> None:
        await interaction.response.defer(thinking=True)
        title, existed = await self.service.delete(guild_id_of(interaction), broadcast)
        note = "" if existed else " (it was already gone at Palabra)"
        await reply(interaction, f"🗑️ Broadcast **{title}** deleted{note}.")

    @app_commands.command(name="listen", description="The WebRTC room to listen to a broadcast (private)")
    @app_commands.describe(broadcast="The broadcast (its id)")
    @app_commands.autocomplete(broadcast=broadcast_autocomplete)
    async def listen(self, interaction: discord.Interaction, broadcast: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        info = await self.service.listen(guild_id_of(interaction), broadcast)
        room = f"Room: `{info.room_name}`\n" if info.room_name else ""
        await reply(
            interaction,
            f"🎧 Listen over WebRTC — keep this private:\nURL: `{info.url}`\n{room}Token: ||`{info.token}`||",
            ephemeral=True,
        )

    @app_commands.command(name="announce", description="Where a broadcast's status changes are announced")
    @app_commands.describe(broadcast="The broadcast (its id)", channel="Text channel (leave out to stop announcing)")
    @app_commands.autocomplete(broadcast=broadcast_autocomplete)
    async def announce_channel(
        self, interaction: discord.Interaction, broadcast: str, channel: discord.TextChannel | None = None
    ) -> None:
        channel_id = channel.id if channel else None
        view = await self.service.set_announce_channel(guild_id_of(interaction), broadcast, channel_id)
        where = channel.mention if channel else "nowhere"
        await interaction.response.send_message(
            f"📡 Status changes of **{view.title}** are announced {where}.", allowed_mentions=NO_PINGS
        )


async def setup(bot: InterpreterBot) -> None:
    await bot.add_cog(Broadcast(bot))
