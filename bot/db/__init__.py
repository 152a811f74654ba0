"""The bot's database: SQLAlchemy 2 (async) on SQLite (default) or PostgreSQL, migrated by Alembic.

Getting a database
------------------
    from bot.db import Database, upgrade_to_head

    await upgrade_to_head(settings.database_url)        # `run` does this first; returns a MigrationResult
    db = await Database.connect(settings.database_url)  # DatabaseUnavailable (a ConfigurationError) if unusable
    async with db.session() as s:                       # one unit of work: commits at the end, rolls back on error
        prefs = await guilds.get_or_create_guild_settings(s, guild_id)
    await db.close()

Keep units of work short and free of network calls: on SQLite each one holds the write lock. Objects
stay readable after the unit ends (no lazy loading needed; `GuildSettings.languages` is eager).
All datetimes are timezone-aware UTC; naive datetimes are refused.

Migrations: Alembic scripts live in `migrations/` at the project root (the container image copies them
to its working directory); `upgrade_to_head(url)` is async, idempotent and prints nothing (it logs
"current -> head"); `python -m bot migrate` prints the progress. A new model change needs a new
revision: `alembic revision --autogenerate -m "..."` from the project root.

Start-up recipe for `run` (several processes, one database; bot.ownership does this)
-------------------------------------------------------------------------------------
    claim = instances.ShardClaim(instance_id, shard_ids, shard_count)   # bot.shards: SHARD_IDS / SHARD_COUNT
    async with db.session() as s:
        await instances.register_instance(s, claim)
        rivals = await instances.rival_instances(s, claim)   # others on our shards: alive, or dead?
    ...wait until each rival's heartbeat is stale (dead: go on) or advances (alive: refuse to start)...
    async with db.session() as s:   # before any session of ours runs
        for crashed in await instances.take_over_sessions(s, claim, alive=[...]):
            ...delete crashed.palabra_session_ids at Palabra, resume where people remain...
    # then every HEARTBEAT_SECONDS: instances.heartbeat_instance(s, instance_id) (also the sessions)
    # on a clean stop: instances.remove_instance(s, instance_id)
    # hourly: transcripts.purge_expired_transcripts(s)

Repository modules (every function takes the AsyncSession first)
----------------------------------------------------------------
guilds:      get_guild_settings(s, guild_id) -> GuildSettings | None
             get_or_create_guild_settings(s, guild_id) -> GuildSettings
             update_guild_setting(s, guild_id, name, value) -> GuildSettings
                 # names: EDITABLE_SETTINGS; InvalidSetting otherwise
             set_languages(s, guild_id, source, targets) -> GuildSettings
             set_language_channel(s, guild_id, language, channel_id | None) -> GuildSettings
             clear_language_channel(s, guild_id, language) -> GuildSettings
             set_language_voice(s, guild_id, language, voice_id | None) -> GuildSettings
             GuildSettings.sibling_channels -> {lang: channel_id}, .voices -> {lang: voice_id}
instances:   register_instance(s, ShardClaim(instance_id, shard_ids, shard_count), now=None) -> Instance
             heartbeat_instance(s, instance_id) -> bool   # False: the row is gone, register again
             rival_instances(s, claim) -> list[Instance]   # others on our shards or another shard count
             take_over_sessions(s, claim, *, alive=()) -> list[InterpretationSession]
                 # live sessions of our shards' guilds not owned by `alive`: ended "crashed", leases freed
             remove_instance(s, instance_id), get_instance(s, id), list_instances(s)
             shard_expression(column, shard_count)   # (guild_id >> 22) % shard_count in SQL
sessions:    start_session(s, *, guild_id, source_channel_id, source_language, target_languages,
                           instance_id, text_channel_id=None, started_by_user_id=None) -> InterpretationSession
                 # SessionAlreadyActive if the channel has a live session (use its own unit of work)
             get_session(s, id), live_session_in_channel(s, source_channel_id)
             list_active_sessions(s, *, guild_id=None, instance_id=None) -> list[InterpretationSession]
             mark_stopping(s, id); stop_session(s, id, *, reason="stopped") (also releases its leases)
             add_palabra_session_id(s, id, palabra_session_id)
             palabra_session_ids_since(s, since) -> set[str]   # what recovery may delete if untracked
             heartbeat(s, instance_id) -> int
             mark_crashed_sessions(s, *, instance_id=None, except_instance_id=None, heartbeat_before=None)
                 -> list[InterpretationSession]   # ended with reason "crashed", leases released;
                                                   # delete their .palabra_session_ids at Palabra
             default_instance_id() -> "host:pid"
transcripts: add_transcript_line(s, *, session_id, transcription_id, source_text, speaker_user_id=None,
                                 source_language=None, translations=None, start_time=None, end_time=None)
             add_translation(s, *, session_id, transcription_id, language, text)   # merges; order-independent
             session_transcript(s, session_id) -> list[TranscriptLine]
             purge_expired_transcripts(s, *, now=None) -> int   # per-guild retention days
privacy:     opt_out(s, user_id, guild_id=None) / opt_in(...) -> bool   # guild_id None = everywhere
             is_opted_out(s, user_id, guild_id) -> bool
             opted_out_user_ids(s, guild_id) -> set[int]   # the mixer's exclusion set
             opt_out_scopes(s, user_id) -> list[int | None]
             delete_user_data(s, user_id, guild_id=None, *, keep_choices=False)
                 -> DeletedUserData(transcript_lines, privacy_choices)
leases:      acquire_speaker(s, *, candidates, guild_id, channel_id, language, instance_id, session_id=None)
                 -> SpeakerLease | None   # atomic; acquire each language in its own unit of work
             release_speaker(s, speaker_user_id, guild_id), release_lease(s, lease_id) -> bool
             release_session_leases(s, session_id), release_instance_leases(s, instance_id) -> int
             leases_of_session(s, session_id), busy_speakers(s, guild_id) -> set[int]
broadcasts:  add_broadcast(s, *, guild_id, palabra_broadcast_id, creator_user_id, title,
                           announce_channel_id=None, status=None) -> Broadcast
             list_broadcasts(s, guild_id); find_broadcast(s, guild_id, pid) -> Broadcast | None
             get_broadcast(s, guild_id, pid) -> Broadcast          # NotFound if absent or another guild's
             update_broadcast(s, guild_id, pid, *, status=, title=, announce_channel_id=)
             update_broadcast_status(s, guild_id, pid, status); delete_broadcast(s, guild_id, pid)

Errors (bot.db.errors): DatabaseUnavailable (also a ConfigurationError), InvalidSetting, SessionAlreadyActive,
NotFound, all DatabaseError (a BotError). Messages never contain the database password.
"""

