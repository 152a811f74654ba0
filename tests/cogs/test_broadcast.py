"""/broadcast through the fake Discord (real INTERACTION_CREATE payloads to an unmodified discord.py
InterpreterBot) and the Palabra emulator, on both databases: the full lifecycle with a status change
announced, a second guild that can neither see nor touch the first's broadcast, bad input refused
with clear ephemeral messages, and stream keys never in a public message or a log line."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import pytest

from bot.client import InterpreterBot
from bot.services import Services
from tests.fakes import secrets
from tests.fakes.broadcasts import app_credentials_emulator, broadcast_services, set_status
from tests.fakes.discord.clients import running_clients
from tests.fakes.discord.model import Guild
from tests.fakes.discord.rest import InteractionRecord
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.waiting import wait_until

EPHEMERAL = 64
KEY = secrets.STREAM_KEY
OUTPUTS = f"es=rtmp://live.example.com/app|{KEY}; hls=original,es"


@dataclass
class World:
    fake: FakeDiscord
    client: InterpreterBot
    services: Services
    second: Guild

    async def run(self, user, subcommand: str, *, guild: Guild | None = None, **options) -> InteractionRecord:
        """`/broadcast <subcommand> options…` as `user` in #general of `guild`; waits for the final answer."""
        record = await self.fake.slash_command(
            self.fake.bot(), user, "general", "broadcast", subcommand=subcommand, options=options, guild=guild
        )
        await self.fake.wait_for_response(record, 10)
        if record.response_type == 5:  # deferred: the answer is the followup
            await wait_until(lambda: record.followups)
        return record

    async def complete(
        self, user, subcommand: str, focused: str, *, guild: Guild | None = None, **options
    ) -> list[dict]:
        """The choices the bot offers while `user` types option `focused` (an autocomplete interaction)."""
        record = await self.fake.slash_command(
            self.fake.bot(),
            user,
            "general",
            "broadcast",
            subcommand=subcommand,
            options=options,
            guild=guild,
            focused=focused,
        )
        await self.fake.wait_for_response(record, 10)
        assert record.response_type == 8
        return record.responses[0]["data"]["choices"]

    def poller(self):
        return self.client.get_cog("Broadcast").poller


def answer(record: InteractionRecord) -> tuple[str, bool]:
    """(text, ephemeral) of what the user finally saw."""
    if record.response_type == 5:
        message = record.followups[-1]
        return message.content, bool(message.flags & EPHEMERAL)
    return record.original.content, record.ephemeral


def public_texts(fake: FakeDiscord) -> list[str]:
    """Every stored message anyone can see, with its edits."""
    texts = []
    for messages in fake.rest.messages.values():
        for message in messages:
            if not message.flags & EPHEMERAL:
                texts += [str(message.data.get("content")), str(message.data.get("embeds"))]
                texts += [str(edit) for edit in message.edits]
    return texts


@pytest.fixture(autouse=True)
def production_gateway_logging():
    """`bot.logs.setup_logging` keeps discord.gateway at INFO or above in every configuration, because
    at DEBUG it logs whole gateway payloads (a typed stream key included); the tests run the same way."""
    logger = logging.getLogger("discord.gateway")
    old = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(old)


@pytest.fixture
async def emulator():
    async with app_credentials_emulator() as running:
        yield running


@contextlib.asynccontextmanager
async def running_world(database_url: str, emulator_url: str, poll_interval_s: float = 0):
    async with (
        broadcast_services(database_url, emulator_url, broadcast_poll_interval_s=poll_interval_s) as services,
        FakeDiscord(text_channels=("general", "broadcast-status")) as fake,
    ):
        second = await fake.add_guild("Second Guild")
        factory = lambda: InterpreterBot(services, guild_ready_timeout=0.1)  # noqa: E731
        async with running_clients(fake, [secrets.DISCORD_TOKEN], factory=factory) as (client,):
            await wait_until(lambda: fake.commands(fake.bot()) and len(client.guilds) == 2)
            yield World(fake, client, services, second)


@pytest.fixture
async def world(isolated_url, emulator):
    async with running_world(isolated_url, emulator.base_url) as built:
        yield built


