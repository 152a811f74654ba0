# Sourced by the scripts: creates .venv and installs the project from the lock files when they changed.
# requirements.lock pins what `run`/`simulate` need; requirements-dev.lock adds the test and lint tools.
# Regenerate both after editing pyproject.toml's dependencies: scripts/lock
VENV="${VENV:-.venv}"
ensure_venv() {
    local extra="${1:-}" lock=requirements.lock stamp
    [ -n "$extra" ] && lock=requirements-dev.lock
    stamp="$VENV/.installed-$(cat pyproject.toml "$lock" | sha256sum | cut -c1-16)-${extra:-base}"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || { echo "error: python3 -m venv failed (Python >= 3.11 with venv needed)" >&2; exit 1; }
    fi
    if [ ! -e "$stamp" ]; then
        echo "installing dependencies into $VENV from $lock ..." >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
        "$VENV/bin/python" -m pip install --quiet --require-hashes -r "$lock" >&2
        "$VENV/bin/python" -m pip install --quiet --no-deps -e . >&2
        touch "$stamp"
    fi
}
