"""Building Palabra broadcast bodies from `/broadcast` options: accepted forms and clear refusals."""

from __future__ import annotations

import pytest

from bot.broadcasts.validation import (
    MAX_OUTPUTS,
    InvalidBroadcastInput,
    parse_create,
    parse_outputs,
    parse_update,
)
from tests.fakes.secrets import STREAM_KEY

GOOD = dict(
    title="Friday  show",
    source="en",
    targets="es, fr",
    input_protocol="rtmp_push",
    outputs=f"es=rtmp://live.example.com/app|{STREAM_KEY}; fr=srt://relay.example.com:9000|k2\nhls=original,es",
)


def create(**changes):
    return parse_create(**{**GOOD, **changes})


def test_full_body_matches_palabra_create_shape():
    request = create(voices="es=default_high", delay_s=3, base_volume=1, ducked_volume=0.2, ignore_video=True)
    assert request.body() == {
        "title": "Friday show",
        "original_delay_seconds": 3.0,
        "original_base_volume": 1.0,
        "original_ducked_volume": 0.2,
        "ignore_video": True,
        "input": {"protocol": "rtmp_push"},
        "outputs": [
            {
                "protocol": "rtmp_push",
                "lang_code": "es",
                "server": "rtmp://live.example.com/app",
                "stream_key": STREAM_KEY,
            },
            {"protocol": "srt_push", "lang_code": "fr", "server": "srt://relay.example.com:9000", "stream_key": "k2"},
            {"protocol": "hls_pull", "lang_codes": ["original", "es"]},
        ],
        "translation_pipeline": {
            "transcription": {"source_language": "en"},
            "translations": [
                {"target_language": "es", "speech_generation": {"voice_cloning": False, "voice_id": "default_high"}},
                {"target_language": "fr", "speech_generation": {"voice_cloning": False, "voice_id": "default_low"}},
            ],
        },
    }
    assert request.warnings == ()
    assert request.stream_keys == [STREAM_KEY, "k2"]


def test_descriptions_and_repr_never_show_stream_keys():
    request = create()
    shown = " ".join(o.describe() for o in request.outputs) + repr(request)
    assert STREAM_KEY not in shown and "'k2'" not in shown
    assert "rtmp://live.example.com/app" in shown


def test_an_update_repr_never_shows_stream_keys():
    patch = parse_update(CURRENT, outputs=f"es=rtmp://live.example.com/app|{STREAM_KEY}")
    assert patch.body["outputs"][0]["stream_key"] == STREAM_KEY  # it is in the body Palabra gets ...
    assert STREAM_KEY not in repr(patch)  # ... never in a repr


def test_rtmps_and_ports_accepted_codes_normalised():
    request = create(targets="ES_MX", outputs=f"es-MX=rtmps://live.example.com:443/app|{STREAM_KEY}")
    assert request.outputs[0].body()["lang_code"] == "es-mx"
    assert request.outputs[0].protocol == "rtmp_push"