@pytest.fixture
async def sqlite_world(tmp_path, emulator):
    async with running_world(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", emulator.base_url) as built:
        yield built


async def create(world: World, user, **changes) -> InteractionRecord:
    options = dict(title="Friday show", source="en", targets="es", outputs=OUTPUTS)
    return await world.run(user, "create", **{**options, **changes})


async def test_full_lifecycle(world, emulator, no_secret_in_logs):
    fake, admin = world.fake, world.fake.owner
    status_channel = fake.channel("broadcast-status")

    record = await create(world, admin, announce=status_channel, delay=2.5, input="srt_push")
    text, private = answer(record)
    assert private, "the ingest must only reach the caller"
    [broadcast_id] = list(emulator.state.broadcasts)
    ingest = emulator.state.broadcasts[broadcast_id]["input"]
    assert "✅ Broadcast created." in text and broadcast_id in text
    assert f"Server: `{ingest['server']}`" in text and ingest["server"].startswith("srt://")
    assert f"Stream key: ||`{ingest['stream_key']}`||" in text
    assert "Output es → rtmp_push `rtmp://live.example.com/app`" in text and KEY not in text
    assert emulator.state.broadcasts[broadcast_id]["original_delay_seconds"] == 2.5

    text, private = answer(await world.run(admin, "list"))
    assert not private and "**Friday show**" in text and broadcast_id in text and "Waiting for an input stream" in text

    text, private = answer(await world.run(admin, "show", broadcast=broadcast_id[:8]))
    assert not private and "Languages: **en** → **es**" in text and "Input: srt_push" in text
    assert f"announced in: <#{status_channel.id}>" in text and ingest["stream_key"] not in text
    text, private = answer(await world.run(admin, "show", broadcast=broadcast_id, ingest=True))
    assert private and f"Stream key: ||`{ingest['stream_key']}`||" in text

    await set_status(emulator, broadcast_id, "streaming")
    await world.poller().poll_once()
    announced = [m.content for m in fake.messages(status_channel)]
    assert announced == [
        f"📡 Broadcast **Friday show** (`{broadcast_id[:8]}`): 🔴 Streaming — input received, "
        "translating and re-streaming to the outputs"
    ]
    await set_status(emulator, broadcast_id, "error", "input has no audio track")
    await world.poller().poll_once()
    await world.poller().poll_once()  # no change, no second announcement
    assert [m.content for m in fake.messages(status_channel)][1:] == [
        f"📡 Broadcast **Friday show** (`{broadcast_id[:8]}`): ⚠️ Error — Palabra could not receive or process "
        "the input: input has no audio track"
    ]

    text, private = answer(
        await world.run(
            admin,
            "update",
            broadcast=broadcast_id,
            title="Saturday show",
            targets="es, fr",
            outputs=f"fr=rtmp://fr.example.com/app|{KEY}; hls=fr",
        )
    )
    assert not private and "✏️ Broadcast updated." in text and "**Saturday show**" in text and "**fr**" in text
    assert emulator.state.broadcasts[broadcast_id]["outputs"][0]["server"] == "rtmp://fr.example.com/app"

    text, private = answer(await world.run(admin, "listen", broadcast=broadcast_id))
    assert private and "/livekit" in text and "Token: ||`" in text
    token = text.split("Token: ||`")[1].split("`")[0]

    text, private = answer(await world.run(admin, "announce", broadcast=broadcast_id))
    assert not private and "announced nowhere" in text

    text, private = answer(await world.run(admin, "delete", broadcast=broadcast_id))
    assert not private and text == "🗑️ Broadcast **Saturday show** deleted."
    assert emulator.state.broadcasts == {}
    text, _ = answer(await world.run(admin, "list"))
    assert text == "This server has no broadcasts. Create one with `/broadcast create`."

    # Secrets: in private replies only, never in anything public, never in a log line.
    for secret in (KEY, ingest["stream_key"], token):
        assert not any(secret in shown for shown in public_texts(fake))
        assert secret not in no_secret_in_logs.getvalue()
    assert "created broadcast" in no_secret_in_logs.getvalue()  # the log was recording all along


async def test_second_guild_can_neither_see_nor_touch(world, emulator):
    fake, admin = world.fake, world.fake.owner
    await create(world, admin, announce=fake.channel("broadcast-status"))
    [broadcast_id] = list(emulator.state.broadcasts)
    text, _ = answer(await world.run(admin, "list", guild=world.second))
    assert text == "This server has no broadcasts. Create one with `/broadcast create`."
    attempts = [
        ("show", {}),
        ("show", {"ingest": True}),
        ("update", {"title": "hijacked"}),
        ("listen", {}),
        ("announce", {}),
        ("delete", {}),
    ]
    for subcommand, options in attempts:
        text, private = answer(
            await world.run(admin, subcommand, guild=world.second, broadcast=broadcast_id, **options)
        )
        assert private and f"this server has no broadcast '{broadcast_id}'" in text, (subcommand, text)
    record = emulator.state.broadcasts[broadcast_id]
    assert record["title"] == "Friday show"
    # The second guild's own broadcast lives beside it; each lists only its own.
    await create(world, admin, guild=world.second, title="Second's show")
    text, _ = answer(await world.run(admin, "list", guild=world.second))
    assert "Second's show" in text and broadcast_id not in text
    text, _ = answer(await world.run(admin, "list"))
    assert "Friday show" in text and "Second's show" not in text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"outputs": f"es=rtmp//live.example.com/app|{KEY}"}, "is not a valid server URL; use rtmp://host[:port]/app"),
        ({"outputs": f"es=srt://relay.example.com|{KEY}"}, "an SRT server is srt://host:port"),
        ({"targets": "es, 42"}, "'42' is not a language code"),
        ({"outputs": "es=rtmp://live.example.com/app"}, "output es: the stream key is missing"),
        ({"outputs": ";".join(f"es=rtmp://h{i}.example.com/app|{KEY}" for i in range(11))}, "11 outputs; at most 10"),
        ({"delay": 90.0}, "delay must be from 0 to 60 seconds"),
        (
            {"targets": "es, xx-yy", "outputs": f"xx-yy=rtmp://h.example.com/app|{KEY}"},
            "Palabra refused to create the broadcast",
        ),
    ],
)
async def test_bad_input_is_refused_privately(sqlite_world, emulator, changes, expected):
    text, private = answer(await create(sqlite_world, sqlite_world.fake.owner, **changes))
    assert private and expected in text, text
    assert KEY not in text
    assert emulator.state.broadcasts == {}
    if "xx-yy" in changes.get("targets", ""):  # unknown code: a warning, then Palabra's own refusal
        assert "⚠️ target language 'xx-yy' is not in Palabra's known list; sending it anyway" in text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"outputs": "es=rtmp://live.example.com/app"}, "output es: the stream key is missing"),
        ({"targets": "fr"}, "the outputs still use es, which would no longer be translated"),
        ({"original_volume": 2.0}, "original volume must be from 0 to 1"),
        ({}, "nothing to update"),
    ],
)
async def test_bad_update_is_refused_privately(sqlite_world, emulator, changes, expected):
    world = sqlite_world
    await create(world, world.fake.owner)
    [(broadcast_id, record)] = emulator.state.broadcasts.items()
    before = dict(record)
    text, private = answer(await world.run(world.fake.owner, "update", broadcast=broadcast_id, **changes))
    assert private and expected in text, text
    assert record == before


