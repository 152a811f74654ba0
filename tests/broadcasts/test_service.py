"""BroadcastService against the Palabra emulator (loopback) and both databases: lifecycle, guild
isolation on a shared Palabra account, error mapping, secrets registered for redaction."""

from __future__ import annotations

import dataclasses

import pytest

from bot.broadcasts.service import BroadcastNotFound, BroadcastRejected, BroadcastService, BroadcastUnavailable
from bot.broadcasts.status import ERROR, GONE, STREAMING, WAITING
from bot.broadcasts.validation import parse_create
from bot.db import broadcasts as repo
from bot.logs import redact
from tests.fakes.broadcasts import set_status
from tests.fakes.secrets import STREAM_KEY

GUILD_A, GUILD_B, ADMIN = 1111, 2222, 77


def request(**changes):
    options = dict(
        title="Friday show",
        source="en",
        targets="es,fr",
        input_protocol="rtmp_push",
        outputs=f"es=rtmp://live.example.com/app|{STREAM_KEY}; hls=original,es,fr",
        delay_s=3,
    )
    return parse_create(**{**options, **changes})


async def test_lifecycle(services, emulator):
    service = services.broadcasts
    created = await service.create(guild_id=GUILD_A, user_id=ADMIN, request=request(), announce_channel_id=55)
    view = created.broadcast
    assert view.title == "Friday show" and view.status == WAITING
    assert view.source == "en" and view.targets == ("es", "fr") and view.input_protocol == "rtmp_push"
    assert view.mixing == {"original_delay_seconds": 3.0}
    assert [(o.protocol, o.languages) for o in view.outputs] == [
        ("rtmp_push", ("es",)),
        ("hls_pull", ("original", "es", "fr")),
    ]
    assert set(view.outputs[1].urls) == {"original", "es", "fr"}
    # The ingest is what the emulator issued for this broadcast.
    record = emulator.state.broadcasts[view.id]
    assert created.ingest.server == record["input"]["server"] and created.ingest.server.startswith("rtmp://")
    assert created.ingest.stream_key == record["input"]["stream_key"]
    # Every key is registered for redaction: the user's output key and Palabra's ingest key.
    assert redact(f"{STREAM_KEY} {created.ingest.stream_key}") == "*** ***"

    assert [v.id for v in await service.list(GUILD_A)] == [view.id]
    shown, ingest = await service.show(GUILD_A, view.id[:8])  # a unique id prefix is enough
    assert shown.id == view.id and ingest == created.ingest

    await set_status(emulator, view.id, "error", "no audio track in the input")
    shown, _ = await service.show(GUILD_A, view.id)
    assert shown.status == ERROR and "no audio track in the input" in shown.status_text

    updated = await service.update(
        GUILD_A,
        view.id,
        title="Saturday show",
        targets="es,fr,de",
        outputs="de=srt://relay.example.com:9000|dekey; hls=original,de",
        base_volume=0.5,
    )
    assert updated.broadcast.title == "Saturday show" and updated.broadcast.targets == ("es", "fr", "de")
    assert record["original_base_volume"] == 0.5 and record["outputs"][0]["stream_key"] == "dekey"
    async with services.database.session() as s:
        assert (await repo.get_broadcast(s, GUILD_A, view.id)).title == "Saturday show"

    listen = await service.listen(GUILD_A, view.id)
    assert listen.url.endswith("/livekit") and listen.room_name == f"broadcast-{view.id}"
    assert redact(listen.token) == "***"

    title, existed = await service.delete(GUILD_A, view.id)
    assert (title, existed) == ("Saturday show", True)
    assert view.id not in emulator.state.broadcasts
    assert await service.list(GUILD_A) == []
    with pytest.raises(BroadcastNotFound):
        await service.show(GUILD_A, view.id)


async def test_other_guild_can_neither_see_nor_touch(services, emulator):
    service = services.broadcasts
    mine = (await service.create(guild_id=GUILD_A, user_id=ADMIN, request=request())).broadcast
    theirs = (await service.create(guild_id=GUILD_B, user_id=ADMIN, request=request(title="B's"))).broadcast
    # Same Palabra account: the API lists both, each guild sees only its own.
    assert [v.id for v in await service.list(GUILD_A)] == [mine.id]
    assert [v.id for v in await service.list(GUILD_B)] == [theirs.id]
    for call in (
        service.show(GUILD_B, mine.id),
        service.update(GUILD_B, mine.id, title="hijacked"),
        service.listen(GUILD_B, mine.id),
        service.delete(GUILD_B, mine.id),
        service.set_announce_channel(GUILD_B, mine.id, 9),
        service.show(GUILD_B, mine.id[:8]),
    ):
        with pytest.raises(BroadcastNotFound, match="this server has no broadcast"):
            await call
    assert emulator.state.broadcasts[mine.id]["title"] == "Friday show"
    assert [label for label, _ in await service.choices(GUILD_B)] == [f"B's ({theirs.id[:8]})"]


