import pytest

from bot.errors import ConfigurationError
from bot.logs import redact
from bot.palabra.credentials import Credentials
from bot.settings import load_settings
from tests.fakes import secrets


def test_defaults_match_the_product_brief(monkeypatch):
    for name in ("DATABASE_URL", "PALABRA_API_URL", "DISCORD_API_BASE", "HTTP_PORT", "LOG_LEVEL", "SPEAKER_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    assert settings.palabra_api_url == "https://api.palabra.ai"
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.http_port == 8080
    assert settings.log_level == "INFO"
    assert settings.speaker_tokens == []


def test_speaker_tokens_are_comma_separated(monkeypatch):
    monkeypatch.setenv("SPEAKER_TOKENS", f" {secrets.SPEAKER_TOKENS[0]} ,{secrets.SPEAKER_TOKENS[1]},")
    settings = load_settings(_env_file=None)
    assert [t.get_secret_value() for t in settings.speaker_tokens] == secrets.SPEAKER_TOKENS


def test_invalid_settings_name_the_variable_and_never_echo_secrets(monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "99999")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    monkeypatch.setenv("DISCORD_TOKEN", secrets.DISCORD_TOKEN)
    with pytest.raises(ConfigurationError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert "HTTP_PORT" in message and "LOG_LEVEL" in message
    assert secrets.DISCORD_TOKEN not in message


def test_palabra_pair_must_be_complete(monkeypatch):
    monkeypatch.setenv("PALABRA_CLIENT_ID", secrets.PALABRA_CLIENT_ID)
    monkeypatch.delenv("PALABRA_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("PALABRA_API_KEY", raising=False)
    settings = load_settings(_env_file=None)  # commands that do not use Palabra still start
    with pytest.raises(ConfigurationError, match="PALABRA_CLIENT_SECRET"):
        Credentials.from_settings(settings)


def test_an_api_key_with_a_stray_client_id_is_accepted(monkeypatch):
    monkeypatch.setenv("PALABRA_CLIENT_ID", secrets.PALABRA_CLIENT_ID)
    monkeypatch.delenv("PALABRA_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("PALABRA_API_KEY", secrets.PALABRA_API_KEY)
    assert Credentials.from_settings(load_settings(_env_file=None)).kind == "api_key"


def test_database_password_is_hidden_from_repr_and_redacted_once_parsed(monkeypatch):
    from bot.db.urls import parse_database_url

    url = "postgresql://bot:db-pass-7f3a9c@127.0.0.1/bot"
    monkeypatch.setenv("DATABASE_URL", url)
    settings = load_settings(_env_file=None)
    assert "db-pass-7f3a9c" not in repr(settings)
    parse_database_url(settings.database_url)
    assert "db-pass-7f3a9c" not in redact(f"connection to {url} failed")


def test_loaded_secrets_are_redacted_from_any_text(monkeypatch):
    monkeypatch.setenv("PALABRA_CLIENT_ID", secrets.PALABRA_CLIENT_ID)
    monkeypatch.setenv("PALABRA_CLIENT_SECRET", secrets.PALABRA_CLIENT_SECRET)
    load_settings(_env_file=None)
    assert secrets.PALABRA_CLIENT_SECRET not in redact(f"header ClientSecret: {secrets.PALABRA_CLIENT_SECRET}x")


@pytest.mark.parametrize(
    "text",
    [
        f"wss://h/stream?token={secrets.PALABRA_API_KEY}&x=1",
        f"Authorization: Bearer {secrets.PALABRA_API_KEY}",
        f"IDENTIFY {{'token': '{secrets.DISCORD_TOKEN}'}}",
    ],
)
def test_credential_shapes_are_redacted_without_registration(text):
    cleaned = redact(text)
    assert secrets.PALABRA_API_KEY not in cleaned and secrets.DISCORD_TOKEN not in cleaned
    assert "***" in cleaned


def test_stream_keys_inside_broadcast_outputs_are_redacted():
    text = f'{{"value": "es=rtmp://ingest.example/app|{secrets.STREAM_KEY}; hls=original,es"}}'
    cleaned = redact(text)
    assert secrets.STREAM_KEY not in cleaned
    assert "rtmp://ingest.example/app|***" in cleaned and "hls=original,es" in cleaned


def test_shards_default_to_every_shard_of_one(monkeypatch):
    for name in ("SHARD_COUNT", "SHARD_IDS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert (settings.shard_count, settings.shard_ids, settings.own_shard_ids) == (1, None, [0])


def test_shard_ids_are_comma_separated_and_sorted(monkeypatch):
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", " 3, 1 ")
    assert load_settings(_env_file=None).own_shard_ids == [1, 3]
    monkeypatch.setenv("SHARD_IDS", "")
    assert load_settings(_env_file=None).own_shard_ids == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("count", "ids", "message"),
    [
        ("2", "0,2", "SHARD_IDS 2 outside 0..1"),
        ("2", "1,1", "SHARD_IDS lists a shard twice"),
        ("2", "one", "SHARD_IDS: must be comma-separated shard numbers"),
        ("2", "-1", "SHARD_IDS: must be comma-separated shard numbers"),
        ("0", "", "SHARD_COUNT"),
    ],
)
def test_impossible_shards_are_refused_with_the_reason(monkeypatch, count, ids, message):
    monkeypatch.setenv("SHARD_COUNT", count)
    monkeypatch.setenv("SHARD_IDS", ids)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(_env_file=None)


@pytest.mark.parametrize(("value", "idle_pause_s"), [(None, 30.0), ("0", None), ("2", 2.0), ("600", 600.0)])
def test_the_idle_pause_defaults_to_30_s_and_0_turns_it_off(monkeypatch, value, idle_pause_s):
    if value is not None:
        monkeypatch.setenv("PALABRA_IDLE_PAUSE_S", value)
    assert load_settings(_env_file=None).idle_pause_s == idle_pause_s


@pytest.mark.parametrize(
    ("value", "message"),
    [("1", "at least 2 seconds"), ("-1", "greater than or equal to 0"), ("soon", "PALABRA_IDLE_PAUSE_S")],
)
def test_an_idle_pause_that_would_pause_between_sentences_is_refused(monkeypatch, value, message):
    monkeypatch.setenv("PALABRA_IDLE_PAUSE_S", value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(_env_file=None)
