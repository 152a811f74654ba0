"""Broadcast fixtures: the Palabra emulator on loopback, a migrated database of the test's own (SQLite
and PostgreSQL) and a `Services` wired to both, as the bot builds it."""

from __future__ import annotations

import pytest

from tests.fakes.broadcasts import app_credentials_emulator, broadcast_services


@pytest.fixture
async def emulator():
    async with app_credentials_emulator() as running:
        yield running


@pytest.fixture
async def services(isolated_url, emulator):
    async with broadcast_services(isolated_url, emulator.base_url) as built:
        yield built
