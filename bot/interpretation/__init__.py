"""Live interpretation of Discord voice channels.

manager.InterpretationManager   what the slash commands call: start / stop / status /
                                set_user_opted_out / recover (start-up) / close (shutdown)
starting.SessionStarter         plan (checks, session row) then build (voice, consent, stream, placement)
leasing.SpeakerLeases           the one owner of speaker bots: pool slot + database lease row together
placing.place_targets           speaker bot per sibling channel, else the `placement` fallbacks
palabra_sessions, recovery      Palabra session ids recorded before use; crash recovery deletes leftovers
housekeeping, store, summary    heartbeat + retention purge; TranscriptStore (lines survive a database
                                outage); the end-of-session summary
session.LiveSession             one running session: receiver -> mixer (bot.audio) -> Palabra stream;
                                events -> transcripts + playback; latency; auto-stop watch
transcripts                     Transcript (+ .txt/.srt), TranscriptPoster (coalesced partials,
                                never-dropped finals), WebhookSink / ChannelSink
attribution.attribute           segment times -> the mixer's activity timeline -> speaker
placement                       same-channel / text-only fallbacks, the consent notice
reports, errors                 StartReport, StopReport, SessionStatus, Placement; InterpretationError tree
"""
