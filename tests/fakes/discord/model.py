"""The fake's world: accounts, one guild with its channels, roles, members and voice states, and the
JSON payloads Discord would send for them (only the fields discord.py 2.7.1 reads)."""

from __future__ import annotations

import itertools
import secrets as random_secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

TEXT = 0
VOICE = 2
CATEGORY = 4

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
CONNECT = 1 << 20
SPEAK = 1 << 21
MOVE_MEMBERS = 1 << 24
USE_VAD = 1 << 25
MANAGE_ROLES = 1 << 28
MANAGE_WEBHOOKS = 1 << 29
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | CONNECT
    | SPEAK
    | USE_VAD
    | USE_APPLICATION_COMMANDS
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_WEBHOOKS | MOVE_MEMBERS | MANAGE_CHANNELS | SEND_MESSAGES_IN_THREADS
ALL_PERMISSIONS = (1 << 47) - 1

_ids = itertools.count(1_200_000_000_000_000_000)


def snowflake() -> int:
    return next(_ids)


def snowflake_on_shard(shard_id: int, shard_count: int) -> int:
    """A fresh id that Discord's formula, `(id >> 22) % shard_count`, puts on `shard_id`: the time bits
    of a fresh snowflake are moved forward to the next value on that shard (sequential ids stay far below)."""
    base = snowflake()
    high = base >> 22
    high += (shard_id - high) % shard_count
    return (high << 22) | (base & ((1 << 22) - 1))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Account:
    """A user: a bot account (with a token and its own application) or a simulated human."""

    id: int
    name: str
    bot: bool
    token: str | None = None
    application_id: int | None = None
    role_ids: list[int] = field(default_factory=list)

    def user_payload(self) -> dict:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "flags": 0,
            "public_flags": 0,
        }


ROLE_OVERWRITE, MEMBER_OVERWRITE = 0, 1


@dataclass
class Overwrite:
    """A channel permission overwrite for a role (type 0) or a member (type 1)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class Channel:
    id: int
    name: str
    type: int
    position: int
    parent_id: int | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)

    def payload(self, guild_id: int) -> dict:
        data = {
            "id": str(self.id),
            "guild_id": str(guild_id),
            "name": self.name,
            "type": self.type,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "nsfw": False,
            "flags": 0,
        }
        if self.type == VOICE:
            data.update(bitrate=64000, user_limit=0, rtc_region=None, last_message_id=None)
        elif self.type == TEXT:
            data.update(topic=None, last_message_id=None, rate_limit_per_user=0)
        return data


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int

    def payload(self) -> dict:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class VoiceState:
    user_id: int
    channel_id: int | None
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    channels: dict[int, Channel] = field(default_factory=dict)
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Account] = field(default_factory=dict)
    voice_states: dict[int, VoiceState] = field(default_factory=dict)
    joined_at: str = field(default_factory=now_iso)

    def add_channel(self, name: str, type: int, parent_id: int | None = None) -> Channel:
        channel = Channel(snowflake(), name, type, len(self.channels), parent_id)
        self.channels[channel.id] = channel
        return channel

    def channel_named(self, name: str) -> Channel:
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise KeyError(f"no channel named {name!r}; have {[c.name for c in self.channels.values()]}")

    def permissions_of(self, account: Account) -> int:
        if account.id == self.owner_id:
            return ALL_PERMISSIONS
        value = self.roles[self.id].permissions
        for role_id in account.role_ids:
            value |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def channel_permissions_of(self, account: Account, channel: Channel) -> int:
        """Discord's order: the base, then @everyone's overwrite, the member's roles' overwrites
        (all denies, then all allows), then the member's own; no View Channel means nothing."""
        value = self.permissions_of(account)
        if value & ADMINISTRATOR or account.id == self.owner_id:
            return ALL_PERMISSIONS
        everyone = channel.overwrites.get(self.id)
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        roles = [channel.overwrites[r] for r in account.role_ids if r in channel.overwrites]
        deny = allow = 0
        for overwrite in roles:
            deny, allow = deny | overwrite.deny, allow | overwrite.allow
        value = (value & ~deny) | allow
        member = channel.overwrites.get(account.id)
        if member is not None and member.type == MEMBER_OVERWRITE:
            value = (value & ~member.deny) | member.allow
        return value if value & VIEW_CHANNEL else 0

    def member_payload(self, account: Account, *, with_permissions: bool = False) -> dict:
        data = {
            "user": account.user_payload(),
            "nick": None,
            "avatar": None,
            "roles": [str(role) for role in account.role_ids],
            "joined_at": self.joined_at,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }
        if with_permissions:
            data["permissions"] = str(self.permissions_of(account))
        return data

    def voice_state_payload(self, state: VoiceState) -> dict:
        return {
            "guild_id": str(self.id),
            "channel_id": str(state.channel_id) if state.channel_id else None,
            "user_id": str(state.user_id),
            "member": self.member_payload(self.members[state.user_id]),
            "session_id": state.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": state.self_deaf,
            "self_mute": state.self_mute,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }

    def payload(self) -> dict:
        """GUILD_CREATE data."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "system_channel_flags": 0,
            "emojis": [],
            "stickers": [],
            "roles": [role.payload() for role in self.roles.values()],
            "channels": [channel.payload(self.id) for channel in self.channels.values()],
            "threads": [],
            "members": [self.member_payload(member) for member in self.members.values()],
            "voice_states": [
                {k: v for k, v in self.voice_state_payload(state).items() if k != "member"}
                for state in self.voice_states.values()
                if state.channel_id
            ],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "member_count": len(self.members),
            "large": False,
            "unavailable": False,
            "joined_at": self.joined_at,
        }


def new_token() -> str:
    return random_secrets.token_hex(16)
