"""Live voice interpretation for Discord, powered by Palabra.

The data path shows in the packages: voice (Discord receive/playback) -> audio (DSP) ->
palabra (client + emulator) -> interpretation (sessions, transcripts) -> cogs -> db.
"""

__version__ = "0.1.0"
