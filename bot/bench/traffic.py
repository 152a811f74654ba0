"""The bench's traffic process (`python -m bot.bench.traffic`): people talking, and a counting sink.

Talkers: batches of streams arrive on stdin (length-prefixed pickles of `Stream`); each stream's packets
are already Opus-encoded, DAVE-encrypted and transport-sealed by the bench, so this process only sends
packet i at `start + i x 20 ms` to the stream's port (one scheduler thread for all streams).
Sink: one UDP socket the bot's speakers send to; packets are counted per SSRC.
A `None` batch ends the run; the process then prints one JSON line: sink counts, how late its own sends
were and its CPU time, so the bench can report what the traffic itself cost.
"""

from __future__ import annotations

import heapq
import json
import pickle
import resource
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass


@dataclass
class Stream:
    port: int
    start: float  # monotonic time of packet 0
    packets: list[bytes]


FRAME_S = 0.02


def read_batches(
    schedule: list[tuple[float, int, int]], streams: list[Stream], lock: threading.Lock, done: threading.Event
) -> None:
    pipe = sys.stdin.buffer
    while True:
        header = pipe.read(4)
        if len(header) < 4:
            break
        batch = pickle.loads(pipe.read(struct.unpack(">I", header)[0]))
        if batch is None:
            break
        with lock:
            for stream in batch:
                streams.append(stream)
                heapq.heappush(schedule, (stream.start, len(streams) - 1, 0))
    done.set()


class Sink(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.counts: dict[int, int] = {}
        self.stopping = False

    def run(self) -> None:
        counts = self.counts
        while not self.stopping:
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            if len(data) >= 12:
                ssrc = int.from_bytes(data[8:12], "big")
                counts[ssrc] = counts.get(ssrc, 0) + 1


def main() -> None:
    sink = Sink()
    sink.start()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print(sink.sock.getsockname()[1], flush=True)
    schedule: list[tuple[float, int, int]] = []
    streams: list[Stream] = []
    lock = threading.Lock()
    done = threading.Event()
    threading.Thread(target=read_batches, args=(schedule, streams, lock, done), daemon=True).start()
    sent = late = 0
    worst = 0.0
    while not done.is_set():
        with lock:
            due = schedule[0][0] if schedule else None
        now = time.monotonic()
        if due is None or due > now:
            time.sleep(min(0.005, (due - now) if due is not None else 0.005))
            continue
        with lock:
            while schedule and schedule[0][0] <= now + 0.0005:
                at, index, i = heapq.heappop(schedule)
                stream = streams[index]
                out.sendto(stream.packets[i], ("127.0.0.1", stream.port))
                sent += 1
                lag = now - at
                worst = max(worst, lag)
                late += lag > FRAME_S
                if i + 1 < len(stream.packets):
                    heapq.heappush(schedule, (stream.start + (i + 1) * FRAME_S, index, i + 1))
    sink.stopping = True
    sink.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "sent": sent,
        "late_sends": late,
        "worst_send_lag_ms": round(worst * 1000, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "sink_counts": {str(k): v for k, v in sink.counts.items()},
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
