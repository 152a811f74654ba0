"""What the cogs and the interpretation layer share, built once by `bot.app` at start-up.

Cogs reach it as `self.bot.services`; tests build one around the fake Discord and the emulator.
Fields that belong to a layer still being wired are optional so each layer can be tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.overlay.service import OverlayService
    from bot.palabra.credentials import Credentials
    from bot.palabra.rest import PalabraRest
    from bot.settings import Settings


@dataclass
class Services:
    settings: Settings
    database: Database
    credentials: Credentials | None = None
    palabra: PalabraRest | None = None
    # bot.interpretation.manager.InterpretationManager
    interpretation: Any = None
    # bot.broadcasts.service.BroadcastService
    broadcasts: Any = None
    overlay: OverlayService | None = None  # None: the HTTP server is off, so no overlay links
    extras: dict[str, Any] = field(default_factory=dict)
