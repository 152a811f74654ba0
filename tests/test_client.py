from __future__ import annotations

import importlib.util
import logging
import re

import pytest

from bot import client as client_module
from bot.client import EXTENSIONS, InterpreterBot, default_intents
from bot.interpretation.errors import PalabraUnavailable
from bot.interpretation.manager import InterpretationManager
from tests.cogs.conftest import RecordingManager, ephemeral, running_harness, shown

# The product's slash commands: name -> subcommands -> options (a stable interface).
PRODUCT_COMMANDS = {
    "interpret": {"start": {"source", "targets"}, "stop": set(), "status": set(), "overlay": {"language"}},
    "setup": {
        "languages": {"source", "targets"},
        "channel": {"language", "channel"},
        "transcripts": {"channel"},
        "voice": {"language", "voice"},
        "show": set(),
        "check": set(),
        "create-channels": set(),
    },
    "languages": {},
    "privacy": {"optout": None, "optin": None, "delete": None},  # options are ours to choose
    "broadcast": {name: None for name in ("create", "list", "show", "update", "delete", "listen")},
}
# Additions beyond the product list, each on purpose: who may configure, auto-stop, where broadcast
# status changes are announced.
EXTRA_SUBCOMMANDS = {"setup": {"role", "autostop"}, "broadcast": {"announce"}}


class Surprise(Exception):
    """An error nothing in the project expects."""


@pytest.fixture
async def h(tmp_path):
    async with running_harness(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", RecordingManager()) as harness:
        yield harness


def subcommands(command: dict) -> dict[str, dict]:
    return {o["name"]: o for o in command.get("options", []) if o["type"] in (1, 2)}


async def test_registered_commands_match_the_product_and_do_not_collide(h):
    registered = h.fake.commands(h.bot_account)
    names = [c["name"] for c in registered]
    assert len(names) == len(set(names)), f"duplicate command names: {names}"
    expected = {name for name in PRODUCT_COMMANDS if name != "broadcast" or "cogs.broadcast" in EXTENSIONS}
    assert set(names) == expected
    for command in registered:
        subs = subcommands(command)
        assert len(subs) == len([o for o in command.get("options", []) if o["type"] in (1, 2)]), "subcommand collision"
        wanted = PRODUCT_COMMANDS[command["name"]]
        assert set(subs) - set(wanted) <= EXTRA_SUBCOMMANDS.get(command["name"], set())
        assert set(wanted) <= set(subs), f"/{command['name']} lacks {set(wanted) - set(subs)}"
        for sub_name, options in wanted.items():
            if options is None:
                continue
            sub_options = [o["name"] for o in subs[sub_name].get("options", [])]
            assert len(sub_options) == len(set(sub_options))
            assert set(sub_options) == options, f"/{command['name']} {sub_name}"

    # Discord refuses descriptions over 100 characters (and cuts nothing for us).
    def descriptions(options):
        for option in options:
            yield option["description"]
            yield from descriptions(option.get("options", []))

    assert all(1 <= len(d) <= 100 for d in descriptions(registered))
    # What Discord stores is what the tree holds: nothing registered twice, nothing missing.
    assert sorted(c.name for c in h.client.tree.get_commands()) == sorted(names)


def test_extension_list_takes_the_broadcast_cog_only_when_it_exists():
    assert EXTENSIONS[: len(client_module.CORE_EXTENSIONS)] == client_module.CORE_EXTENSIONS
    present = importlib.util.find_spec("cogs.broadcast") is not None
    assert ("cogs.broadcast" in EXTENSIONS) == present
    assert len(set(EXTENSIONS)) == len(EXTENSIONS)


async def test_setup_hook_loads_every_extension(h):
    assert set(h.client.extensions) == set(EXTENSIONS)
    assert {cog.qualified_name for cog in h.client.cogs.values()} >= {"Interpret", "Setup", "Privacy", "Languages"}


def test_intents_need_no_privileged_ones():
    intents = default_intents()
    assert intents.guilds and intents.voice_states
    assert not (intents.members or intents.presences or intents.message_content)


async def test_domain_error_becomes_an_ephemeral_message(h):
    h.manager.fail_with = PalabraUnavailable("Palabra is down for maintenance; try again later.")
    user = await h.fake.add_user("Dana")
    record = await h.command(user, "interpret", "status")
    assert ephemeral(record)
    assert shown(record) == "Palabra is down for maintenance; try again later."


async def test_unexpected_error_gives_a_reference_that_is_logged_with_the_exception(h, caplog):
    h.manager.fail_with = RuntimeError("database exploded at row 42")
    user = await h.fake.add_user("Eve")
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        record = await h.command(user, "interpret", "status")
    assert ephemeral(record)
    text = shown(record)
    match = re.search(r"reference ([0-9a-f]{8})", text)
    assert match, text
    assert "exploded" not in text and "Traceback" not in text
    logged = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info[0] is RuntimeError
    assert "database exploded at row 42" in str(logged[0].exc_info[1])


async def test_unexpected_error_after_deferral_replaces_the_public_placeholder(h, caplog):
    h.manager.fail_with = Surprise("placements")
    user = await h.fake.add_user("Finn")
    await h.join_voice(user, "Voice A")
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        record = await h.command(user, "interpret", "start", targets="es")
    assert record.response_type == 5  # deferred while the manager worked
    assert record.original.deleted, "the public 'thinking…' placeholder must go"
    assert ephemeral(record) and "Something went wrong (reference" in shown(record)
    assert [name for name, _ in h.manager.calls] == ["start"]
    assert any(r.exc_info and r.exc_info[0] is Surprise for r in caplog.records)


async def test_real_manager_errors_reach_the_user(tmp_path):
    """The interpretation manager of the project (not the recording stand-in) behind /interpret stop."""
    async with running_harness(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", real_manager=True) as h:
        assert isinstance(h.services.interpretation, InterpretationManager)
        admin = await h.fake.add_user("Admin", admin=True)
        record = await h.command(admin, "interpret", "stop")
        assert ephemeral(record)
        assert "No interpretation session is running here." in shown(record)


async def test_commands_without_a_manager_say_interpretation_is_unavailable(tmp_path):
    async with running_harness(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}") as h:
        user = await h.fake.add_user("Gil")
        record = await h.command(user, "interpret", "status")
        assert ephemeral(record) and "not available" in shown(record)


def test_client_keeps_the_services_it_was_given():
    from types import SimpleNamespace

    from bot.settings import load_settings

    services = SimpleNamespace(settings=load_settings(_env_file=None, shard_count=4, shard_ids="1,3"))
    bot = InterpreterBot(services)  # type: ignore[arg-type]
    assert bot.services is services
    assert isinstance(bot.tree, client_module.InterpreterTree)
    assert (bot.shard_ids, bot.shard_count) == ([1, 3], 4)  # exactly this process's shards
