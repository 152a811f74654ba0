"""Seeded realism on a fake clock: each behaviour shows up for some seed, a seed reproduces itself,
and whatever the seed, the output stays within what Palabra's protocol allows."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from bot.palabra import protocol as p
from bot.palabra.emulator.pacing import PacingMonitor
from bot.palabra.emulator.realism import STALLED, Realism, RealismProfile
from bot.palabra.task import build_task
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.translator import RATE, Run, drive, expected_output, translator

TARGETS = ["es", "fr"]
FINALS = ("validated_transcription", "translated_transcription")
KNOWN = {
    "partial_transcription",
    "validated_transcription",
    "translated_transcription",
    "partial_translated_transcription",
    "output_audio_data",
    "warning",
    "end_of_stream",
}


def speech(utterances: int = 6) -> bytes:
    pattern: list[tuple[str, float]] = [("silence", 0.3)]
    for i in range(utterances):
        pattern += [("tone" if i % 2 == 0 else "noise", 0.9 + 0.25 * (i % 4)), ("silence", 1.0)]
    return bursts(RATE, pattern)


def realistic(seed: int, pcm: bytes | None = None, interrupt_at: float | None = None, **kw) -> tuple[Run, bytes]:
    pcm = pcm or speech()
    task = build_task("en", TARGETS, translate_partials=True)
    return drive(translator(seed, task=task, **kw), pcm, interrupt_at=interrupt_at), pcm


def order_of(run: Run, tid: str) -> str:
    """How the translations sat relative to the validated transcript: before, same (burst) or after."""
    indexed = [
        (i, s)
        for i, s in enumerate(run.sent)
        if s.event is not None and getattr(s.event, "transcription_id", None) == tid
    ]
    validated = next((i, s) for i, s in indexed if s.kind == "validated_transcription")
    first_translation = next((i, s) for i, s in indexed if s.kind == "translated_transcription")
    if first_translation[0] < validated[0]:
        return "before"
    if first_translation[1].at == validated[1].at and first_translation[0] == validated[0] + 1:
        return "same"
    return "after"


# --- whatever the seed: within the protocol -------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_any_seed_stays_within_the_protocol(seed):
    run, pcm = realistic(seed)
    assert run.sent[-1].kind == "end_of_stream" and [s.kind for s in run.sent].count("end_of_stream") == 1
    firsts: dict[tuple[str, str], float] = {}  # (tid, kind-or-language) -> index of the first final
    audio_tids: dict[str, list[str]] = defaultdict(list)
    final_tids: dict[tuple[str, str], list[str]] = defaultdict(list)
    text_parts_seen: set[tuple[str, str, int]] = set()
    for index, sent in enumerate(run.sent):
        event = sent.event
        if sent.kind not in KNOWN:
            assert event is None or isinstance(event, p.Unknown), sent.frame  # unknown types and bare frames only
            continue
        assert event is not None and not isinstance(event, (p.Malformed, p.Unknown)), sent.frame
        if isinstance(event, (p.ValidatedTranscription, p.TranslatedTranscription)):
            stream = (event.message_type, event.language)
            if not final_tids[stream] or final_tids[stream][-1] != event.transcription_id:
                assert event.transcription_id not in final_tids[stream], "utterances' finals out of order"
                final_tids[stream].append(event.transcription_id)
            firsts.setdefault((event.transcription_id, "final"), index)
            if isinstance(event, p.TranslatedTranscription):
                firsts.setdefault((event.transcription_id, event.language), index)
                text_parts_seen.add((event.transcription_id, event.language, event.translation_part_id or 0))
        elif isinstance(event, p.PartialTranscription):
            assert index < firsts.get((event.transcription_id, "final"), len(run.sent)), "a partial after its final"
        elif isinstance(event, p.PartialTranslatedTranscription):
            assert index < firsts.get((event.transcription_id, event.language), len(run.sent))
        elif isinstance(event, p.OutputAudio):
            part = int(event.translation_part_id or 0)
            assert (event.transcription_id, event.language, part) in text_parts_seen, "audio before its text"
            tids = audio_tids[event.language]
            if not tids or tids[-1] != event.transcription_id:
                assert event.transcription_id not in tids, "audio of one language out of order"
                tids.append(event.transcription_id)
    for validated in {v.transcription_id: v for v in run.of(p.ValidatedTranscription)}.values():
        expected = from_pcm(expected_output(pcm, validated).tobytes())
        for language in TARGETS:
            translated = [
                t
                for t in run.of(p.TranslatedTranscription)
                if (t.transcription_id, t.language) == (validated.transcription_id, language)
            ]
            by_part = {t.translation_part_id: t.text for t in translated}  # duplicates collapse
            assert " ".join(by_part[k] for k in sorted(by_part)) == f"[{language}] {validated.text}"
            audio = from_pcm(run.audio(validated.transcription_id, language))
            assert len(audio) == pytest.approx(len(expected), abs=48)
            score, _ = windowed_xcorr(audio, expected)
            assert score >= 0.99


# --- each behaviour, for some seed ---------------------------------------------------------------
def test_translations_before_in_the_same_burst_as_or_after_the_validated_transcript():
    run, _ = realistic(3, speech(8))
    orders = {order_of(run, v.transcription_id) for v in run.of(p.ValidatedTranscription)}
    assert orders == {"before", "same", "after"}


def test_translations_in_parts_each_with_its_own_audio():
    run, _ = realistic(0)
    parted = [t for t in run.of(p.TranslatedTranscription) if t.translation_part_id]
    assert parted
    tid, language = parted[0].transcription_id, parted[0].language
    chunks = [a for a in run.of(p.OutputAudio) if (a.transcription_id, a.language) == (tid, language)]
    parts = sorted({a.translation_part_id for a in chunks})
    assert len(parts) >= 2
    for part in parts:  # last_chunk once per part, on its last chunk
        flags = [a.last_chunk for a in chunks if a.translation_part_id == part]
        assert flags == [False] * (len(flags) - 1) + [True]


def test_partial_translations_lag_and_are_sometimes_coalesced():
    run, _ = realistic(1)
    partials = run.events(p.PartialTranscription)
    translated = run.events(p.PartialTranslatedTranscription)
    due_of_partial = {(e.transcription_id, e.text): at for at, e in partials}
    lags = [at - due_of_partial[(e.transcription_id, e.text.split(" ", 1)[1])] for at, e in translated]
    assert max(lags) > 0.05  # they trail the source partials
    assert len(translated) < len(partials) * len(TARGETS)  # and some are skipped


def test_audio_in_bursts_faster_than_real_time_in_odd_chunk_sizes():
    run, _ = realistic(2)
    tid = run.of(p.ValidatedTranscription)[0].transcription_id
    chunks = [(at, a) for at, a in run.events(p.OutputAudio) if (a.transcription_id, a.language) == (tid, "es")]
    sizes = [len(a.pcm) // 2 for _, a in chunks]
    dues = [at for at, _ in chunks]
    assert len(set(sizes)) > 1 and any(size % 2 for size in sizes) and 4800 not in sizes
    assert 1 < len(set(dues)) < len(dues)  # several bursts, several chunks in a burst
    duration = sum(sizes) / 24000
    assert duration / (dues[-1] - dues[0]) > 1.2  # generated faster than it plays


def test_pipeline_delays_span_the_range_and_the_range_is_configurable():
    def first_result_delays(run: Run) -> list[float]:
        """Per utterance: from confirmation (or the previous utterance's last text) to its first result."""
        out, previous = [], 0.0
        for tid, confirmed in sorted(run.confirmed_at.items(), key=lambda item: item[1]):
            texts = [s.at for s in run.sent if s.kind in FINALS and s.event.transcription_id == tid]
            out.append(min(texts) - max(confirmed, previous))
            previous = max(texts)
        return out

    wide = [d for seed in range(4) for d in first_result_delays(realistic(seed)[0])]
    assert min(wide) >= 0 and max(wide) <= 7.0 and max(wide) - min(wide) > 3.0
    narrow = [d for seed in range(4) for d in first_result_delays(realistic(seed, delay_s=(0.0, 0.5))[0])]
    assert min(narrow) >= 0 and max(narrow) <= 0.5


def test_late_output_after_interrupt_task():
    pcm = bursts(RATE, [("tone", 1.0), ("silence", 0.8), ("silence", 3.0)])
    run, _ = realistic(4, pcm, delay_s=(0.3, 0.6), interrupt_at=1.9)
    assert run.interrupted_at is not None
    tid = run.of(p.ValidatedTranscription)[0].transcription_id if run.of(p.ValidatedTranscription) else None
    late = [s for s in run.sent if s.at > run.interrupted_at and getattr(s.event, "transcription_id", None) == tid]
    assert tid is not None and late  # results already in the pipeline still come out
    assert max(s.at for s in late) <= run.interrupted_at + RealismProfile().late_window_s[1]
    deterministic = drive(translator(processing_delay_s=0.5), pcm, interrupt_at=1.9)
    assert not deterministic.of(p.ValidatedTranscription)  # without realism, none do


def test_audio_stream_stalled_warnings_as_palabra_sends_them():
    run, _ = realistic(0)
    stalled = [s.frame for s in run.sent if s.kind == "warning"]
    assert stalled and all(f["data"]["code"] == STALLED and set(f["data"]) == {"code", "message"} for f in stalled)
    monitor = PacingMonitor(drift=False, stalls=True)  # and when the input really stalls
    assert monitor.on_audio(0.0, 0.32) is None and monitor.check(0.9) is None
    warning = monitor.check(1.0)
    assert warning == p.WarningMessage(STALLED, warning.message) and monitor.check(3.0) is None  # once per gap
    monitor.on_audio(3.1, 0.32)
    assert monitor.check(4.2) is not None


def test_duplicate_messages():
    run, _ = realistic(1)
    finals = [
        json.dumps(s.frame, sort_keys=True)
        for s in run.sent
        if s.kind in ("validated_transcription", "translated_transcription")
    ]
    assert len(finals) > len(set(finals))


def test_unknown_message_types_and_frames_without_one():
    run, _ = realistic(3)
    unknown = [s for s in run.sent if s.kind and s.kind not in KNOWN]
    bare = [s.frame for s in run.sent if "message_type" not in s.frame]
    assert unknown and all(isinstance(s.event, p.Unknown) for s in unknown)
    assert {} in bare and any(set(f) <= set(TARGETS) and f for f in bare)  # "{}" and queue-status frames


# --- reproducible ---------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_output_and_another_seed_another():
    first, second, other = realistic(5)[0], realistic(5)[0], realistic(6)[0]
    assert first.signature() == second.signature()
    assert first.signature() != other.signature()


def test_plans_depend_on_seed_connection_and_utterance_only():
    a, b = Realism(7, stream_id=1), Realism(7, stream_id=1)
    assert [a.plan(i, targets=2, words=5) for i in range(5)] == [b.plan(i, targets=2, words=5) for i in range(5)][::1]
    assert a.plan(0, targets=2, words=5) != Realism(7, stream_id=2).plan(0, targets=2, words=5)
    # a plan asked for a partial duplicates the same message types as the final's
    assert a.plan(3, targets=1, words=1).duplicates == a.plan(3, targets=2, words=9).duplicates


def test_time_scale_compresses_every_delay():
    plain, fast = Realism(9, stream_id=1), Realism(9, stream_id=1, time_scale=4.0)
    assert fast.plan(0, targets=1, words=4).delay_s == pytest.approx(plain.plan(0, targets=1, words=4).delay_s / 4)
    assert np.isclose(fast.late_window(0) * 4, plain.late_window(0))
