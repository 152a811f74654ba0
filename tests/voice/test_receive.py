"""The sans-I/O receive pipeline: filtering, both AEAD modes, padding/extension stripping, unmapped
SSRCs (held, then released by op 5 or found by trial decryption), failure reporting."""

import os
import random

import pytest

from bot.voice.receive import (
    HOLD_SECONDS,
    REPORT_EVERY,
    DecryptFailure,
    ReceivePipeline,
    SsrcMapped,
    VoicePacket,
)
from tests.fakes.discord import rtp
from tests.fakes.discord.dave import dave_group
from tests.fakes.discord.sender import AES_GCM, XCHACHA, Sender

BOT, ALICE, BOB = 1001, 2002, 3003
KEY = os.urandom(32)


@pytest.fixture
def group():
    return dave_group([BOT, ALICE, BOB])


def make_pipeline(group, mode=XCHACHA, version=1):
    pipeline = ReceivePipeline(lambda: (group[BOT], version), own_user_id=BOT, own_ssrc=1)
    pipeline.set_transport(mode, KEY)
    return pipeline


def packets_of(events):
    return [e for e in events if isinstance(e, VoicePacket)]


@pytest.mark.parametrize("mode", [XCHACHA, AES_GCM])
def test_padding_extensions_and_early_packets(group, mode):
    pipeline = make_pipeline(group, mode)
    alice = Sender(ssrc=500, key=KEY, session=group[ALICE], mode=mode, seq=65530, ts=2**32 - 960 * 3)
    rng = random.Random(1)
    sent, events = [], []
    for index in range(60):
        opus = os.urandom(rng.randint(20, 200))
        sent.append(opus)
        padding = rng.randint(1, 15) if rng.random() < 0.2 else 0
        extension = b"\x10\x7f\x90\x01" if index % 3 == 0 else None
        events += pipeline.feed(
            alice.packet(group[ALICE].encrypt_opus(opus), padding=padding, extension=extension), index * 0.02
        )
        if index == 9:  # op 5 arrives after the first ten packets
            events += pipeline.map_ssrc(500, ALICE, index * 0.02)
    got = packets_of(events)
    assert [p.opus for p in got] == sent
    assert {p.user_id for p in got} == {ALICE}
    assert [p.sequence for p in got[:7]] == [65530, 65531, 65532, 65533, 65534, 65535, 0]
    assert pipeline.stats.accepted == 60 and pipeline.stats.dave_failures == 0


def test_unmapped_ssrc_found_by_trial_decryption(group):
    pipeline = make_pipeline(group)
    bob = Sender(ssrc=777, key=KEY, session=group[BOB])
    sent = [os.urandom(50) for _ in range(5)]
    events = []
    for index, opus in enumerate(sent):
        events += pipeline.feed(bob.packet(group[BOB].encrypt_opus(opus)), index * 0.02)
    mapped = [e for e in events if isinstance(e, SsrcMapped)]
    assert mapped == [SsrcMapped(777, BOB, "trial")]
    assert [p.opus for p in packets_of(events)] == sent
    assert pipeline.user_for(777) == BOB and pipeline.stats.trial_hits == 1


def test_held_packets_expire_when_nobody_claims_them(group):
    pipeline = make_pipeline(group)
    stranger = Sender(ssrc=888, key=KEY, session=None)  # not DAVE-encrypted: no trial can match
    for index in range(3):
        assert pipeline.feed(stranger.packet(os.urandom(40)), index * 0.02) == []
    pipeline.feed(b"\x81\xc9" + bytes(30), HOLD_SECONDS + 1)
    assert pipeline.stats.held == 3 and pipeline.stats.held_expired == 3
    assert packets_of(pipeline.map_ssrc(888, ALICE, HOLD_SECONDS + 1)) == []


def test_ignores_rtcp_other_payload_types_and_our_own_ssrc(group):
    pipeline = make_pipeline(group)
    own = Sender(ssrc=1, key=KEY)
    video = rtp.seal(bytes([0x80, 101]) + bytes(10), b"video", XCHACHA, KEY, 1)
    assert pipeline.feed(b"\x80\xc8" + bytes(26), 0) == []
    assert pipeline.feed(video, 0) == []
    assert pipeline.feed(own.packet(b"mine"), 0) == []
    assert pipeline.feed(b"\x12", 0) == []
    stats = pipeline.stats
    assert (stats.ignored_rtcp, stats.ignored_payload_type, stats.ignored_own, stats.malformed) == (1, 1, 1, 1)


