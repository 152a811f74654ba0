"""The fake translator on a fake clock: the deterministic behaviour (realism off)."""

from __future__ import annotations

import json

import pytest

from bot.palabra import protocol as p
from bot.palabra.task import build_task
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.translator import RATE, drive, expected_output, translator

PATTERN = [("silence", 0.5), ("tone", 1.2), ("silence", 1.0), ("noise", 0.8), ("silence", 1.0)]


def test_results_in_the_fixed_order_at_confirmation():
    pcm = bursts(RATE, PATTERN)
    run = drive(translator(), pcm)
    finals = [s for s in run.sent if s.kind != "partial_transcription"]
    kinds = [s.kind for s in finals]
    first_tid = run.of(p.ValidatedTranscription)[0].transcription_id
    # validated, then per target its translation and all of its audio, then the next utterance
    es_audio = len([a for a in run.of(p.OutputAudio) if (a.transcription_id, a.language) == (first_tid, "es")])
    assert (
        kinds[: 2 + es_audio]
        == ["validated_transcription", "translated_transcription"] + ["output_audio_data"] * es_audio
    )
    assert kinds[-1] == "end_of_stream"
    for tid, confirmed in run.confirmed_at.items():
        dues = {s.at for s in finals if s.kind != "end_of_stream" and s.event.transcription_id == tid}
        assert dues == {confirmed}  # everything at once, the moment trailing silence confirms it


def test_output_audio_is_the_utterances_own_input_in_200_ms_chunks():
    pcm = bursts(RATE, PATTERN)
    run = drive(translator(), pcm)
    validated = run.of(p.ValidatedTranscription)
    expected = [(0.5, 1.7), (2.7, 3.5)]
    assert [(v.start, v.end) for v in validated] == [
        (pytest.approx(a, abs=0.03), pytest.approx(b, abs=0.03)) for a, b in expected
    ]
    for v in validated:
        for language in ("es", "fr"):
            chunks = [
                a for a in run.of(p.OutputAudio) if (a.transcription_id, a.language) == (v.transcription_id, language)
            ]
            assert {len(c.pcm) for c in chunks[:-1]} == {9600}
            assert [c.last_chunk for c in chunks] == [False] * (len(chunks) - 1) + [True]
            score, lag = windowed_xcorr(
                from_pcm(run.audio(v.transcription_id, language)), from_pcm(expected_output(pcm, v).tobytes())
            )
            assert score >= 0.99 and lag <= 1


def test_processing_delay_is_serial_on_the_fake_clock():
    pcm = bursts(RATE, [("tone", 0.4), ("silence", 0.75), ("tone", 0.4), ("silence", 1.0)])
    run = drive(translator(processing_delay_s=2.0), pcm)
    dues = [at for at, _ in run.events(p.ValidatedTranscription)]
    confirmed = sorted(run.confirmed_at.values())
    assert dues[0] == pytest.approx(confirmed[0] + 2.0)
    # the second utterance waits for the first one's results, then for its own delay
    assert dues[1] == pytest.approx(max(confirmed[1], dues[0]) + 2.0)


def test_partials_grow_while_speaking_and_come_at_once():
    pcm = bursts(RATE, PATTERN)
    run = drive(translator(), pcm)
    tid = run.of(p.ValidatedTranscription)[0].transcription_id
    partials = [(at, e) for at, e in run.events(p.PartialTranscription) if e.transcription_id == tid]
    assert len(partials) >= 3
    lengths = [len(e.text) for _, e in partials]
    assert lengths == sorted(lengths)
    assert all(at < run.confirmed_at[tid] for at, _ in partials)


def test_partial_translations_only_when_asked_and_allowed():
    pcm = bursts(RATE, [("tone", 0.8), ("silence", 0.8)])
    asked = drive(translator(task=build_task("en", ["es"], translate_partials=True)), pcm)
    assert asked.of(p.PartialTranslatedTranscription)
    assert not drive(translator(task=build_task("en", ["es"])), pcm).of(p.PartialTranslatedTranscription)


def test_interrupt_drops_everything_not_sent():
    pcm = bursts(RATE, [("tone", 0.6), ("silence", 0.9), ("tone", 0.5), ("silence", 1.0)])
    run = drive(
        translator(processing_delay_s=5.0), pcm, interrupt_at=1.4
    )  # after the first is confirmed, before its results
    validated = run.of(p.ValidatedTranscription)
    assert len(validated) == 1 and validated[0].start == pytest.approx(1.5, abs=0.03)  # the first one is gone
    assert run.sent[-1].kind == "end_of_stream"


def test_forced_end_drops_the_tail():
    pcm = bursts(RATE, [("tone", 0.6)])
    assert not drive(translator(), pcm, force=True).of(p.ValidatedTranscription)
    graceful = drive(translator(), pcm)
    assert len(graceful.of(p.ValidatedTranscription)) == 1 and graceful.sent[-1].kind == "end_of_stream"


def test_text_only_and_zlib_output():
    pcm = bursts(RATE, [("tone", 0.8), ("silence", 0.8)])
    assert not drive(translator(task=build_task("en", ["es"], text_only=True)), pcm).of(p.OutputAudio)
    task = build_task("en", ["es"], output_format="zlib_pcm_s16le")
    zipped = drive(translator(task=task), pcm)
    frames = [s.frame for s in zipped.sent if s.kind == "output_audio_data"]
    audio = b"".join(a.pcm for a in (p.parse_message(json.dumps(f), zlib_audio=True) for f in frames))
    assert len(audio) / 2 / 24000 == pytest.approx(0.8, abs=0.03)


def test_speak_sends_a_tone_per_language():
    t = translator()
    t.speak("tts1", "Hola!", ["es", "fr"], 0.0)
    frames = t.pop_due(0.0)
    audio = [p.parse_message(json.dumps(f)) for f in frames]
    assert {(a.transcription_id, a.language) for a in audio} == {("tts1", "es"), ("tts1", "fr")}
