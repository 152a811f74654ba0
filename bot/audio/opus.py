"""libopus through ctypes: a decoder that writes into one reusable buffer and an encoder for speech.

discord.opus.Decoder turns every decoded frame into a Python `array` of ints and back (about half its
cost); here `opus_decode` writes straight into a ctypes buffer and the PCM leaves as one `bytes` copy.

The library is looked up in this order: the libopus that PyAV's wheel bundles (`av.libs/libopus-*.so*`
next to the `av` package), then the system one (`ctypes.util.find_library("opus")`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
import threading
from typing import Literal

from bot.audio.frames import DISCORD_CHANNELS, DISCORD_RATE, FRAME_BYTES, FRAME_SAMPLES  # noqa: F401  (re-exported)
from bot.errors import BotError

SAMPLE_RATE, CHANNELS = DISCORD_RATE, DISCORD_CHANNELS  # Discord voice: 48 kHz stereo
MAX_FRAME_SAMPLES = 5760  # 120 ms, the longest Opus packet
MAX_PACKET_BYTES = 4000

_APPLICATIONS = {"voip": 2048, "audio": 2049, "lowdelay": 2051}
_SIGNALS = {"auto": -1000, "voice": 3001, "music": 3002}
_SET_BITRATE = 4002
_SET_FEC = 4012
_SET_PACKET_LOSS = 4014
_SET_COMPLEXITY = 4010
_SET_SIGNAL = 4024
_SET_BANDWIDTH = 4008
_BANDWIDTHS = {"narrow": 1101, "medium": 1102, "wide": 1103, "superwide": 1104, "full": 1105}

Application = Literal["voip", "audio", "lowdelay"]
Signal = Literal["auto", "voice", "music"]


class OpusUnavailable(BotError):
    """No libopus could be loaded."""


class OpusError(BotError):
    """libopus returned an error code (e.g. a corrupted packet)."""

    def __init__(self, where: str, code: int) -> None:
        self.code = code
        super().__init__(f"{where} failed: {_lib_error_text(code)} (libopus code {code})")


_lib: ctypes.CDLL | None = None
_lib_path: str | None = None
_load_lock = threading.Lock()


def candidate_paths() -> list[str]:
    """Where libopus may be, best first: PyAV's bundled copy, then the system library."""
    paths: list[str] = []
    spec = importlib.util.find_spec("av")
    if spec is not None and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        paths.extend(sorted(glob.glob(os.path.join(site, "av.libs", "libopus-*.so*"))))
    system = ctypes.util.find_library("opus")
    if system:
        paths.append(system)
    return paths


