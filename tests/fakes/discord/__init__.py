"""A fake Discord on 127.0.0.1 that unmodified discord.py 2.7.1 clients connect to: REST, the main
gateway, the voice gateway v8 over TLS with DAVE (the fake is the MLS external sender), a UDP SFU,
and simulated human users who speak and hear the real wire format.

Quick start::

    from tests.fakes import secrets
    from tests.fakes.discord import FakeDiscord, running_clients

    async with FakeDiscord() as fake:                       # one guild, 3 bots, channels below
        async with running_clients(fake) as (listener, speaker_1, speaker_2):
            alice = await fake.add_user("Alice")
            await alice.join("Voice A")                      # voice state + UDP + DAVE group
            vc = await listener.get_channel(fake.channel("Voice A").id).connect()
            await alice.wait_dave_ready(members=2)
            report = await alice.speak(pcm_48k_stereo)       # real-time paced
            ...                                              # the bot's receiver hears it
            alice.recording()                                # {sender id: PCM} of what Alice heard

The world (`FakeDiscord(...)` keywords):
- `bot_tokens` (default: `secrets.DISCORD_TOKEN` then `secrets.SPEAKER_TOKENS`): each a bot user with
  its own application id; `fake.bots`, `fake.bot(token)`, `fake.account_by_token(token)`.
- `voice_channels` ("Voice A", "Voice B", "Voice C"), `text_channels` ("general");
  `fake.channel(name) -> Channel` (`.id`), `fake.guild` (`.id`, `.channels`, `.members`,
  `.voice_states`), `fake.owner` (guild owner account), roles `@everyone`, `Bots`, `Admins`
  (Manage Server).
- `late_speaking_packets=N`: the server holds back every SPEAKING (op 5) SSRC mapping until the
  sender's Nth RTP packet (receivers must cope with packets before the mapping).
- `relay_extension=True`: like Discord's SFU, relayed packets that came without a header extension
  (discord.py sends none) get one (0x90, 0xBEDE, audio level); False relays them unchanged.
- `realism=SEED` (default None = deterministic, in order): the adversarial mode of
  `tests.fakes.discord.realism`, every choice from one seeded RNG (`fake.realism.log` lists them):
  bots ready at different times (READY 0-0.3 s for the first bot, 0.8-3 s for the others, GUILD_CREATE
  up to 0.5 s later), op 5 on time / only after the sender's Nth packet / never, either order of
  VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE on a connected bot's repeated op 4, and one of five
  answers to a voice resume. Tests take seeds from the `realism_seed` fixture (tests/conftest.py,
  three seeds); `fake.realism.forced_server_update_first` pins the update order.
- `udp_idle_timeout_s=T` (default None): like a NAT or Discord's SFU, a bot client whose address sent
  no datagram for T seconds is relayed nothing until it sends again (`fake.voice.stats.expired`).

Running discord.py (`tests.fakes.discord.clients`):
- `fake.point_discord_py()` points discord.py (process-wide) at the fake through the product's
  `bot.voice.adapter.point_discord_py_at(fake.api_base, fake.gateway_url)`; `running_clients` calls it.
- `async with running_clients(fake, tokens=None, *, factory=None, timeout=10) as clients:` starts one
  client per token (default all bots), waits for READY + GUILD_CREATE, closes them on exit.
  `factory()` builds each client (e.g. one with an `app_commands.CommandTree`); use
  `client_kwargs()` (= `fake.client_kwargs()`: default intents, `guild_ready_timeout=0.1`) when
  building your own.
- TLS: the voice gateway is `wss://127.0.0.1:<port>` with a certificate from a trustme CA; clients
  trust it through `SSL_CERT_FILE`, which `FakeDiscord.start()` sets (bundle = test CA + system CAs)
  before any client session exists. aiohttp 3.14 builds its default SSL context when it is first
  imported, so the fake also loads the bundle into that context if aiohttp was imported earlier
  (see `tls.py`). Product code needs no "insecure" switch; a test proves a fresh process trusts the
  fake with SSL_CERT_FILE alone (and fails without it).

Voice (`fake.voice`, a `VoiceServer`):
- `fake.voice.endpoint` ("127.0.0.1:<port>"), `.udp_port`, `.stats` (received, relayed, dropped,
  ignored, discoveries, keepalives = non-RTP datagrams from a known client, expired),
  `.events` [(user id, op)] of every client message, `.resume_answers` [(user id, answer)], `.rooms[channel_id]`
  (`.sessions`, `.coordinator` = the channel's `DaveCoordinator`), `.session_of(user_id)`
  (`.ssrc`, `.secret_key`, `.mode`).
- Modes offered: `["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]` (discord.py picks
  XChaCha20; simulated users use AES-256-GCM); op 4 carries `dave_protocol_version: 1`.
- The SFU decrypts each sender's RTP with its key and re-encrypts extension + DAVE payload + padding
  unchanged for every other member of the channel: sender SSRC and timestamp kept, each receiver
  gets its own view of the sequence numbers (a per-receiver offset; gaps preserved) and its own
  nonce counter. Non-RTP datagrams (keepalives, RTCP) are ignored; a member who left gets nothing.
- `tests.fakes.discord.receive.RawSocketRecorder(vc)`: a reference receiver on discord.py's raw UDP
  hook (`vc._connection.add_socket_listener`) that decodes one sender's audio the documented way
  (transport, padding, DAVE with `vc._connection.dave_session`, Opus) — an oracle for receiver tests.
- `await fake.close_voice(user_id, 4015, resume=None)`: discord.py resumes with op 7, answered as
  `resume` says (`realism.RESUME_*`; default the realism's choice, else "full"): "full" = op 9, then
  op 4 again (discord.py 2.7.1 needs it, then starts a new DAVE session whose leaf replaces the old
  one); "resumed_only" = op 9 alone; "late" = both after 4 s; "silent" = nothing; "invalid" = close
  4006. `4006`: the session is invalidated; discord.py leaves and reconnects with a new identify.
  NOTE (discord.py 2.7.1): on that path its UDP reader thread may sit in a 30 s `select()` on the
  closed socket's descriptor, by then reused; stock clients need `connect(timeout=...)` > 30 s; the
  product adapter's socket wakes it on close and releases the descriptor late.
- `await fake.change_voice_server(user_id) -> endpoint`: the bot's call moves to a new voice server
  (another TLS port and UDP socket): VOICE_SERVER_UPDATE with the new endpoint while connected; the
  old server refuses the session (identify there closes 4006).
- `await fake.voice.downgrade(channel_id)`: op 21 (protocol 0) -> 23 -> 22; clients send plain Opus.
  `await fake.voice.upgrade(channel_id)`: op 24 (epoch 1); everyone re-initialises and a new group
  forms (27-30, 22/23). Simulated users follow both (`user.protocol_version`).
- `await fake.move_member(user_id, channel)`, `await fake.disconnect_member(user_id)` (kick: no
  channel + voice socket closed 4014). Bots' own op 4 (connect/leave/move) works as on Discord.

Simulated users (`tests.fakes.discord.users.FakeUser`, from `await fake.add_user(name, admin=False)`):
- `await user.join(channel_id_or_name)`, `await user.leave()`, `user.id`, `user.ssrc`,
  `user.dave` (its `davey.DaveSession`), `await user.wait_dave_ready(timeout=10, members=None)`.
- `await user.speak(pcm, *, speaking="early"|"late"|"never", late_after=10, padding_fraction=0.0,
  extension_fraction=0.0, silence_frames=5, seed=0) -> SpeechReport` (`started_at` loop time,
  `frames`, `padded`, `extended`, `dave_encrypted`): `pcm` is 48 kHz stereo s16le; 20 ms Opus
  frames, DAVE-encrypted once the group is ready, RTP padding (P bit, 1-15 bytes) and one-byte
  header extensions (0xBEDE, audio level id 1) on the given fractions of packets, then 5 x F8 FF FE.
- `user.recording() -> {sender_id: bytes}` / `user.heard(sender_id) -> bytes`: what the user heard
  (transport- and DAVE-decrypted, Opus-decoded), 48 kHz stereo s16le on the user's timeline: sample 0
  is `user.joined_at` (loop time). `user.stats` counts packets, transport failures, DAVE failures (DAVE
  frames that did not decrypt), `unencrypted` (plain frames dropped while DAVE was required — normal
  right after a join), Opus errors.
  `user.speaking_events` lists every op 5 it received with the packet count at that moment.

Gateway, events and interactions:
- `await fake.dispatch(bot_account_or_id, "EVENT_NAME", data)`: any event to one bot.
- `await fake.drop_gateway(bot, code=4000)`: the client resumes (op 6); `fake.gateway.resumes`.
- `fake.gateway.hold_guilds()` / `.release_guilds()`: identifies get READY (guilds unavailable) at once
  but GUILD_CREATE only once released (a client that has just come online, before it has its guilds).
- `fake.gateway.hold_logins(*bot_ids)` / `.release_logins()`: those bots' identifies get READY only
  once released (a slow login).
- Sharding as on Discord: IDENTIFY's `shard: [id, count]` (default [0, 1]); each shard session gets
  READY (with `shard`) and GUILD_CREATE for, and events of, only the guilds with `(guild_id >> 22) %
  count == id` (`fake.dispatch` and broadcasts pick the session of the payload's guild). 4010 closes
  a shard outside 0..count-1, 4011 a bot in more than `fake.gateway.max_guilds_per_shard` (2500)
  guilds per shard. `fake.gateway.identified` [(bot id, (id, count))], `.refused` [(bot id, code)],
  `.session_of(bot_id, guild_id)`, `.shards_of(bot_id)`, `.shard_sessions[(bot_id, shard_id)]`
  (`.sessions[bot_id]` is a bot's latest session, whatever its shard). `await fake.add_guild(name,
  voice_channels=("Talk",), shard=(1, 2))` makes a guild on shard 1 of 2 (`snowflake_on_shard`);
  `await fake.add_user(name, guild=g)` a member of it, who joins `g`'s voice channels by name.
- `fake.interaction_payload(bot=, user=, channel=, name=, options={...}, subcommand=None, group=None,
  locale="en-US")`: a real application-command INTERACTION_CREATE payload (type 2, member with
  permissions, guild_id, channel_id, token); option values str/int/float/bool, a `Channel` (type 7,
  resolved) or a user (type 6, resolved); `focused="source"` makes it an autocomplete interaction
  (type 4) — the answer is `record.responses[0]` == {"type": 8, "data": {"choices": [...]}}.
- `record = await fake.slash_command(bot, user, channel, "interpret", subcommand="start",
  options={"source": "en"})` dispatches it and returns an `InteractionRecord`;
  `await fake.wait_for_response(record, timeout=5)`; then `record.response_type` (4, 5, ...),
  `record.ephemeral`, `record.responses` (callback bodies), `record.original` (a `StoredMessage`,
  with `.edits`), `record.followups`, `record.text()` (all visible text incl. embeds).

Channels and permissions (`model.py`, `channels.py`):
- Categories (type 4; `guild.add_channel(name, CATEGORY)` before clients connect, or
  `await fake.add_channel(name, type, parent=category)` after: CHANNEL_CREATE), `channel.parent_id`.
- `await fake.set_overwrite(channel, role_or_account_or_user, allow=bits, deny=bits)`: a channel
  permission overwrite as an admin sets it (CHANNEL_UPDATE); allow = deny = 0 removes it. Channel
  payloads carry their overwrites, so discord.py's `permissions_for` sees them.
- `guild.channel_permissions_of(account, channel)`: Discord's computation (base roles, @everyone
  overwrite, role overwrites, member overwrite; no View Channel = nothing). The fake enforces it like
  Discord (403, code 50013 Missing Permissions): sending messages (View Channel + Send Messages, Attach
  Files with files), creating and listing channel webhooks (Manage Webhooks), creating channels.
  Interaction payloads' `app_permissions` are the bot's in the interaction's channel.
- `POST /guilds/{id}/channels` (Manage Channels in the parent category, or the server): a channel in a
  category without overwrites of its own takes the category's; `fake.rest.channels.created` lists them.
  `GET /guilds/{id}/channels`.
- `fake.remove_member(account)` before a bot connects: it is not in the guild (READY and GUILD_CREATE
  carry only the guilds an account is a member of, `fake.guilds_of(account)`).

REST (`http://127.0.0.1:<port>/api/v10`, every response exactly `Content-Type: application/json`,
X-RateLimit-* headers):
- `fake.messages(channel_id_or_name, include_deleted=False) -> [StoredMessage]` (`.content`,
  `.embeds`, `.flags`, `.files` [Attachment(filename, content_type, data)], `.edits`, `.deleted`,
  `.data` = the JSON returned); messages are created/edited/deleted by bots, webhooks (execute with
  `username`/`avatar_url`, `?wait=true`, edit webhook message) and interaction responses/followups.
- `fake.rest.webhooks`, `fake.commands(bot, guild=False)` (registered application commands, global or
  guild), `fake.rest.requests` [(method, path)].
- `fake.rate_limits.inject("POST", r"^/channels/\\d+/messages$", retry_after=0.25, count=1)`: the next
  matching requests answer 429 (with the headers discord.py needs to retry; `is_global=True` for a
  global limit); `fake.rate_limits.hits` [(method, path, monotonic time)].
- `fake.rest.delays.inject("POST", r"^/webhooks/", seconds=0.3, count=1)`: the next matching requests
  are handled that long after they arrive (a client's request stays in flight); `.held` lists them.

DAVE without networking (`tests.fakes.discord.dave`, for unit tests):
- `dave_group([uid, ...], channel_id=...) -> {uid: davey.DaveSession}`: sessions sharing one ready
  group (`encrypt_opus` in one, `decrypt(sender_id, davey.MediaType.audio, frame)` in the others).
- `LocalDaveGroup(channel_id)`: `.join(uid)`, `.leave(uid)`, `.reinit(uid)`, `.sessions`.
- `DaveCoordinator` (sans-I/O external sender) and `ExternalSender` (P-256 key, signed proposals).
"""

from tests.fakes.discord.clients import client_kwargs, running_clients, wait_ready
from tests.fakes.discord.dave import DaveCoordinator, LocalDaveGroup, dave_group
from tests.fakes.discord.records import InteractionRecord, StoredMessage
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.users import FakeUser, SpeechReport, ensure_opus

__all__ = [
    "DaveCoordinator",
    "FakeDiscord",
    "FakeUser",
    "InteractionRecord",
    "LocalDaveGroup",
    "SpeechReport",
    "StoredMessage",
    "client_kwargs",
    "dave_group",
    "ensure_opus",
    "running_clients",
    "wait_ready",
]