# Imported on first use: the CLI imports bot.db.migrate just to build its parser and should stay fast.
_EXPORTS = {
    "Database": "bot.db.engine",
    "check_connection": "bot.db.engine",
    "create_engine": "bot.db.engine",
    "session_factory": "bot.db.engine",
    "DatabaseError": "bot.db.errors",
    "DatabaseUnavailable": "bot.db.errors",
    "InvalidSetting": "bot.db.errors",
    "NotFound": "bot.db.errors",
    "SessionAlreadyActive": "bot.db.errors",
    "MigrationResult": "bot.db.migrate",
    "upgrade_to_head": "bot.db.migrate",
    "Broadcast": "bot.db.models",
    "GuildLanguage": "bot.db.models",
    "GuildSettings": "bot.db.models",
    "Instance": "bot.db.models",
    "InterpretationSession": "bot.db.models",
    "PrivacyOptOut": "bot.db.models",
    "SpeakerLease": "bot.db.models",
    "TranscriptLine": "bot.db.models",
    "redact_url": "bot.db.urls",
}
_MODULES = ("broadcasts", "guilds", "instances", "leases", "privacy", "sessions", "transcripts")

# Spelled out for tools; tests/db/test_types.py checks it names exactly the two tables above.
__all__ = [
    "Broadcast",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "GuildLanguage",
    "GuildSettings",
    "Instance",
    "InterpretationSession",
    "InvalidSetting",
    "MigrationResult",
    "NotFound",
    "PrivacyOptOut",
    "SessionAlreadyActive",
    "SpeakerLease",
    "TranscriptLine",
    "broadcasts",
    "check_connection",
    "create_engine",
    "guilds",
    "instances",
    "leases",
    "privacy",
    "redact_url",
    "session_factory",
    "sessions",
    "transcripts",
    "upgrade_to_head",
]


def __getattr__(name: str) -> object:
    import importlib

    if name in _MODULES:
        return importlib.import_module(f"bot.db.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bot.db' has no attribute {name!r}")
