"""Live interpretation of Discord voice channels.

manager.InterpretationManager   what the slash commands call: start / stop / status /
                                set_user_opted_out / recover (start-up) / close (shutdown)
session.LiveSession             one running session: receiver -> mixer (bot.audio) -> Palabra stream;
                                events -> transcripts + playback; latency; auto-stop watch
transcripts                     Transcript (+ .txt/.srt), TranscriptPoster (coalesced partials,
                                never-dropped finals), WebhookSink / ChannelSink
attribution.attribute           segment times -> the mixer's activity timeline -> speaker
placement                       same-channel / text-only fallbacks, the consent notice
reports, errors                 StartReport, StopReport, SessionStatus, Placement; InterpretationError tree
"""
