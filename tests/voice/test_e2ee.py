"""The DAVE stage against a real davey group (built in-process by the fake Discord's helper)."""

import os

import davey
import pytest

from bot.voice import e2ee
from tests.fakes.discord.dave import LocalDaveGroup, dave_group

BOT, ALICE, BOB = 1001, 2002, 3003


@pytest.fixture(scope="module")
def sessions():
    return dave_group([BOT, ALICE, BOB])


def test_decrypts_each_sender_with_its_own_id(sessions):
    for sender in (ALICE, BOB):
        opus = os.urandom(90)
        frame = sessions[sender].encrypt_opus(opus)
        assert e2ee.looks_encrypted(frame)
        assert e2ee.open_frame(sender, frame, sessions[BOT], 1) == opus


def test_silence_passes_untouched(sessions):
    assert e2ee.open_frame(ALICE, e2ee.SILENCE_FRAME, sessions[BOT], 1) == e2ee.SILENCE_FRAME


def test_padding_left_on_a_frame_breaks_it(sessions):
    frame = sessions[ALICE].encrypt_opus(os.urandom(80))
    with pytest.raises(e2ee.DaveError) as info:
        e2ee.open_frame(ALICE, frame + b"\x00\x00\x00\x04", sessions[BOT], 1)
    assert info.value.reason == e2ee.UNENCRYPTED


def test_failure_reasons(sessions):
    frame = sessions[ALICE].encrypt_opus(os.urandom(80))
    with pytest.raises(e2ee.DaveError) as unknown:
        e2ee.open_frame(4242, frame, sessions[BOT], 1)
    assert unknown.value.reason == e2ee.NO_DECRYPTOR
    e2ee.open_frame(ALICE, frame, sessions[BOT], 1)
    with pytest.raises(e2ee.DaveError) as replay:
        e2ee.open_frame(ALICE, frame, sessions[BOT], 1)
    assert replay.value.reason == e2ee.NO_CRYPTOR
    with pytest.raises(e2ee.DaveError) as plain:
        e2ee.open_frame(ALICE, os.urandom(60) + b"\x01", sessions[BOT], 1)
    assert plain.value.reason == e2ee.UNENCRYPTED


def test_transport_only_calls_and_missing_session():
    plain = b"\x78" + os.urandom(50)
    assert e2ee.open_frame(ALICE, plain, None, 0) == plain
    with pytest.raises(e2ee.DaveError) as info:
        e2ee.open_frame(ALICE, os.urandom(40) + b"\x0c\xfa\xfa", None, 1)
    assert info.value.reason == e2ee.NOT_READY
    lone = davey.DaveSession(davey.DAVE_PROTOCOL_VERSION, BOT, 5)
    with pytest.raises(e2ee.DaveError) as pending:
        e2ee.open_frame(ALICE, os.urandom(40), lone, 1)
    assert pending.value.reason == e2ee.NOT_READY


def test_group_members_exclude_ourselves(sessions):
    assert sorted(e2ee.group_members(sessions[BOT], BOT)) == [ALICE, BOB]
    assert e2ee.group_members(None, BOT) == []


def test_reinit_and_rejoin_keep_decrypting():
    group = LocalDaveGroup()
    bot, alice = group.join(BOT), group.join(ALICE)
    first = alice.encrypt_opus(b"before")
    assert e2ee.open_frame(ALICE, first, bot, 1) == b"before"
    epoch = bot.epoch
    group.reinit(ALICE)  # ALICE re-identified (e.g. voice reconnect): the group re-forms
    assert bot.epoch != epoch and bot.ready
    assert e2ee.open_frame(ALICE, alice.encrypt_opus(b"after"), bot, 1) == b"after"
    group.reinit(BOT)  # our own session re-initialised in place (same object, as discord.py does)
    assert bot.ready
    assert e2ee.open_frame(ALICE, alice.encrypt_opus(b"again"), bot, 1) == b"again"


def test_downgrade_still_opens_stragglers(sessions):
    frame = sessions[BOB].encrypt_opus(b"late frame")
    assert e2ee.open_frame(BOB, frame, sessions[BOT], 0) == b"late frame"
