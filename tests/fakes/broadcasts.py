"""Palabra-side set-up shared by the broadcast tests (service and cog): an emulator accepting the test
app credentials, `Services` wired as `run` builds them, and driving a broadcast's status lifecycle."""

from __future__ import annotations

import contextlib

import httpx

from bot.broadcasts.service import BroadcastService
from bot.db import Database, upgrade_to_head
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.rest import PalabraRest
from bot.services import Core, Options, Services
from bot.settings import Settings
from tests.fakes import secrets

CREDENTIALS = Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET)


def app_credentials_emulator():
    """The emulator on loopback, accepting the test ClientID/ClientSecret pair."""
    return serve(EmulatorConfig(client_credentials={secrets.PALABRA_CLIENT_ID: secrets.PALABRA_CLIENT_SECRET}))


@contextlib.asynccontextmanager
async def broadcast_services(database_url: str, api_url: str, *, broadcast_poll_interval_s: float = 0.0):
    """Services as `run` builds them: database migrated, Palabra REST client, BroadcastService set."""
    await upgrade_to_head(database_url)
    database = Database(database_url)
    settings = Settings(
        _env_file=None, discord_token=secrets.DISCORD_TOKEN, database_url=database_url, palabra_api_url=api_url
    )
    rest = PalabraRest(CREDENTIALS, api_url, backoff_base=0.01, max_retries=1)
    core = Core(
        settings, database, CREDENTIALS, rest, options=Options(broadcast_poll_interval_s=broadcast_poll_interval_s)
    )
    services = Services(core, broadcasts=BroadcastService(core))
    try:
        yield services
    finally:
        await rest.aclose()
        await database.close()


async def set_status(emulator, broadcast_id: str, status: str, description: str | None = None) -> None:
    """Move a broadcast through the emulator's status lifecycle (its admin endpoint)."""
    body = {"status": status, **({"description": description} if description else {})}
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post(f"/_emulator/broadcasts/{broadcast_id}/status", json=body)
        response.raise_for_status()
