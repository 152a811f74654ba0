import logging

import pytest
from pydantic import SecretStr

from bot.errors import ConfigurationError
from bot.logs import redact
from bot.palabra.credentials import Credentials, stream_base_url
from bot.settings import load_settings
from tests.fakes import secrets


def _settings(monkeypatch, **env):
    for name in ("PALABRA_CLIENT_ID", "PALABRA_CLIENT_SECRET", "PALABRA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None)


def test_app_credentials_send_client_headers():
    creds = Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET)
    assert creds.kind == "app"
    assert creds.rest_headers() == {
        "ClientID": secrets.PALABRA_CLIENT_ID,
        "ClientSecret": secrets.PALABRA_CLIENT_SECRET,
    }


def test_api_key_is_sent_as_bearer():
    creds = Credentials.from_api_key(secrets.PALABRA_API_KEY)
    assert creds.kind == "api_key"
    assert isinstance(creds.api_key, SecretStr)
    assert creds.rest_headers() == {"Authorization": f"Bearer {secrets.PALABRA_API_KEY}"}


@pytest.mark.parametrize(
    "creds",
    [
        Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET),
        Credentials.from_api_key(secrets.PALABRA_API_KEY),
    ],
)
def test_repr_and_str_hide_secrets(creds):
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert secrets.PALABRA_CLIENT_SECRET not in text
        assert secrets.PALABRA_API_KEY not in text
    assert "***" in repr(creds)


def test_construction_registers_secrets_for_redaction():
    key = "not-plbr-shaped-but-secret-9876"
    Credentials.from_api_key(key)
    assert redact(f"something with {key} inside") == "something with *** inside"


def test_credentials_are_frozen():
    creds = Credentials.from_api_key(secrets.PALABRA_API_KEY)
    with pytest.raises(AttributeError):
        creds.api_key = SecretStr("x")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"client_id": "", "client_secret": SecretStr("abcdef")}, "PALABRA_CLIENT_ID is empty"),
        ({"client_id": "id", "client_secret": SecretStr("  ")}, "PALABRA_CLIENT_SECRET is empty"),
        ({"client_id": "id", "client_secret": None}, "PALABRA_CLIENT_SECRET is empty"),
        ({"api_key": SecretStr("")}, "PALABRA_API_KEY is empty"),
        ({"api_key": SecretStr("plbr_abc def")}, "whitespace"),
        ({"client_id": "id", "client_secret": SecretStr("abcdef\n")}, "PALABRA_CLIENT_SECRET contains whitespace"),
        ({}, "required"),
        ({"client_id": "id", "client_secret": SecretStr("abcdef"), "api_key": SecretStr("plbr_x")}, "not both"),
    ],
)
def test_invalid_credentials_are_refused_with_a_clear_message(kwargs, fragment):
    with pytest.raises(ConfigurationError, match=fragment) as info:
        Credentials(**kwargs)
    assert "abcdef" not in str(info.value)


def test_api_key_without_prefix_is_a_warning_not_an_error(caplog):
    with caplog.at_level(logging.WARNING, logger="bot.palabra.credentials"):
        creds = Credentials.from_api_key("legacy-shaped-key-0123456789")
    assert creds.kind == "api_key"
    assert any("plbr_" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert all("legacy-shaped-key-0123456789" not in r.getMessage() for r in caplog.records)


def test_from_settings_none_when_nothing_configured(monkeypatch):
    assert Credentials.from_settings(_settings(monkeypatch)) is None


def test_from_settings_app_pair(monkeypatch):
    creds = Credentials.from_settings(
        _settings(
            monkeypatch,
            PALABRA_CLIENT_ID=secrets.PALABRA_CLIENT_ID,
            PALABRA_CLIENT_SECRET=secrets.PALABRA_CLIENT_SECRET,
        )
    )
    assert creds is not None and creds.kind == "app" and creds.client_id == secrets.PALABRA_CLIENT_ID


def test_from_settings_api_key_wins_over_pair(monkeypatch):
    creds = Credentials.from_settings(
        _settings(
            monkeypatch,
            PALABRA_API_KEY=secrets.PALABRA_API_KEY,
            PALABRA_CLIENT_ID=secrets.PALABRA_CLIENT_ID,
            PALABRA_CLIENT_SECRET=secrets.PALABRA_CLIENT_SECRET,
        )
    )
    assert creds is not None and creds.kind == "api_key"
    assert creds.api_key.get_secret_value() == secrets.PALABRA_API_KEY


def test_from_settings_half_pair_is_an_error(monkeypatch):
    with pytest.raises(ConfigurationError, match="PALABRA_CLIENT_SECRET"):
        Credentials.from_settings(_settings(monkeypatch, PALABRA_CLIENT_ID=secrets.PALABRA_CLIENT_ID))


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("https://api.palabra.ai", "wss://streaming.palabra.ai"),
        ("https://api.palabra.ai/", "wss://streaming.palabra.ai"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765"),
        ("https://palabra-proxy.example:8443/", "wss://palabra-proxy.example:8443"),
    ],
)
def test_stream_base_url(api_url, expected):
    assert stream_base_url(api_url) == expected


def test_stream_base_url_rejects_other_schemes():
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        stream_base_url("ftp://example")