async def test_palabra_refusal_is_a_clear_message_and_nothing_is_recorded(services):
    # Unknown target: a warning locally, and the emulator (like Palabra) refuses it.
    bad = request(targets="es,xx-yy", outputs=f"xx-yy=rtmp://h.example/app|{STREAM_KEY}")
    assert bad.warnings
    with pytest.raises(BroadcastRejected, match=r"Palabra refused to create the broadcast: .*'xx-yy'"):
        await services.broadcasts.create(guild_id=GUILD_A, user_id=ADMIN, request=bad)
    assert await services.broadcasts.list(GUILD_A) == []


async def test_broadcast_deleted_outside_discord(services, emulator):
    service = services.broadcasts
    view = (await service.create(guild_id=GUILD_A, user_id=ADMIN, request=request())).broadcast
    del emulator.state.broadcasts[view.id]
    assert [v.status for v in await service.list(GUILD_A)] == [GONE]
    assert (await service.show(GUILD_A, view.id))[0].status == GONE
    assert await service.delete(GUILD_A, view.id) == ("Friday show", False)
    assert await service.list(GUILD_A) == []


async def test_poll_statuses_reports_each_change_once(services, emulator):
    service = services.broadcasts
    a = (await service.create(guild_id=GUILD_A, user_id=ADMIN, request=request(), announce_channel_id=5)).broadcast
    b = (await service.create(guild_id=GUILD_B, user_id=ADMIN, request=request(title="B"))).broadcast
    assert await service.poll_statuses() == []
    await set_status(emulator, a.id, "streaming")
    await set_status(emulator, b.id, "error", "bad codec")
    changes = {c.broadcast_id: c for c in await service.poll_statuses()}
    assert (changes[a.id].guild_id, changes[a.id].old, changes[a.id].new, changes[a.id].announce_channel_id) == (
        GUILD_A,
        WAITING,
        STREAMING,
        5,
    )
    assert changes[b.id].new == ERROR and "bad codec" in changes[b.id].text
    assert await service.poll_statuses() == []


async def test_palabra_unreachable_and_unconfigured(services, emulator, no_secret_in_logs):
    service = services.broadcasts
    view = (await service.create(guild_id=GUILD_A, user_id=ADMIN, request=request())).broadcast
    emulator.state.config.rest_fail_first, emulator.state.config.rest_fail_status = 10, 503
    with pytest.raises(BroadcastUnavailable, match="Palabra could not read the broadcast right now"):
        await service.show(GUILD_A, view.id)
    # The list falls back to the last known status instead of failing, and says so in the log.
    listed = await service.list(GUILD_A)
    assert [(v.id, v.live, v.status) for v in listed] == [(view.id, False, WAITING)]
    assert f"broadcast list for guild {GUILD_A} without Palabra" in no_secret_in_logs.getvalue()
    emulator.state.config.rest_fail_first = 0
    without_palabra = BroadcastService(dataclasses.replace(services.core, palabra=None))
    with pytest.raises(BroadcastUnavailable, match="need Palabra credentials"):
        await without_palabra.listen(GUILD_A, view.id)


async def test_create_whose_ownership_cannot_be_saved_is_undone_at_palabra(services, emulator):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    async with services.database.session() as s:
        await s.execute(text("DROP TABLE broadcasts"))
    with pytest.raises(DBAPIError):  # the database's own error; the command layer reports it with a reference
        await services.broadcasts.create(guild_id=GUILD_A, user_id=ADMIN, request=request())
    assert emulator.state.broadcasts == {}, "no broadcast may be left at Palabra without an owner"


async def test_poll_statuses_covers_only_this_processs_shards(services, emulator):
    on_0, on_1 = (5_000_000 << 22) | 1, (5_000_001 << 22) | 1  # guilds on shards 0 and 1 of 2
    service = services.broadcasts
    theirs = (await service.create(guild_id=on_0, user_id=ADMIN, request=request(), announce_channel_id=5)).broadcast
    mine = (
        await service.create(guild_id=on_1, user_id=ADMIN, request=request(title="B"), announce_channel_id=6)
    ).broadcast

    def process_on(shard: int) -> BroadcastService:
        settings = services.core.settings.model_copy(update={"shard_count": 2, "shard_ids": [shard]})
        return BroadcastService(dataclasses.replace(services.core, settings=settings))

    await set_status(emulator, theirs.id, "streaming")
    await set_status(emulator, mine.id, "streaming")
    assert [c.broadcast_id for c in await process_on(1).poll_statuses()] == [mine.id]
    assert [c.broadcast_id for c in await process_on(0).poll_statuses()] == [theirs.id]  # each announced once
