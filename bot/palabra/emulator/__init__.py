"""A local Palabra-compatible server (REST + streaming WebSocket) for tests, `simulate` and demos.

`serve`, `EmulatorConfig` and `EmulatorState` are loaded on first use, so importing the command
module (`bot.palabra.emulator.cli`) to build the CLI parser stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.palabra.emulator.app import serve
    from bot.palabra.emulator.config import EmulatorConfig
    from bot.palabra.emulator.state import EmulatorState

_EXPORTS = {
    "serve": "bot.palabra.emulator.app",
    "EmulatorConfig": "bot.palabra.emulator.config",
    "EmulatorState": "bot.palabra.emulator.state",
}
__all__ = ["EmulatorConfig", "EmulatorState", "serve"]  # the keys of _EXPORTS


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
