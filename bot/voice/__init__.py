"""Discord voice: DAVE-capable receive, playback and speaker bots on discord.py 2.7.1 + davey.

- `receiver.ListeningVoiceClient` (connect with `channel.connect(cls=...)`) -> `vc.receiver`:
  `frames()` (per-user `jitter.UserFrame`, 48 kHz stereo 20 ms), `events()` (speaking, decryption
  failures, members), `stats()`.
- `playback.TranslationSource`: never-ending source fed 24 kHz mono PCM; `playback.play(vc, source)` sends it on
  the shared 20 ms `playback_clock.PlaybackClock` (nothing encoded or sent for silence).
- `dave_server`: the voice server's DAVE external sender and an in-process group builder (bench, fakes).
- `speakers.SpeakerPool` / `start_speakers()`: extra bot accounts leased per guild + language.
- Sans-I/O parts: `rtp`, `transport`, `e2ee`, `receive.ReceivePipeline`, `jitter.UserStream`,
  `gateway` (voice-gateway JSON as typed events; `ResumeWatch`, the deadline of a voice resume).
- `adapter`: every private discord.py/davey access (incl. the resume fallback and the waking socket).
- `errors.VoiceError`: root of the voice errors (a `bot.errors.BotError`).
"""
