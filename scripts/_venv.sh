# Sourced by the scripts: creates .venv and installs the project when pyproject.toml changed.
VENV="${VENV:-.venv}"
ensure_venv() {
    local extra="${1:-}"
    local spec="." stamp
    [ -n "$extra" ] && spec=".[$extra]"
    stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extra:-base}"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || { echo "error: python3 -m venv failed (Python >= 3.11 with venv needed)" >&2; exit 1; }
    fi
    if [ ! -e "$stamp" ]; then
        echo "installing dependencies into $VENV ..." >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
        "$VENV/bin/python" -m pip install --quiet -e "$spec" >&2
        touch "$stamp"
    fi
}