def test_repeated_transport_failures_are_reported(group):
    pipeline = make_pipeline(group)
    wrong = Sender(ssrc=500, key=bytes(32), session=group[ALICE])
    pipeline.map_ssrc(500, ALICE, 0)
    failures = []
    for index in range(REPORT_EVERY * 2):
        failures += pipeline.feed(wrong.packet(b"x" * 30), index * 0.02)
    assert [f.consecutive for f in failures] == [1, REPORT_EVERY, REPORT_EVERY * 2]
    assert all(isinstance(f, DecryptFailure) and f.stage == "transport" and f.ssrc == 500 for f in failures)
    assert pipeline.stats.transport_failures == REPORT_EVERY * 2


def test_dave_failures_are_reported_per_sender_and_reset_on_success(group):
    pipeline = make_pipeline(group)
    alice = Sender(ssrc=500, key=KEY, session=group[ALICE])
    pipeline.map_ssrc(500, ALICE, 0)
    events = pipeline.feed(alice.packet(os.urandom(60)), 0)  # plain Opus while DAVE is on
    assert events == [DecryptFailure("dave", "unencrypted_frame", 500, ALICE, 1, 1)]
    assert packets_of(pipeline.feed(alice.packet(group[ALICE].encrypt_opus(b"ok")), 0.02))
    again = pipeline.feed(alice.packet(os.urandom(60)), 0.04)
    assert again[0].consecutive == 1 and again[0].total == 2
    assert pipeline.stats.dave_failures_by_reason == {"unencrypted_frame": 2}


def test_no_key_yet_is_a_transport_failure(group):
    pipeline = ReceivePipeline(lambda: (group[BOT], 1), own_user_id=BOT)
    events = pipeline.feed(Sender(ssrc=5, key=KEY).packet(b"abc"), 0)
    assert events[0].reason == "no_key"


def test_user_leaving_unmaps_their_ssrc(group):
    pipeline = make_pipeline(group)
    pipeline.map_ssrc(500, ALICE, 0)
    pipeline.forget_user(ALICE)
    assert pipeline.user_for(500) is None


def test_transport_only_call_passes_plain_opus(group):
    pipeline = ReceivePipeline(own_user_id=BOT)
    pipeline.set_transport(XCHACHA, KEY)
    pipeline.map_ssrc(9, ALICE, 0)
    sender = Sender(ssrc=9, key=KEY)
    assert [p.opus for p in packets_of(pipeline.feed(sender.packet(b"\x78plain"), 0))] == [b"\x78plain"]


def alice_and_us_in_a_group():
    """Our DAVE session and Alice's in one group (no networking), our pipeline with her SSRC mapped."""
    from tests.fakes.discord.dave import LocalDaveGroup

    local = LocalDaveGroup()
    for member in (BOT, ALICE):
        local.join(member)
    pipeline = ReceivePipeline(lambda: (local.sessions[BOT], 1), own_user_id=BOT, own_ssrc=1)
    pipeline.set_transport(XCHACHA, KEY)
    pipeline.map_ssrc(500, ALICE, 0.0)
    return local, pipeline, Sender(ssrc=500, key=KEY, session=local.sessions[ALICE])


def test_frames_keyed_for_an_epoch_we_have_not_reached_yet_are_opened_once_we_have():
    """Carol joins; Alice processes the commit first and encrypts for the new epoch while our session
    (a slower link) still has the old one. Those frames are kept briefly and opened after our commit,
    not lost (a failed DAVE attempt does not consume the nonce)."""
    from tests.fakes.discord.dave import OP_ANNOUNCE_COMMIT, OP_WELCOME

    local, pipeline, alice = alice_and_us_in_a_group()
    sent = [os.urandom(60) for _ in range(3)]
    local.hold(BOT, ops={OP_ANNOUNCE_COMMIT, OP_WELCOME})
    local.join(3003)  # Carol: Alice moves to the new epoch, we do not yet
    early = pipeline.feed(alice.packet(local.sessions[ALICE].encrypt_opus(sent[0])), 0.00)
    assert packets_of(early) == [] and pipeline.stats.dave_failures == 1
    local.release(BOT)
    events = early
    for index, opus in enumerate(sent[1:], start=1):
        events += pipeline.feed(alice.packet(local.sessions[ALICE].encrypt_opus(opus)), index * 0.02)
    assert [p.opus for p in packets_of(events)] == sent
    assert pipeline.stats.dave_recovered == 1
