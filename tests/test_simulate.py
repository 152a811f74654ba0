import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bot.audio.files import AudioFileError, read_wav, write_wav
from bot.audio.resample import palabra_to_discord
from bot.interpretation.srt import srt_time
from bot.settings import load_settings
from bot.simulate import (
    TRAILING_SILENCE_S,
    Options,
    SimulationError,
    Utterance,
    build_session_task,
    convert_input,
    parse_targets,
    place_translation,
    simulate,
)
from tests.fakes import audio, secrets
from tests.fakes.audio import REPO

NO_CREDENTIALS = {"palabra_api_key": None, "palabra_client_id": None, "palabra_client_secret": None}


@pytest.fixture
def settings_without_palabra(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    return load_settings(**NO_CREDENTIALS)


def options(tmp_path, **overrides) -> Options:
    values = {
        "input": audio.SAMPLE_EN,
        "targets": "es,fr",
        "out": tmp_path / "out",
        "speed": 4.0,
        "progress": io.StringIO(),
    }
    values.update(overrides)
    return Options(**values)


async def test_simulate_sample_against_emulator(tmp_path, settings_without_palabra):
    opts = options(tmp_path)
    result = await simulate(opts, settings_without_palabra)

    reference = audio.fixture_signal(audio.SAMPLE_EN)
    regions = audio.speech_regions(reference, 48000)
    assert len(regions) >= 3  # the sample's sentences, found independently of the product
    for language in ("es", "fr"):
        pcm, fmt = read_wav(result.wavs[language])
        assert (fmt.rate, fmt.channels) == (48000, 2)
        translated = audio.mono(pcm, 2)
        assert len(translated) == pytest.approx(len(reference), abs=480)
        match = audio.xcorr(reference, translated, max_lag=48000)
        print(
            f"{language}: peak normalised cross-correlation {match.peak:.4f} at lag "
            f"{match.lag_seconds(48000) * 1000:.1f} ms"
        )
        assert match.peak >= 0.9
        assert abs(match.lag_seconds(48000)) < 0.05

    records = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    assert len(records) == len(regions) == result.utterances
    for record, (start, end) in zip(records, regions, strict=True):
        assert record["start"] == pytest.approx(start, abs=0.1) and record["end"] == pytest.approx(end, abs=0.1)
        assert record["language"] == "en" and record["text"]
        assert set(record["translations"]) == {"es", "fr"} and all(record["translations"].values())
        assert record["audio_start"] == {
            "es": pytest.approx(record["start"], abs=0.001),
            "fr": pytest.approx(record["start"], abs=0.001),
        }
    srt = result.srt.read_text()
    assert srt.count(" --> ") == len(records)
    assert f"{srt_time(records[0]['start'])} --> {srt_time(records[0]['end'])}" in srt

    progress = opts.progress.getvalue()
    assert "bundled Palabra emulator at http://127.0.0.1:" in progress and "4x real time" in progress
    assert f"{len(records)} utterances" in progress.splitlines()[-1]
    # The total is the file's length, not the file plus the trailing silence streamed after it.
    seconds = len(reference) / 48000
    assert progress.splitlines()[-1].startswith(f"streamed {seconds:5.1f} / {seconds:.1f} s,")


async def test_silence_gives_silent_outputs_and_empty_transcript(tmp_path, settings_without_palabra):
    quiet = write_wav(tmp_path / "quiet.wav", bytes(48000 * 4), 48000, 2)
    result = await simulate(options(tmp_path, input=quiet, targets="de", speed=8), settings_without_palabra)
    pcm, _ = read_wav(result.wavs["de"])
    assert len(pcm) == 48000 * 4 and not any(pcm)
    assert result.transcript.read_text() == "" and result.utterances == 0


async def test_simulate_uses_configured_palabra_credentials(tmp_path, monkeypatch):
    """With credentials in the settings, simulate talks to PALABRA_API_URL (here an emulator standing in
    for Palabra, with an app's client id + secret) in real time, and deletes the REST session after."""
    from bot.palabra.emulator.app import serve
    from bot.palabra.emulator.config import EmulatorConfig

    monkeypatch.chdir(tmp_path)
    burst = np.concatenate(
        [audio.silence(0.4, 48000), audio.sine(300, 0.6, 48000, amplitude=0.3), audio.silence(0.5, 48000)]
    )
    source = write_wav(tmp_path / "burst.wav", audio.to_pcm(burst, channels=2), 48000, 2)
    config = EmulatorConfig(client_credentials={secrets.PALABRA_CLIENT_ID: secrets.PALABRA_CLIENT_SECRET})
    async with serve(config) as palabra:
        settings = load_settings(
            palabra_api_key=None,
            palabra_client_id=secrets.PALABRA_CLIENT_ID,
            palabra_client_secret=secrets.PALABRA_CLIENT_SECRET,
            palabra_api_url=palabra.base_url,
        )
        opts = options(tmp_path, input=source, targets="es", speed=1.0)
        result = await simulate(opts, settings)
        assert palabra.state.sessions == {}  # the streaming session's REST session was deleted
        assert len(palabra.state.streams) == 1
    progress = opts.progress.getvalue()
    assert f"using Palabra at {palabra.base_url}, client {secrets.PALABRA_CLIENT_ID}" in progress
    assert secrets.PALABRA_CLIENT_SECRET not in progress
    assert result.utterances == 1
    assert progress.splitlines()[-1].endswith(", 1 utterance") and result.summary().startswith("1 utterance from")
    pcm, _ = read_wav(result.wavs["es"])
    assert audio.xcorr(burst, audio.mono(pcm, 2), max_lag=4800).peak >= 0.9


def test_input_conversion_is_the_bots_path():
    tone = audio.sine(440, 1.0, 48000, amplitude=0.5)
    session = convert_input(audio.to_pcm(tone, channels=2))
    assert len(session) == round((1.0 + TRAILING_SILENCE_S) * 16000) * 2
    converted = audio.from_pcm(session)
    assert audio.peak_frequency(converted[:16000], 16000) == pytest.approx(440, abs=2)
    assert audio.rms(converted[500:15500]) == pytest.approx(audio.rms(tone), rel=0.01)
    assert audio.rms(converted[16500:]) < 1e-4  # the trailing silence


def test_overlapping_translations_are_moved_later_not_cut():
    # 24 kHz mono speech: the first utterance's audio (1.5 s) is longer than the gap to the second (1 s).
    first, second = audio.noise(1.5, 24000, seed=1), audio.noise(0.5, 24000, seed=2)
    utterances = [
        Utterance("a", start=0.2, end=1.0, audio={"es": bytearray(audio.to_pcm(first))}),
        Utterance("b", start=1.2, end=1.8, audio={"es": bytearray(audio.to_pcm(second))}),
        Utterance("c", start=5.0, end=6.0, audio={"fr": bytearray(audio.to_pcm(second))}),
    ]
    pcm, placed = place_translation(utterances, "es", input_seconds=3.0)
    assert placed == {"a": pytest.approx(0.2), "b": pytest.approx(1.7)}
    assert len(pcm) == 3 * 48000 * 4  # padded to the input's length
    expected = bytearray(len(pcm))
    for signal, at in ((first, 0.2), (second, 1.7)):
        converter = palabra_to_discord()
        piece = converter.process(audio.to_pcm(signal)) + converter.flush()
        offset = round(at * 48000) * 4
        assert pcm[offset : offset + len(piece)] == piece  # each utterance whole, where it was placed
        expected[offset : offset + len(piece)] = piece
    assert pcm == bytes(expected)  # and nothing else: silence around them


def test_targets_and_languages_are_checked():
    assert parse_targets(" es, FR ,es,, pt_BR") == ["es", "fr", "pt-br"]
    with pytest.raises(SimulationError, match="at least one"):
        parse_targets(" , ")
    with pytest.raises(SimulationError, match="not a language code"):
        build_session_task("en", ["e$"])
    with pytest.raises(SimulationError, match="not a language code"):
        build_session_task("english!", ["es"])
    _, warnings = build_session_task("en", ["es", "qq"])
    assert any("'qq'" in w for w in warnings)


async def test_error_paths(tmp_path, settings_without_palabra):
    with pytest.raises(AudioFileError, match="not found"):
        await simulate(options(tmp_path, input=tmp_path / "missing.ogg"), settings_without_palabra)
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\x00not audio" * 100)
    with pytest.raises(AudioFileError, match="cannot read audio"):
        await simulate(options(tmp_path, input=garbage), settings_without_palabra)
    with pytest.raises(SimulationError, match="positive"):
        await simulate(options(tmp_path, speed=0), settings_without_palabra)
    assert not (tmp_path / "out").exists()


async def test_speed_is_refused_against_real_palabra(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(palabra_api_key=secrets.PALABRA_API_KEY, palabra_api_url="http://127.0.0.1:9")
    with pytest.raises(SimulationError, match="only with the bundled emulator"):
        await simulate(options(tmp_path, speed=2), settings)


def run_cli(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALABRA_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "bot", "simulate", *map(str, args)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_cli_run_at_high_speed(tmp_path):
    out = tmp_path / "cli-out"
    done = run_cli(tmp_path, audio.SPEECH_A, "--source", "en", "--targets", "es", "--out", out, "--speed", "8")
    assert done.returncode == 0, done.stderr
    assert "bundled Palabra emulator" in done.stderr and "streamed" in done.stderr
    assert str(out / "es.wav") in done.stdout and "transcript.jsonl" in done.stdout
    reference = audio.fixture_signal(audio.SPEECH_A)
    pcm, _ = read_wav(out / "es.wav")
    assert audio.xcorr(reference, audio.mono(pcm, 2), max_lag=48000).peak >= 0.9
    lines = (out / "transcript.jsonl").read_text().splitlines()
    assert len(lines) == len(audio.speech_regions(reference, 48000))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.ogg", "--targets", "es"], "audio file not found"),
        ([audio.SPEECH_A, "--targets", "e$"], "not a language code"),
        ([audio.SPEECH_A, "--targets", "es", "--speed", "-1"], "--speed must be a positive number"),
    ],
    ids=["missing-file", "bad-language", "bad-speed"],
)
def test_cli_errors(tmp_path, args, message):
    done = run_cli(tmp_path, *args, "--out", tmp_path / "o")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_out_pointing_at_a_file_fails_before_any_audio_is_streamed(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    done = run_cli(tmp_path, audio.SPEECH_A, "--targets", "es", "--out", blocker, "--speed", "8")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    refusal = f"error: cannot create the output directory {blocker}: {blocker} is a file"
    assert done.stderr.strip().splitlines() == [refusal]


def test_cli_unknown_target_is_a_warning_then_the_servers_answer(tmp_path):
    done = run_cli(tmp_path, audio.SPEECH_A, "--targets", "es,qq", "--out", tmp_path / "o", "--speed", "8")
    assert "warning: target language 'qq' is not in Palabra's known list" in done.stderr
    assert done.returncode == 2 and "qq" in done.stderr.splitlines()[-1]  # the emulator refuses it
    assert "Traceback" not in done.stderr


def test_progress_counts_the_file_and_calls_the_trailing_silence_finishing():
    import io

    from bot.simulate import Progress

    stream = io.StringIO()
    progress = Progress(stream, total_s=2.0)
    progress.update(2.4, 1)
    progress.update(2.5, 2, final=True)
    assert stream.getvalue().splitlines() == [
        "streamed   2.0 / 2.0 s, 1 utterance, finishing the last utterance",
        "streamed   2.0 / 2.0 s, 2 utterances",
    ]