async def test_member_without_manage_server_is_refused(sqlite_world, emulator):
    member = await sqlite_world.fake.add_user("Member")
    for subcommand, options in [("list", {}), ("create", dict(title="t", source="en", targets="es", outputs=OUTPUTS))]:
        text, private = answer(await sqlite_world.run(member, subcommand, **options))
        assert private and "Only members with the Manage Server permission" in text
    assert emulator.state.broadcasts == {}


async def test_autocomplete_offers_only_this_servers_broadcasts(sqlite_world, emulator):
    world, admin = sqlite_world, sqlite_world.fake.owner
    await create(world, admin, title="First")
    await create(world, admin, title="Second", guild=world.second)
    ids = {record["title"]: broadcast_id for broadcast_id, record in emulator.state.broadcasts.items()}
    assert await world.complete(admin, "show", "broadcast", broadcast="") == [
        {"name": f"First ({ids['First'][:8]})", "value": ids["First"]}
    ]
    assert [
        c["value"] for c in await world.complete(admin, "delete", "broadcast", guild=world.second, broadcast="sec")
    ] == [ids["Second"]]
    assert await world.complete(admin, "show", "broadcast", guild=world.second, broadcast="First") == []
    member = await world.fake.add_user("Member")
    assert await world.complete(member, "show", "broadcast", broadcast="") == []


async def test_background_poller_announces_by_itself(tmp_path, emulator):
    async with running_world(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", emulator.base_url, 0.05) as world:
        channel = world.fake.channel("broadcast-status")
        await create(world, world.fake.owner, announce=channel)
        [broadcast_id] = list(emulator.state.broadcasts)
        poller = world.poller()
        assert poller.running
        await set_status(emulator, broadcast_id, "streaming")
        await wait_until(lambda: world.fake.messages(channel))
        assert "🔴 Streaming" in world.fake.messages(channel)[0].content
    assert not poller.running  # the cog stops it when the bot closes


async def test_synced_command_fits_discords_limits(sqlite_world):
    [command] = [c for c in sqlite_world.fake.commands(sqlite_world.fake.bot()) if c["name"] == "broadcast"]
    subcommands = {sub["name"]: sub for sub in command["options"]}
    assert set(subcommands) == {"create", "list", "show", "update", "delete", "listen", "announce"}
    for sub in subcommands.values():
        for option in [sub, *sub.get("options", [])]:
            assert 1 <= len(option["description"]) <= 100 and not option["description"].endswith("…"), option
    create_options = {o["name"]: o for o in subcommands["create"]["options"]}
    assert [c["value"] for c in create_options["input"]["choices"]] == ["rtmp_push", "srt_push"]
    assert create_options["outputs"]["required"] and create_options["announce"]["type"] == 7


async def test_longest_create_reply_fits_and_keeps_the_ingest(sqlite_world, emulator):
    long_path = "/".join(["segment"] * 20)
    outputs = ";".join(f"es=rtmp://host{i}.example.com/{long_path}|{KEY}" for i in range(10))
    text, private = answer(await create(sqlite_world, sqlite_world.fake.owner, title="T" * 100, outputs=outputs))
    [record] = emulator.state.broadcasts.values()
    assert private and len(text) <= 2000
    assert f"Stream key: ||`{record['input']['stream_key']}`||" in text and text.endswith("…")
