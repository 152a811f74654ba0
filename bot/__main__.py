import signal
import sys

if sys.argv[1:2] == ["run"]:
    # A stop signal before the bot has started anything (imports take a moment) ends it at once,
    # cleanly; `run` replaces this with its draining handler as soon as its event loop is up.
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, lambda *_: sys.exit(0))

from bot.cli import main  # after the handlers, so that a signal during the imports exits 0

if __name__ == "__main__":
    raise SystemExit(main())
