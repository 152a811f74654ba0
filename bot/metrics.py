"""Prometheus metrics of the bot, in a registry of its own (served by bot.http on HTTP_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions = Gauge("interpreter_sessions_active", "Live interpretation sessions", registry=r)
        self.sessions_started = Counter("interpreter_sessions_started", "Interpretation sessions started", registry=r)
        self.sessions_stopped = Counter(
            "interpreter_sessions_stopped", "Interpretation sessions stopped, by reason", ["reason"], registry=r
        )
        self.speakers = Gauge("interpreter_speakers", "Speaker bots ready in this process", registry=r)
        self.speakers_leased = Gauge("interpreter_speakers_leased", "Speaker bots playing a language", registry=r)
        self.packets = Counter("interpreter_voice_packets", "Voice UDP packets received", registry=r)
        self.decrypt_failures = Counter(
            "interpreter_decrypt_failures", "Voice packets that failed to decrypt", ["stage"], registry=r
        )
        self.latency = Histogram(
            "interpreter_palabra_latency_seconds",
            "Utterance end (on the audio timeline) to its first translated audio chunk, wall clock",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("interpreter_errors", "Errors by kind", ["kind"], registry=r)
        self.transcript_messages = Counter("interpreter_transcript_messages", "Transcript messages posted", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