def test_unknown_language_is_a_warning_not_an_error():
    request = create(targets="es, xx-yy", outputs=f"xx-yy=rtmp://h.example/app|{STREAM_KEY}")
    assert request.targets == ("es", "xx-yy")
    assert any("'xx-yy' is not in Palabra's known list" in w for w in request.warnings)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outputs": "es=http://h.example/app|KEY"}, "not a valid server URL; use rtmp://"),
        ({"outputs": "es=rtmp:///app|KEY"}, "not a valid server URL"),
        ({"outputs": "es=rtmp://h.example:99999/app|KEY"}, "not a valid server URL"),
        ({"outputs": "es=rtmp://user:pw@h.example/app|KEY"}, "not a valid server URL"),
        ({"outputs": "es=srt://h.example|KEY"}, "an SRT server is srt://host:port"),
        (
            {"outputs": "es=rtmp://h.example/app"},
            "output es: the stream key is missing; write `es=rtmp://h.example/app|STREAM_KEY`",
        ),
        ({"outputs": "es=rtmp://h.example/app|  "}, "the stream key is missing"),
        ({"outputs": "es=rtmp://h.example/app|a key"}, "without spaces"),
        ({"outputs": "de=rtmp://h.example/app|KEY"}, "output language 'de' is not one of the targets (es, fr)"),
        ({"outputs": "hls=original,de"}, "'de' is not one of the targets"),
        ({"outputs": "hls=es;hls=fr"}, "only one hls output"),
        ({"outputs": "rtmp://h.example/app|KEY"}, "is not `language=url|stream_key`"),
        ({"outputs": " ; "}, "no outputs"),
        ({"targets": "es, 12"}, "'12' is not a language code"),
        ({"targets": "auto"}, "'auto' is only valid as a source"),
        ({"targets": " , "}, "no target languages"),
        (
            {"targets": ",".join(["es", "fr", "de", "it", "pt", "ru", "ja", "ko", "nl", "pl", "tr"])},
            "11 target languages; at most 10",
        ),
        ({"source": "english!"}, "is not a language code"),
        ({"title": "   "}, "the title is empty"),
        ({"title": "x" * 101}, "at most 100"),
        ({"input_protocol": "webrtc"}, "use one of rtmp_push, srt_push"),
        ({"delay_s": 61}, "delay must be from 0 to 60 seconds"),
        ({"base_volume": 1.5}, "original volume must be from 0 to 1"),
        ({"ducked_volume": -0.1}, "ducked volume must be from 0 to 1"),
        ({"voices": "de=default_low"}, "voice for 'de', which is not a target"),
        ({"voices": "es"}, "is not `language=voice_id`"),
        ({"voices": "es=bad voice!"}, "voice id"),
    ],
)
def test_bad_input_is_refused_with_what_is_accepted(changes, message):
    with pytest.raises(InvalidBroadcastInput) as caught:
        create(**changes)
    assert message in str(caught.value)
    assert STREAM_KEY not in str(caught.value)


def test_too_many_outputs():
    items = ";".join(f"es=rtmp://h{i}.example/app|KEY{i}" for i in range(MAX_OUTPUTS + 1))
    with pytest.raises(InvalidBroadcastInput, match=f"{MAX_OUTPUTS + 1} outputs; at most {MAX_OUTPUTS}"):
        parse_outputs(items, ("es",))
    assert len(parse_outputs(items.rsplit(";", 1)[0], ("es",))) == MAX_OUTPUTS


CURRENT = {
    "id": "b1",
    "title": "Old",
    "outputs": [{"protocol": "hls_pull", "lang_codes": ["original", "es"]}],
    "translation_pipeline": {
        "transcription": {"source_language": "en"},
        "translations": [
            {"target_language": "es", "speech_generation": {"voice_id": "v_es"}},
            {"target_language": "fr"},
        ],
    },
}


def test_update_only_carries_given_options():
    patch = parse_update(CURRENT, title="New", delay_s=2)
    assert patch.body == {"title": "New", "original_delay_seconds": 2.0}


def test_update_targets_rebuild_pipeline_keeping_voices():
    patch = parse_update(CURRENT, targets="es,de", voices="de=v_de")
    translations = patch.body["translation_pipeline"]["translations"]
    assert patch.body["translation_pipeline"]["transcription"] == {"source_language": "en"}
    assert [(t["target_language"], t["speech_generation"]["voice_id"]) for t in translations] == [
        ("es", "v_es"),
        ("de", "v_de"),
    ]


def test_update_refuses_targets_that_orphan_outputs_and_empty_updates():
    with pytest.raises(InvalidBroadcastInput, match="outputs still use es"):
        parse_update(CURRENT, targets="fr")
    patch = parse_update(CURRENT, targets="fr", outputs=f"fr=rtmp://h.example/app|{STREAM_KEY}")
    assert patch.body["outputs"][0]["lang_code"] == "fr" and patch.stream_keys == (STREAM_KEY,)
    with pytest.raises(InvalidBroadcastInput, match="nothing to update"):
        parse_update(CURRENT)
