"""Voice-gateway JSON as typed events (sans-I/O) and the resume watch's deadline (a fake clock)."""

import pytest

from bot.voice import gateway
from bot.voice.errors import VoiceGatewayError
from bot.voice.gateway import (
    ClientDisconnected,
    ClientsConnected,
    Ready,
    Resumed,
    ResumeWatch,
    SessionDescription,
    SsrcAnnounced,
)


@pytest.mark.parametrize(
    ("message", "event"),
    [
        ({"op": 2, "d": {"ssrc": 7, "ip": "1.2.3.4", "port": 5, "modes": []}}, Ready(7)),
        (
            {"op": 4, "d": {"mode": "m", "secret_key": [1] * 32, "dave_protocol_version": 1}},
            SessionDescription("m", bytes([1] * 32), 1),
        ),
        ({"op": 5, "d": {"user_id": "42", "ssrc": 9, "speaking": 1}}, SsrcAnnounced(42, 9)),
        ({"op": 12, "d": {"user_id": "42", "audio_ssrc": 9, "video_ssrc": 0}}, SsrcAnnounced(42, 9)),
        ({"op": 12, "d": {"user_id": "42", "audio_ssrc": 0}}, None),  # video only
        ({"op": 9, "d": None}, Resumed()),
        ({"op": 11, "d": {"user_ids": ["1", "2"]}}, ClientsConnected((1, 2))),
        ({"op": 13, "d": {"user_id": "3"}}, ClientDisconnected(3)),
        ({"op": 6, "d": {"t": 1}}, None),
        ({"op": 21, "d": {"transition_id": 1, "protocol_version": 0}}, None),
    ],
)
def test_messages_become_events(message, event):
    assert gateway.parse(message) == event


@pytest.mark.parametrize(
    "message",
    [
        {"op": 2, "d": {}},
        {"op": 2, "d": None},
        {"op": 4, "d": {"mode": "m", "secret_key": "not a key"}},
        {"op": 5, "d": {"user_id": True, "ssrc": 9}},
        {"op": 11, "d": {"user_ids": "1"}},
        {"op": 13, "d": {"user_id": "abc"}},
    ],
)
def test_malformed_messages_are_one_error_naming_the_op(message):
    with pytest.raises(VoiceGatewayError, match=f"op {message['op']}"):
        gateway.parse(message)


def test_resume_watch_deadline():
    watch = ResumeWatch(2.0)
    assert watch.deadline is None and not watch.expired(100.0)
    watch.begin(10.0)
    assert watch.deadline == 12.0 and watch.remaining(11.5) == 0.5
    assert not watch.expired(11.9) and watch.expired(12.0)
    watch.observe(gateway.parse({"op": 9, "d": None}))
    assert watch.resumed and not watch.described
    watch.begin(20.0)  # a new resume starts clean
    assert not watch.resumed and watch.deadline == 22.0
