import asyncio

from bot.interpretation.notices import DecryptFailureNotices
from bot.voice.receive import DecryptFailure


def failure(user_id, consecutive, stage="dave", reason="NoValidCryptorFound"):
    return DecryptFailure(
        stage=stage, reason=reason, ssrc=1234, user_id=user_id, consecutive=consecutive, total=consecutive
    )


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(clock):
    return DecryptFailureNotices(lambda text: asyncio.sleep(0), lambda uid: f"user-{uid}", clock=clock)


def test_the_first_failures_after_a_join_are_not_announced():
    notices = make(Clock())
    assert notices.notice_for(failure(7, 1)) is None
    assert notices.notice_for(failure(7, 24)) is None


def test_a_long_run_is_announced_once_per_person_per_interval():
    clock = Clock()
    notices = make(clock)
    text = notices.notice_for(failure(7, 25))
    assert text is not None and "user-7" in text and "DAVE" in text and "NoValidCryptorFound" in text
    assert notices.notice_for(failure(7, 50)) is None
    assert notices.notice_for(failure(8, 25)) is not None  # someone else is announced on their own
    clock.now += notices.interval_s
    assert notices.notice_for(failure(7, 75)) is not None


def test_an_unmapped_sender_is_still_announced():
    text = make(Clock()).notice_for(failure(None, 25, stage="transport", reason="bad tag"))
    assert text is not None and "someone in this channel" in text


async def test_notices_are_delivered_and_a_failing_channel_does_not_raise():
    sent = []

    async def send(text):
        sent.append(text)

    async def broken(text):
        raise RuntimeError("missing access")

    notices = DecryptFailureNotices(send, str)
    notices(failure(7, 25))
    failing = DecryptFailureNotices(broken, str)
    failing(failure(7, 25))
    await asyncio.sleep(0.01)
    assert len(sent) == 1 and notices.sent == 1 and failing.sent == 0
