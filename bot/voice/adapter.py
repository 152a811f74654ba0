"""Every access to discord.py's (and davey's) private or undocumented surface lives here.

Checked against discord.py 2.7.1 and davey 0.1.7 (both pinned exactly in pyproject.toml). Each
function says which private attribute it touches and why; a discord.py upgrade starts by re-reading
this module.
"""

from __future__ import annotations

import contextlib
import socket

import discord
import discord.gateway
import discord.http
import yarl

from bot.voice.transport import AES_GCM, TransportCipher


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
    """A UDP socket that wakes threads blocked in select() on it when it is closed."""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.shutdown(socket.SHUT_RDWR)  # makes a pending select() return (Linux, BSD)
        super().close()


def connection_state_with_hook(voice_client: discord.VoiceClient, hook):
    """A `VoiceConnectionState` whose voice websocket awaits `hook(ws, message)` for every JSON message.

    Why: discord.py ignores ops 5 (SSRC -> user), 11, 12 and 13; the undocumented `hook` keyword of
    `discord.voice_state.VoiceConnectionState` (voice_state.py) is the only way to see them, and it is
    handed to every new voice websocket, so it survives resumes and reconnects.

    Also overrides the private `_create_socket()` (same three steps as 2.7.1's) to use a socket whose
    close() shuts it down first: on a reconnect with a new session (voice close 4006 and similar),
    discord.py closes the UDP socket while its SocketReader thread sits in a 30 s select() on it, so
    IP discovery on the new socket (and all audio, both ways) would stall for up to 30 s.
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    from discord.voice_state import VoiceConnectionState

    class PromptReconnectState(VoiceConnectionState):
        def _create_socket(self) -> None:
            self.socket = _WakingSocket(socket.AF_INET, socket.SOCK_DGRAM)
            self.socket.setblocking(False)
            self._socket_reader.resume()

    return PromptReconnectState(voice_client, hook=hook)


def add_socket_listener(voice_client: discord.VoiceClient, callback) -> None:
    """Receive every UDP datagram: `callback(bytes)` on discord.py's SocketReader thread.

    Why: discord.py has no receive API; `VoiceConnectionState.add_socket_listener` (private `_connection`)
    fans out each datagram. Register only once connected: the reader spins on a missing socket. The
    registration survives reconnects (the reader is paused and resumed, callbacks kept).
    Checked against discord.py 2.7.1 / davey 0.1.7.
    """
    voice_client._connection.add_socket_listener(callback)


def remove_socket_listener(voice_client: discord.VoiceClient, callback) -> None:
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

    supported_modes = (AES_GCM, *discord.VoiceClient.supported_modes)
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
