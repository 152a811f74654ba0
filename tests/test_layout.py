"""The layout rules the code review relies on, checked on the whole tree: production code (bot/, cogs/)
never imports the test suite, and no module there grows past 500 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = ("bot", "cogs")
MAX_LINES = 500


def production_modules(root: Path = REPO) -> Iterator[Path]:
    for package in PRODUCTION:
        yield from sorted((root / package).rglob("*.py"))


def imports_of_tests(path: Path) -> list[str]:
    """`module (line N)` for every import of the `tests` package in `path`, at any depth (inside functions
    and `if TYPE_CHECKING:` too: a type-only import still makes the package depend on the test suite)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "tests" or name.startswith("tests.")]
    return [f"{name} (line {line})" for line, name in sorted(found)]


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_the_walk_sees_the_whole_tree():
    seen = {path.relative_to(REPO).as_posix() for path in production_modules()}
    assert {"bot/voice/rtp.py", "bot/palabra/emulator/app.py", "cogs/interpret.py"} <= seen


def test_the_checks_catch_what_they_are_for(tmp_path):
    module = tmp_path / "bot" / "bench.py"
    module.parent.mkdir()
    module.write_text(
        "import testsuite\nfrom . import tests\n"  # neither is the test package
        "def f():\n    from tests.fakes.discord import dave\n"
        "import os, tests.fakes\n" + "x = 1\n" * MAX_LINES,
        encoding="utf-8",
    )
    assert list(production_modules(tmp_path)) == [module]
    assert imports_of_tests(module) == ["tests.fakes.discord (line 4)", "tests.fakes (line 5)"]
    assert line_count(module) == MAX_LINES + 5


def test_production_code_does_not_import_the_test_suite():
    offenders = {
        path.relative_to(REPO).as_posix(): found for path in production_modules() if (found := imports_of_tests(path))
    }
    assert not offenders, f"bot/ and cogs/ must not import tests/: {offenders}"


def test_no_production_module_is_over_500_lines():
    over = {
        path.relative_to(REPO).as_posix(): lines
        for path in production_modules()
        if (lines := line_count(path)) > MAX_LINES
    }
    assert not over, f"modules over {MAX_LINES} lines (split them by responsibility): {over}"
