"""Health and metrics endpoints over a real loopback HTTP server."""

import httpx

from bot.http import HealthServer
from bot.metrics import Metrics


async def test_healthz_reflects_the_probe_and_metrics_are_prometheus_text():
    metrics = Metrics()
    state = {"ok": True, "sessions": 2}
    server = HealthServer(metrics, lambda: dict(state), host="127.0.0.1", port=0)
    port = await server.start()
    try:
        metrics.sessions.set(2)
        metrics.packets.inc(1500)
        metrics.decrypt_failures.labels("dave").inc(3)
        metrics.latency.observe(1.2)
        metrics.errors.labels("palabra").inc()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            healthy = await http.get("/healthz")
            state["ok"] = False
            unhealthy = await http.get("/healthz")
            scraped = await http.get("/metrics")
    finally:
        await server.stop()
    assert healthy.status_code == 200 and healthy.json() == {"ok": True, "sessions": 2}
    assert unhealthy.status_code == 503 and unhealthy.json()["ok"] is False
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert "interpreter_sessions_active 2.0" in text
    assert "interpreter_voice_packets_total 1500.0" in text
    assert 'interpreter_decrypt_failures_total{stage="dave"} 3.0' in text
    assert 'interpreter_palabra_latency_seconds_bucket{le="1.5"} 1.0' in text
    assert 'interpreter_errors_total{kind="palabra"} 1.0' in text


async def test_a_failing_probe_is_a_503_not_a_crash():
    def broken() -> dict:
        raise RuntimeError("probe failed")

    server = HealthServer(Metrics(), broken, host="127.0.0.1", port=0)
    port = await server.start()
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await server.stop()
    assert response.status_code == 503 and response.json() == {"ok": False, "error": "RuntimeError"}
