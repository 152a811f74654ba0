"""Every access to discord.py's (and davey's) private or undocumented surface lives here.

Checked against discord.py 2.7.1 and davey 0.1.7 (both pinned exactly in pyproject.toml). Each
function says which private attribute it touches and why; a discord.py upgrade starts by re-reading
this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from discord.errors import ConnectionClosed
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from bot.voice import gateway as voice_gateway
from bot.voice.errors import VoiceGatewayError
from bot.voice.gateway import ResumeWatch
from bot.voice.transport import AES_GCM, TransportCipher

if TYPE_CHECKING:
    from discord.types.voice import SupportedModes

log = logging.getLogger(__name__)

# How long a voice resume (after close 4015) may take before we connect afresh. discord.py resumes in
# milliseconds on loopback and well under a second against Discord; 2 s leaves room for a slow TLS
# handshake and keeps the gap people hear, fallback included, under 3 s.
RESUME_GRACE_S = 2.0

SOCKET_RELEASE_DELAY_S = 1.0

# discord.voice_state is an undocumented module; the receiver names the type only through this alias.
ConnectionState = VoiceConnectionState

VoiceHook = Callable[[Any, dict[str, Any]], Awaitable[None]]
SocketCallback = Callable[[bytes], None]


def point_discord_py_at(api_base: str, gateway_url: str | None) -> None:
    """Send discord.py's REST and gateway traffic to `api_base` / `gateway_url`.

    `Route.BASE` (http.py) and `DiscordWebSocket.DEFAULT_GATEWAY` (gateway.py) are class attributes
    read on every request/connect in 2.7.1; discord.py has no public option for either. Used for an
    HTTP rate-limit proxy or gateway proxy (DISCORD_API_BASE / DISCORD_GATEWAY_URL) and by the tests'
    fake Discord.
    """
    discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


# ---- voice receive (all checked against discord.py 2.7.1 / davey 0.1.7) -------------------------------


class _WakingSocket(socket.socket):
    """A UDP socket that wakes threads blocked in select() on it when it is closed, and gives its
    descriptor back only a moment later.

    Why late: discord.py's SocketReader evaluates `state.socket`, then select()s on its descriptor.
    If the descriptor were released at once, the socket created next (or a websocket's) usually gets
    the same number, and a select() entered in between waits on that one instead: measured as
    reconnects that hear nothing for 5-30 s. A shut-down socket stays readable, so nothing waits on it.
    """

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.shutdown(socket.SHUT_RDWR)  # makes a pending select() return (Linux, BSD)
        release = threading.Timer(SOCKET_RELEASE_DELAY_S, socket.socket.close, args=(self,))
        release.daemon = True
        release.start()


class _ListenerConnectionState(VoiceConnectionState):
    """discord.py's connection flow with two repairs; every override names the 2.7.1 method it touches.

    1. `hook`: the undocumented keyword of `VoiceConnectionState` (voice_state.py) is the only way to
       see ops 5, 9, 11, 12 and 13; it is handed to every new voice websocket, so it survives resumes
       and reconnects. We tap it for the resume watch, then pass each message on.
    2. Resume (voice close 4015): 2.7.1's `_poll_voice_ws` calls `_connect(resume=True)`, whose
       `_handshake_websocket` waits for a new Session Description (op 4) for the whole connect timeout.
       A server that answers op 9 alone completes here at once (the resumed session keeps its key and
       DAVE group); one that answers late, never, or with a close gets, after at most `resume_grace_s`,
       a new identify on the same session and UDP socket, and if that is refused too discord.py's own
       fresh-connection path (`disconnect(cleanup=False)` then `_connect(resume=False)`, as its poller
       does for unknown close codes).
    3. `_create_socket()` (same three steps as 2.7.1's) uses a socket whose close() shuts it down first:
       on a reconnect with a new session discord.py closes the UDP socket while its SocketReader thread
       sits in a 30 s select() on it, so IP discovery on the new socket (and all audio) would stall.
    4. `disconnect()` (a leave, ours or Discord's) first cancels the voice websocket poller: 2.7.1's
       leaves it running, and a poller in the middle of its own reconnect (after close 4014, a move)
       then overwrites the left state, fails on its stale token and sends a leave (op 4, no channel)
       of its own, which takes a rejoin made meanwhile out of the channel again.
    """

    def __init__(self, voice_client: discord.VoiceClient, hook: VoiceHook, resume_grace_s: float) -> None:
        self._receiver_hook = hook
        self.watch = ResumeWatch(resume_grace_s)
        self._ws_resuming = False
        self.resume_fallbacks = 0  # resumes that did not complete in time and became fresh connections
        super().__init__(voice_client, hook=self._tap)

    async def _tap(self, ws: object, message: dict[str, Any]) -> None:
        try:
            self.watch.observe(voice_gateway.parse(message))
        except VoiceGatewayError:
            pass  # the receiver counts and logs malformed messages
        await self._receiver_hook(ws, message)

    def _create_socket(self) -> None:
        self.socket = _WakingSocket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self._socket_reader.resume()

    async def disconnect(self, *, force: bool = True, cleanup: bool = True, wait: bool = False) -> None:
        # cleanup=False is the poller's own "reconnect afresh" step (never from outside it): keep it.
        if cleanup and self._runner is not None and not self._inside_runner():
            self._runner.cancel()
            self._runner = None
        await super().disconnect(force=force, cleanup=cleanup, wait=wait)

    async def _connect_websocket(self, resume: bool) -> DiscordVoiceWebSocket:
        self._ws_resuming = resume
        return await super()._connect_websocket(resume)

    async def _handshake_websocket(self) -> None:
        if not self._ws_resuming:
            await super()._handshake_websocket()
            return
        try:
            while not self.ip:
                await self.ws.poll_event()
            self.state = ConnectionFlowState.got_ip_discovery
            while self.ws.secret_key is None and not (self.watch.resumed and self.secret_key):
                await self.ws.poll_event()
        except ConnectionClosed as exc:
            # Not ConnectionClosed: 2.7.1's `_inner_connect` would retry the resume four more times,
            # leaving and rejoining the channel in between, with waits of 1-7 s.
            raise _ResumeRefused(exc.code) from None
        if self.ws.secret_key is None:  # op 9 without op 4: the session carries on with its key
            self.ws.secret_key = self.secret_key
        self.state = ConnectionFlowState.connected

    async def _connect(self, reconnect: bool, timeout: float, self_deaf: bool, self_mute: bool, resume: bool) -> None:
        if not resume:
            await super()._connect(reconnect, timeout, self_deaf, self_mute, resume)
            return
        self.watch.begin(asyncio.get_running_loop().time())
        try:
            await asyncio.wait_for(super()._connect(reconnect, timeout, self_deaf, self_mute, True), self.watch.grace_s)
            return
        except _CONNECT_FAILURES as exc:
            why = _failure(exc)
        self.resume_fallbacks += 1
        seen = "op 9 seen" if self.watch.resumed else "no op 9"
        log.warning(
            "voice resume did not complete within %.1f s (%s, %s); identifying afresh", self.watch.grace_s, why, seen
        )
        if await self._identify_afresh():
            return
        log.warning("voice: a new identify was refused too; leaving and rejoining the channel")
        await self.disconnect(cleanup=False)
        await super()._connect(reconnect, timeout, self_deaf, self_mute, False)

    async def _identify_afresh(self) -> bool:
        """A new voice websocket with op 0 on the session and token we hold (the documented way on
        after a failed resume), on the same UDP socket; False if the server refuses or stalls."""
        with contextlib.suppress(Exception):
            await self.ws.close()
        try:
            self.ws = await self._connect_websocket(False)
            await asyncio.wait_for(self._handshake_websocket(), self.watch.grace_s)
        except _CONNECT_FAILURES as exc:
            log.info("voice: identify after the failed resume did not complete (%s)", _failure(exc))
            return False
        return True


class _ResumeRefused(Exception):
    def __init__(self, code: int | None) -> None:
        self.code = code
        super().__init__(f"resume refused with close code {code}")


_CONNECT_FAILURES = (asyncio.TimeoutError, ConnectionClosed, _ResumeRefused, OSError, aiohttp.ClientError)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer"
    if isinstance(exc, ConnectionClosed | _ResumeRefused):
        return f"closed with {exc.code}"
    return f"{type(exc).__name__}: {exc}"


def connection_state_with_hook(
    voice_client: discord.VoiceClient, hook: VoiceHook, *, resume_grace_s: float = RESUME_GRACE_S
) -> VoiceConnectionState:
    """The `VoiceConnectionState` for `VoiceClient.create_connection_state()` (an overridable, documented
    -as-internal method of 2.7.1): `hook(ws, message)` is awaited for every JSON voice-gateway message
    after discord.py handled it, resumes fall back to a fresh connection after `resume_grace_s`, and
    reconnects do not stall in IP discovery (see `_ListenerConnectionState`).
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    return _ListenerConnectionState(voice_client, hook, resume_grace_s)


def resume_fallbacks(voice_client: discord.VoiceClient) -> int:
    """How many voice resumes became fresh connections (private `_connection`, our own state class)."""
    state = voice_client._connection
    return state.resume_fallbacks if isinstance(state, _ListenerConnectionState) else 0


def add_socket_listener(voice_client: discord.VoiceClient, callback: SocketCallback) -> None:
    """Receive every UDP datagram: `callback(bytes)` on discord.py's SocketReader thread.

    Why: discord.py has no receive API; `VoiceConnectionState.add_socket_listener` (private `_connection`)
    fans out each datagram. Register only once connected: the reader spins on a missing socket. The
    registration survives reconnects (the reader is paused and resumed, callbacks kept).
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    voice_client._connection.add_socket_listener(callback)


def remove_socket_listener(voice_client: discord.VoiceClient, callback: SocketCallback) -> None:
    """Undo `add_socket_listener` (same private `_connection`). Checked against discord.py 2.7.1 / davey 0.1.7."""
    voice_client._connection.remove_socket_listener(callback)


def dave_state(voice_client: discord.VoiceClient) -> tuple[object | None, int]:
    """(davey.DaveSession or None, negotiated DAVE protocol version), read fresh on every call.

    Why: receive must DAVE-decrypt with discord.py's own MLS session, which exists only as the private
    `_connection.dave_session`; it appears at SESSION_DESCRIPTION and is re-initialised in place, and
    `_connection.dave_protocol_version` changes with transitions (0 = transport-only).
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    state = voice_client._connection
    return state.dave_session, int(state.dave_protocol_version or 0)


def media_ready(voice_client: discord.VoiceClient) -> bool:
    """Whether audio sent now reaches the channel's DAVE members: a transport-only call, or our DAVE
    group is ready. Between a (re)connect's SESSION_DESCRIPTION and our welcome, discord.py sends plain
    Opus (`_get_voice_packet` encrypts only when `can_encrypt`), which DAVE receivers drop.

    Why: the private `_connection` holds `dave_protocol_version` and `can_encrypt`.
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    state = voice_client._connection
    return not state.dave_protocol_version or bool(state.can_encrypt)


def send_datagram(voice_client: discord.VoiceClient, data: bytes) -> bool:
    """Send one raw UDP datagram on the voice socket (the NAT keepalive); False if not connected.

    Why: `VoiceClient.send_audio_packet` only sends encrypted RTP; `_connection.send_packet` writes to
    the connected UDP socket. Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    state = voice_client._connection
    if not state.is_connected():
        return False
    try:
        state.send_packet(data)
    except OSError:
        return False
    return True


class AesGcmSendMixin:
    """Lets a `discord.VoiceClient` subclass negotiate `aead_aes256_gcm_rtpsize` (Discord's preferred
    mode; discord.py 2.7.1 only implements XChaCha20-Poly1305).

    Why private: discord.py picks the first server-offered mode found in the class attribute
    `supported_modes` (gateway.py `initial_connection`) and encrypts outgoing RTP with the method named
    `_encrypt_<mode>` (voice_client.py `_get_voice_packet`, which passes the 12-byte header and the
    (DAVE-encrypted) Opus frame). Receive decrypts with bot.voice.transport in either mode.
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """

    # discord.py types the attribute as a Literal of the modes it implements; AES-GCM is ours.
    supported_modes: tuple[SupportedModes, ...] = cast(
        "tuple[SupportedModes, ...]", (AES_GCM, *discord.VoiceClient.supported_modes)
    )
    _aes_counter = 0
    _aes_cipher: tuple[bytes, TransportCipher] | None = None

    def _encrypt_aead_aes256_gcm_rtpsize(self, header: bytes, data: bytes) -> bytes:
        key = bytes(self.secret_key)  # type: ignore[attr-defined]
        if self._aes_cipher is None or self._aes_cipher[0] != key:  # a new key after a reconnect
            self._aes_cipher = (key, TransportCipher(AES_GCM, key))
        packet = self._aes_cipher[1].encrypt(bytes(header), bytes(data), self._aes_counter)
        self._aes_counter = (self._aes_counter + 1) & 0xFFFFFFFF
        return packet


# ---- slash-command errors (checked against discord.py 2.7.1) -----------------------------------------


def transformer_display_name(transformer: discord.app_commands.Transformer[discord.Client]) -> str:
    """What a slash-command option expects, as discord.py names it in its own conversion errors.

    Why private: `Transformer._error_display_name` (app_commands/transformers.py) is the only place
    discord.py keeps that name (the class name without "Transformer", an enum's name); there is no
    public equivalent. Checked against discord.py 2.7.1."""
    name = getattr(transformer, "_error_display_name", None)
    return name if isinstance(name, str) else transformer.type.name
