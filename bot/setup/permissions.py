"""The Discord permissions each bot account needs, where, and why: the one list `python -m bot invite`
asks for and `/setup check` verifies.

Derived from what the code does: the listener joins the source channel, hears it and, in same-channel
mode, speaks there; it posts the consent notice in the voice channel's chat; transcripts go through a
channel webhook (Manage Webhooks) or, without one, as the bot (Send Messages; Send Messages in Threads
when the transcript channel is a thread); the summary attaches `.txt` and `.srt` (Attach Files);
`/setup create-channels` creates voice channels as the bot (Manage Channels). Nothing reads message
history, adds reactions, creates threads or sends embeds outside interaction replies (which need no
channel permission), so those are not asked for. Speaker bots only join a sibling channel and speak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord


@dataclass(frozen=True)
class Need:
    """One permission: discord.py's flag name, the name Discord's settings show, and why we need it."""

    flag: str
    label: str
    why: str


VIEW_CHANNEL = Need("view_channel", "View Channel", "to see the channel")
CONNECT = Need("connect", "Connect", "to join the voice channel")
SPEAK = Need("speak", "Speak", "to play the translation")
SEND_MESSAGES = Need("send_messages", "Send Messages", "to post notices and transcripts")
SEND_IN_THREADS = Need("send_messages_in_threads", "Send Messages in Threads", "to post transcripts in a thread")
ATTACH_FILES = Need("attach_files", "Attach Files", "to attach the session's .txt and .srt transcript")
MANAGE_WEBHOOKS = Need("manage_webhooks", "Manage Webhooks", "to post transcripts under each speaker's name")
MANAGE_CHANNELS = Need("manage_channels", "Manage Channels", "for /setup create-channels")

# The listener in the voice channel it interprets: hears, plays one language in same-channel mode, and
# posts the consent notice in the channel's chat.
MAIN_IN_SOURCE = (VIEW_CHANNEL, CONNECT, SPEAK, Need("send_messages", "Send Messages", "to post the consent notice"))
MAIN_IN_TRANSCRIPTS = (VIEW_CHANNEL, SEND_MESSAGES, ATTACH_FILES, MANAGE_WEBHOOKS)
MAIN_IN_TRANSCRIPT_THREAD = (VIEW_CHANNEL, SEND_IN_THREADS, ATTACH_FILES)  # + Manage Webhooks on the parent
MAIN_IN_SIBLING = (VIEW_CHANNEL,)  # speaker bots play there; the listener only has to see the channel
MAIN_FOR_NEW_CHANNELS = (MANAGE_CHANNELS,)
SPEAKER_IN_SIBLING = (VIEW_CHANNEL, CONNECT, SPEAK)

MAIN_BOT_NEEDS = (
    *MAIN_IN_SOURCE,
    *MAIN_IN_TRANSCRIPTS,
    *MAIN_IN_TRANSCRIPT_THREAD,
    *MAIN_IN_SIBLING,
    *MAIN_FOR_NEW_CHANNELS,
)
SPEAKER_BOT_NEEDS = SPEAKER_IN_SIBLING

MAIN_BOT_SCOPES = ("bot", "applications.commands")
SPEAKER_BOT_SCOPES = ("bot",)


def permissions_of(needs: Iterable[Need]) -> discord.Permissions:
    return discord.Permissions(**{need.flag: True for need in needs})


def labels(needs: Iterable[Need]) -> list[str]:
    """Each permission's name once, in the order given."""
    return list(dict.fromkeys(need.label for need in needs))


def missing(granted: discord.Permissions, needs: Iterable[Need]) -> list[Need]:
    """The needs `granted` lacks, each flag once."""
    seen: set[str] = set()
    lacking = []
    for need in needs:
        if need.flag not in seen and not getattr(granted, need.flag):
            lacking.append(need)
        seen.add(need.flag)
    return lacking


MAIN_BOT_PERMISSIONS = permissions_of(MAIN_BOT_NEEDS)
SPEAKER_BOT_PERMISSIONS = permissions_of(SPEAKER_BOT_NEEDS)
