"""`FakeDiscord`: REST + main gateway (one aiohttp server), the voice server (TLS gateway + UDP SFU),
one guild (more with `add_guild`, for isolation tests), several bot accounts and simulated users.
See the package docstring for the API."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from tests.fakes import secrets
from tests.fakes.discord import tls
from tests.fakes.discord.gateway import Gateway, voice_state_for
from tests.fakes.discord.model import (
    BOT_PERMISSIONS,
    EVERYONE_PERMISSIONS,
    MANAGE_GUILD,
    MEMBER_OVERWRITE,
    ROLE_OVERWRITE,
    TEXT,
    VOICE,
    Account,
    Channel,
    Guild,
    Overwrite,
    Role,
    new_token,
    snowflake,
    snowflake_on_shard,
)
from tests.fakes.discord.realism import Realism
from tests.fakes.discord.records import InteractionRecord, StoredMessage
from tests.fakes.discord.rest import Rest
from tests.fakes.discord.users import FakeUser, ensure_opus
from tests.fakes.discord.voice import CLOSE_DISCONNECTED, VoiceServer
from tests.fakes.waiting import wait_until

log = logging.getLogger(__name__)

DEFAULT_TOKENS = (secrets.DISCORD_TOKEN, *secrets.SPEAKER_TOKENS)


class FakeDiscord:
    """A fake Discord on 127.0.0.1 for unmodified discord.py clients. Use `async with FakeDiscord() as fake:`."""

    def __init__(
        self,
        *,
        bot_tokens: Iterable[str] = DEFAULT_TOKENS,
        voice_channels: Iterable[str] = ("Voice A", "Voice B", "Voice C"),
        text_channels: Iterable[str] = ("general",),
        late_speaking_packets: int = 0,
        relay_extension: bool = True,
        realism: int | None = None,
        udp_idle_timeout_s: float | None = None,
    ) -> None:
        self.realism = Realism(realism)
        guild_id = snowflake()
        self.accounts: dict[int, Account] = {}
        self.bots: list[Account] = []
        for index, token in enumerate(bot_tokens):
            name = "Interpreter" if index == 0 else f"Speaker {index}"
            self.bots.append(self._new_account(name, bot=True, token=token))
        self.guild = Guild(guild_id, "Fake Guild", owner_id=0)
        self.guild.roles[guild_id] = Role(guild_id, "@everyone", EVERYONE_PERMISSIONS, 0)
        self.bot_role = Role(snowflake(), "Bots", BOT_PERMISSIONS, 1)
        self.admin_role = Role(snowflake(), "Admins", EVERYONE_PERMISSIONS | MANAGE_GUILD, 2)
        for role in (self.bot_role, self.admin_role):
            self.guild.roles[role.id] = role
        for name in text_channels:
            self.guild.add_channel(name, TEXT)
        for name in voice_channels:
            self.guild.add_channel(name, VOICE)
        owner = self._new_account("Owner", bot=False)
        self.guild.owner_id = owner.id
        for account in [*self.bots, owner]:
            self._add_member(account)
        for bot in self.bots:
            bot.role_ids.append(self.bot_role.id)
        self.owner = owner
        self.guilds: list[Guild] = [self.guild]  # the first is `self.guild`; `add_guild` appends
        self.users: dict[int, FakeUser] = {}
        self.rest = Rest(self)
        self.gateway = Gateway(self)
        self.voice = VoiceServer(
            tls.server_context(),
            late_speaking_packets=late_speaking_packets,
            relay_extension=relay_extension,
            realism=self.realism,
            udp_idle_timeout_s=udp_idle_timeout_s,
        )
        self.port = 0
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        tls.trust_test_ca()
        ensure_opus()
        app = web.Application()
        self.gateway.routes(app)
        self.rest.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        await self.voice.start()

    async def stop(self) -> None:
        for user in self.users.values():
            user._close()
        await self.voice.stop()
        await self.gateway.close_all()
        if self._runner:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @staticmethod
    def client_kwargs() -> dict:
        """Keyword arguments for a discord.Client used against the fake (see clients.client_kwargs)."""
        from tests.fakes.discord.clients import client_kwargs

        return client_kwargs()

    def point_discord_py(self) -> None:
        """Point discord.py (process-wide) at this fake, through the product's own adapter."""
        from bot.voice.adapter import point_discord_py_at

        point_discord_py_at(self.api_base, self.gateway_url)

    # -- world -----------------------------------------------------------------------------------------

    def _new_account(self, name: str, *, bot: bool, token: str | None = None) -> Account:
        account = Account(snowflake(), name, bot, token=token, application_id=snowflake() if bot else None)
        self.accounts[account.id] = account
        return account

    def _add_member(self, account: Account) -> None:
        self.guild.members[account.id] = account

    def account_by_token(self, token: str) -> Account | None:
        for account in self.bots:
            if account.token == token:
                return account
        return None

    def account_by_application(self, application_id: int) -> Account:
        for account in self.bots:
            if account.application_id == application_id:
                return account
        raise KeyError(f"no bot with application id {application_id}")

    def bot(self, token: str = secrets.DISCORD_TOKEN) -> Account:
        account = self.account_by_token(token)
        if account is None:
            raise KeyError("no bot account with that token")
        return account

    def channel(self, name: str, guild: Guild | None = None) -> Channel:
        return (guild or self.guild).channel_named(name)

    def guilds_of(self, account: Account) -> list[Guild]:
        """The guilds an account is a member of (a bot gets READY + GUILD_CREATE for these only)."""
        return [g for g in self.guilds if account.id in g.members]

    def guild_of_channel(self, channel_id: int) -> Guild | None:
        return next((g for g in self.guilds if channel_id in g.channels), None)

    async def add_guild(
        self,
        name: str,
        *,
        text_channels: Iterable[str] = ("general",),
        voice_channels: Iterable[str] = (),
        shard: tuple[int, int] | None = None,
    ) -> Guild:
        """Another guild with the same bots, owner and roles (no voice channels unless asked for). With
        `shard=(id, count)` its id is one Discord puts on that shard. Connected bots on its shard get
        GUILD_CREATE for it."""
        guild = Guild(snowflake_on_shard(*shard) if shard else snowflake(), name, owner_id=self.owner.id)
        guild.roles[guild.id] = Role(guild.id, "@everyone", EVERYONE_PERMISSIONS, 0)
        for role in (self.bot_role, self.admin_role):
            guild.roles[role.id] = role
        for channel_name in text_channels:
            guild.add_channel(channel_name, TEXT)
        for channel_name in voice_channels:
            guild.add_channel(channel_name, VOICE)
        for account in [*self.bots, self.owner]:
            guild.members[account.id] = account
        self.guilds.append(guild)
        await self.gateway.broadcast("GUILD_CREATE", guild.payload())
        return guild

    def add_member(self, guild: Guild, user: Account | FakeUser) -> None:
        """Make an existing account a member of another guild (no gateway event)."""
        account = user.account if isinstance(user, FakeUser) else user
        guild.members[account.id] = account

    async def add_user(
        self, name: str, *, admin: bool = False, bot: bool = False, guild: Guild | None = None
    ) -> FakeUser:
        """A simulated member of `guild` (default: the first; GUILD_MEMBER_ADD to the bots); `admin` gives
        Manage Server; `bot` makes it another application's bot (a music bot, say) that speaks like any
        client. The user joins voice channels of that guild by name."""
        guild = guild or self.guild
        account = self._new_account(name, bot=bot)
        if admin:
            account.role_ids.append(self.admin_role.id)
        guild.members[account.id] = account
        user = FakeUser(self, account, guild=guild)
        self.users[account.id] = user
        member = guild.member_payload(account)
        await self.gateway.broadcast("GUILD_MEMBER_ADD", {**member, "guild_id": str(guild.id)})
        return user

    async def add_channel(self, name: str, type: int, *, parent: Channel | None = None) -> Channel:
        """A new channel of the first guild (CHANNEL_CREATE to the bots), e.g. a category (type 4)."""
        channel = self.guild.add_channel(name, type, parent.id if parent else None)
        await self.gateway.broadcast("CHANNEL_CREATE", channel.payload(self.guild.id))
        return channel

    async def set_overwrite(
        self, channel: Channel | str, target: Account | FakeUser | Role, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Set a channel's permission overwrite for a role or a member, as an admin would in the channel's
        settings (CHANNEL_UPDATE to the bots). allow = deny = 0 removes it."""
        if isinstance(channel, str):
            channel = self.channel(channel)
        if isinstance(target, Role):
            target_id, kind = target.id, ROLE_OVERWRITE
        else:
            target_id, kind = (target.account if isinstance(target, FakeUser) else target).id, MEMBER_OVERWRITE
        if allow or deny:
            channel.overwrites[target_id] = Overwrite(target_id, kind, allow, deny)
        else:
            channel.overwrites.pop(target_id, None)
        await self.gateway.broadcast("CHANNEL_UPDATE", channel.payload(self.guild.id))

    def remove_member(self, account: Account) -> None:
        """Take an account out of the first guild before its client connects (a bot never invited there)."""
        self.guild.members.pop(account.id, None)

    def voice_members(self, channel_id: int) -> set[int]:
        guild = self.guild_of_channel(channel_id) or self.guild
        return {s.user_id for s in guild.voice_states.values() if s.channel_id == channel_id}

    def guild_by_id(self, guild_id: int) -> Guild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    # -- voice state -----------------------------------------------------------------------------------

    async def voice_state_update(self, account: Account, data: dict) -> None:
        """op 4 from a bot (or a simulated user joining/leaving), in the guild it names."""
        guild = self.guild_by_id(int(data.get("guild_id") or self.guild.id))
        if guild is None:
            log.warning("op 4 for %s names no guild (%s); ignored", account.name, data.get("guild_id"))
            return
        channel_id = int(data["channel_id"]) if data.get("channel_id") else None
        gateway_session = self.gateway.session_of(account.id, guild.id)
        session_id = gateway_session.session_id if gateway_session else f"user-{account.id}"
        state = voice_state_for(session_id, account.id, channel_id, data)
        if channel_id is None:
            guild.voice_states.pop(account.id, None)
            await self.voice.end_session(guild.id, account.id, close_code=None)
            await self.gateway.broadcast("VOICE_STATE_UPDATE", guild.voice_state_payload(state))
            return
        if channel_id not in guild.channels or guild.channels[channel_id].type != VOICE:
            log.warning("op 4 for %s names no voice channel (%s); ignored", account.name, channel_id)
            return
        guild.voice_states[account.id] = state
        token = new_token()
        same_channel = self.voice.expect(guild.id, account.id, session_id, channel_id, token)
        server_update = {"token": token, "guild_id": str(guild.id), "endpoint": self.voice.endpoint}
        state_update = guild.voice_state_payload(state)
        if gateway_session is None:
            await self.gateway.broadcast("VOICE_STATE_UPDATE", state_update)
        elif same_channel:
            # A connected bot re-sending op 4 (discord.py does so to resume): Discord gives no order;
            # discord.py 2.7.1's resume completes only if the server update comes first.
            if self.realism.server_update_first():
                await gateway_session.dispatch("VOICE_SERVER_UPDATE", server_update)
                await self.gateway.broadcast("VOICE_STATE_UPDATE", state_update)
            else:
                await self.gateway.broadcast("VOICE_STATE_UPDATE", state_update)
                await gateway_session.dispatch("VOICE_SERVER_UPDATE", server_update)
        else:
            # A join or a move: the state update first, so discord.py knows the new channel.
            await self.gateway.broadcast("VOICE_STATE_UPDATE", state_update)
            await gateway_session.dispatch("VOICE_SERVER_UPDATE", server_update)

    async def move_member(self, user_id: int, channel: int | str) -> None:
        """Move a member to another voice channel, as a moderator would."""
        channel_id = channel if isinstance(channel, int) else self.channel(channel).id
        if user_id in self.users:
            await self.users[user_id].join(channel_id)
            return
        guild = self.guild_of_channel(channel_id) or self.guild
        current = guild.voice_states.get(user_id)
        data = {"guild_id": str(guild.id), "channel_id": str(channel_id)}
        if current:
            data.update(self_mute=current.self_mute, self_deaf=current.self_deaf)
        await self.voice_state_update(self.accounts[user_id], data)

    async def disconnect_member(self, user_id: int, guild: Guild | None = None) -> None:
        """Kick a member from voice in `guild` (default: the first): VOICE_STATE_UPDATE with no channel,
        voice socket closed 4014."""
        if user_id in self.users:
            await self.users[user_id].leave()
            return
        guild = guild or self.guild
        state = guild.voice_states.pop(user_id, None)
        if state is None:
            raise KeyError(f"user {user_id} is not in voice")
        state.channel_id = None
        await self.gateway.broadcast("VOICE_STATE_UPDATE", guild.voice_state_payload(state))
        await self.voice.end_session(guild.id, user_id, close_code=CLOSE_DISCONNECTED)

    async def drop_gateway(self, bot: Account, code: int = 4000) -> None:
        """Close a bot's main gateway socket (4000 = unknown error: discord.py resumes with op 6)."""
        session = self.gateway.session_of(bot.id)
        if session is None or session.ws is None:
            raise KeyError(f"{bot.name} has no gateway connection")
        await session.ws.close(code=code)

    async def close_voice(self, user_id: int, code: int, *, resume: str | None = None) -> None:
        """Close a bot's voice WebSocket with `code` (4015: it resumes, answered as `resume` says, see
        `realism.RESUME_*`; 4006: it reconnects)."""
        await self.voice.close_socket(user_id, code, resume=resume)

    async def change_voice_server(self, user_id: int) -> str:
        """Move a connected bot's call to another voice server, as Discord does when it reallocates
        one: VOICE_SERVER_UPDATE with a new endpoint and token while connected (discord.py closes its
        voice websocket and identifies on the new endpoint; UDP goes to the new server's socket).
        Returns the new endpoint."""
        session = self.voice.session_of(user_id)
        gateway_session = self.gateway.sessions.get(user_id)
        if session is None or gateway_session is None:
            raise KeyError(f"bot {user_id} is not in voice")
        index = await self.voice.add_server()
        token = new_token()
        self.voice.move_to_server(session.guild_id, user_id, index, token)
        endpoint = self.voice.endpoint_of(index)
        await gateway_session.dispatch(
            "VOICE_SERVER_UPDATE", {"token": token, "guild_id": str(session.guild_id), "endpoint": endpoint}
        )
        return endpoint

    # -- events and interactions ----------------------------------------------------------------------

    async def dispatch(self, bot: Account | int, event: str, data: object) -> None:
        """Send any gateway event to one bot: to its session on the shard of the payload's guild."""
        user_id = bot.id if isinstance(bot, Account) else bot
        guild_id = int(data["guild_id"]) if isinstance(data, dict) and data.get("guild_id") else None
        session = self.gateway.session_of(user_id, guild_id)
        if session is None:
            where = f" on the shard of guild {guild_id}" if guild_id else ""
            raise KeyError(f"bot {user_id} has no gateway session{where}")
        await session.dispatch(event, data)

    def interaction_payload(
        self,
        *,
        bot: Account,
        user: Account | FakeUser,
        channel: Channel | int | str,
        name: str,
        options: dict | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        locale: str = "en-US",
        guild: Guild | None = None,
        focused: str | None = None,
    ) -> dict:
        """A real application-command INTERACTION_CREATE payload (type 2), in `guild` (default: the
        first); with `focused` naming the option being typed, an autocomplete one (type 4; the bot
        answers with callback type 8 and choices)."""
        account = user.account if isinstance(user, FakeUser) else user
        guild = guild or self.guild
        if isinstance(channel, str):
            channel = guild.channel_named(channel)
        elif isinstance(channel, int):
            channel = guild.channels[channel]
        resolved: dict = {}
        built = [self._option(key, value, resolved, guild) for key, value in (options or {}).items()]
        for option in built:
            if option["name"] == focused:
                option.update(type=3, value=str(option["value"]), focused=True)
        if subcommand:
            built = [{"name": subcommand, "type": 1, "options": built}]
        if group:
            built = [{"name": group, "type": 2, "options": built}]
        data = {
            "id": str(self._command_id(bot, name, guild)),
            "name": name,
            "type": 1,
            "options": built,
            "guild_id": str(guild.id),
        }
        if resolved:
            data["resolved"] = resolved
        bot_permissions = guild.channel_permissions_of(bot, channel) if bot.id in guild.members else 0
        return {
            "id": str(snowflake()),
            "application_id": str(bot.application_id),
            "type": 4 if focused else 2,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": channel.payload(guild.id),
            "member": guild.member_payload(account, with_permissions=True),
            "token": f"interaction-token-{snowflake()}",
            "version": 1,
            "app_permissions": str(bot_permissions),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 8 * 1024 * 1024,
        }

    def _option(self, key: str, value, resolved: dict, guild: Guild | None = None) -> dict:
        guild = guild or self.guild
        if isinstance(value, bool):
            return {"name": key, "type": 5, "value": value}
        if isinstance(value, int):
            return {"name": key, "type": 4, "value": value}
        if isinstance(value, float):
            return {"name": key, "type": 10, "value": value}
        if isinstance(value, Channel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                **value.payload(guild.id),
                "permissions": str(EVERYONE_PERMISSIONS),
            }
            return {"name": key, "type": 7, "value": str(value.id)}
        if isinstance(value, (Account, FakeUser)):
            account = value.account if isinstance(value, FakeUser) else value
            resolved.setdefault("users", {})[str(account.id)] = account.user_payload()
            member = guild.member_payload(account, with_permissions=True)
            member.pop("user")
            resolved.setdefault("members", {})[str(account.id)] = member
            return {"name": key, "type": 6, "value": str(account.id)}
        return {"name": key, "type": 3, "value": str(value)}

    def _command_id(self, bot: Account, name: str, guild: Guild | None = None) -> int:
        guild = guild or self.guild
        for key in ((bot.application_id, guild.id), (bot.application_id, None)):
            for command in self.rest.commands.get(key, []):
                if command["name"] == name:
                    return int(command["id"])
        return snowflake()

    async def slash_command(
        self, bot: Account, user: Account | FakeUser, channel, name: str, **kwargs
    ) -> InteractionRecord:
        """Dispatch an application command to `bot`; returns the record its answers land in."""
        payload = self.interaction_payload(bot=bot, user=user, channel=channel, name=name, **kwargs)
        record = InteractionRecord(
            int(payload["id"]), payload["token"], bot.application_id, int(payload["channel_id"]), payload
        )
        self.rest.interactions[record.id] = record
        await self.dispatch(bot, "INTERACTION_CREATE", payload)
        return record

    def interaction_answered(self, record: InteractionRecord) -> None:
        log.debug("interaction %s answered with type %s", record.id, record.response_type)

    async def wait_for_response(self, record: InteractionRecord, timeout: float = 5.0) -> InteractionRecord:
        """Until the bot has called the interaction callback (raises TimeoutError otherwise)."""
        name = record.payload["data"]["name"]
        await wait_until(lambda: record.responses, timeout, what=f"a response to interaction /{name}")
        return record

    # -- stored REST state ------------------------------------------------------------------------------

    def messages(self, channel: int | str | Channel, *, include_deleted: bool = False) -> list[StoredMessage]:
        if isinstance(channel, Channel):
            channel = channel.id
        channel_id = channel if isinstance(channel, int) else self.channel(channel).id
        return [m for m in self.rest.messages.get(channel_id, []) if include_deleted or not m.deleted]

    def commands(self, bot: Account, guild: bool = False) -> list[dict]:
        return self.rest.commands.get((bot.application_id, self.guild.id if guild else None), [])

    @property
    def rate_limits(self):
        return self.rest.rate_limits
