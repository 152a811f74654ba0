"""Every access to discord.py's (and davey's) private or undocumented surface lives here.

Checked against discord.py 2.7.1 and davey 0.1.7 (both pinned exactly in pyproject.toml). Each
function says which private attribute it touches and why; a discord.py upgrade starts by re-reading
this module.
"""

from __future__ import annotations

import discord
import discord.gateway
import discord.http
import yarl


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