def load() -> ctypes.CDLL:
    """Load libopus once (thread-safe) and declare the functions used here."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _load_lock:
        if _lib is not None:
            return _lib
        errors = []
        for path in candidate_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError as exc:
                errors.append(f"{path}: {exc}")
                continue
            _declare(lib)
            _lib, _lib_path = lib, path
            return lib
        detail = "; ".join(errors) or "none found"
        raise OpusUnavailable(
            "libopus not found: install PyAV (its wheel bundles libopus) or the system package "
            f"(e.g. libopus0). Tried: {detail}"
        )


def library_path() -> str:
    load()
    assert _lib_path is not None
    return _lib_path


def version() -> str:
    return str(load().opus_get_version_string().decode())


def _declare(lib: ctypes.CDLL) -> None:
    c_int_p = ctypes.POINTER(ctypes.c_int)
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, c_int_p]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, c_int_p]
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int32,
    ]
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    # opus_*_ctl are variadic: arguments are passed as given, so no argtypes.
    lib.opus_encoder_ctl.restype = ctypes.c_int
    lib.opus_decoder_ctl.restype = ctypes.c_int


def _lib_error_text(code: int) -> str:
    try:
        return str(load().opus_strerror(code).decode())
    except OpusUnavailable:
        return "libopus unavailable"


def packet_samples(packet: bytes) -> int:
    """Samples per channel the packet decodes to at 48 kHz (negative on a malformed packet)."""
    return int(load().opus_packet_get_nb_samples(packet, len(packet), SAMPLE_RATE))


class Decoder:
    """One Opus stream's decoder (48 kHz stereo s16le). Not thread-safe: one per sender, one thread."""

    def __init__(self) -> None:
        self._lib = load()
        error = ctypes.c_int(0)
        self._state = self._lib.opus_decoder_create(SAMPLE_RATE, CHANNELS, ctypes.byref(error))
        if error.value != 0 or not self._state:
            raise OpusError("opus_decoder_create", error.value)
        self._buffer = ctypes.create_string_buffer(MAX_FRAME_SAMPLES * CHANNELS * 2)
        self._decode = self._lib.opus_decode
        # The PCM leaves as one copy of a slice of this view: a third of what ctypes.string_at costs.
        self._view = memoryview(self._buffer).cast("B")

    def decode(self, packet: bytes) -> bytes:
        """PCM of a whole packet (normally 3840 bytes for 20 ms)."""
        samples = self._decode(self._state, packet, len(packet), self._buffer, MAX_FRAME_SAMPLES, 0)
        if samples < 0:
            raise OpusError("opus_decode", samples)
        return self._view[: samples * 4].tobytes()

    def decode_fec(self, next_packet: bytes, samples: int = FRAME_SAMPLES) -> bytes:
        """Recover the frame *before* `next_packet` from its in-band FEC data (PLC if it has none)."""
        got = self._decode(self._state, next_packet, len(next_packet), self._buffer, samples, 1)
        if got < 0:
            raise OpusError("opus_decode(fec)", got)
        return self._view[: got * 4].tobytes()

    def conceal(self, samples: int = FRAME_SAMPLES) -> bytes:
        """Packet-loss concealment for one missing frame."""
        got = self._decode(self._state, None, 0, self._buffer, samples, 0)
        if got < 0:
            raise OpusError("opus_decode(plc)", got)
        return self._view[: got * 4].tobytes()

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_decoder_destroy(state)


class Encoder:
    """48 kHz stereo s16le -> Opus, with the settings that matter for speech."""

    def __init__(
        self,
        application: Application = "voip",
        bitrate_kbps: int = 64,
        fec: bool = True,
        expected_packet_loss: float = 0.10,
        signal: Signal = "voice",
        complexity: int | None = None,
        bandwidth: str | None = None,
    ) -> None:
        self._lib = load()
        error = ctypes.c_int(0)
        self._state = self._lib.opus_encoder_create(
            SAMPLE_RATE, CHANNELS, _APPLICATIONS[application], ctypes.byref(error)
        )
        if error.value != 0 or not self._state:
            raise OpusError("opus_encoder_create", error.value)
        self._ctl(_SET_BITRATE, bitrate_kbps * 1024)  # discord.py uses kbps * 1024 too
        self._ctl(_SET_FEC, 1 if fec else 0)
        self._ctl(_SET_PACKET_LOSS, min(100, max(0, int(expected_packet_loss * 100))))
        self._ctl(_SET_SIGNAL, _SIGNALS[signal])
        if complexity is not None:
            self._ctl(_SET_COMPLEXITY, complexity)
        if bandwidth is not None:
            self._ctl(_SET_BANDWIDTH, _BANDWIDTHS[bandwidth])  # discord.py forces "full"
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)
        self._encode = self._lib.opus_encode

    def _ctl(self, request: int, value: int) -> None:
        # Variadic: the state pointer must be passed as a pointer, not a (truncated) Python int.
        result = self._lib.opus_encoder_ctl(ctypes.c_void_p(self._state), ctypes.c_int(request), ctypes.c_int(value))
        if result < 0:
            raise OpusError(f"opus_encoder_ctl({request})", result)

    def encode(self, pcm: bytes, samples: int = FRAME_SAMPLES) -> bytes:
        """Encode one frame of interleaved s16le stereo (3840 bytes for 20 ms)."""
        if len(pcm) != samples * CHANNELS * 2:
            raise ValueError(f"expected {samples * CHANNELS * 2} bytes of PCM, got {len(pcm)}")
        size = self._encode(self._state, pcm, samples, self._out, MAX_PACKET_BYTES)
        if size < 0:
            raise OpusError("opus_encode", size)
        return ctypes.string_at(self._out, size)  # .raw would copy the whole 4000-byte buffer first

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_encoder_destroy(state)
