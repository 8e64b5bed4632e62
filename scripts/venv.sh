# Sourced by scripts/demo and scripts/test: create .venv when missing and install the project into it,
# skipping the install when pyproject.toml and the checkout's path have not changed since the last one.
#   ensure_venv          -> pip install -e .
#   ensure_venv test     -> pip install -e ".[test]"
# Sets VENV and VENV_PY. Set PYTHON to choose the interpreter (Python >= 3.11).

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
VENV_PY="$VENV/bin/python"

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: syncguard needs Python 3.11 or newer; none found (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

install_stamp() {  # what the install depends on: the project file and where the checkout lives
    "$VENV_PY" - "$REPO" <<'PY'
import hashlib, sys
from pathlib import Path
repo = Path(sys.argv[1])
print(hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest(), repo, sys.version.split()[0])
PY
}

ensure_venv() {
    local extras="${1:-}" python stamp target spec
    if ! "$VENV_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        python="$(find_python)" || return 1
        echo "==> creating $VENV with $("$python" --version 2>&1)"
        rm -rf "$VENV"
        "$python" -m venv "$VENV" || return 1
    fi
    stamp="$(install_stamp)" || return 1
    target="$VENV/.syncguard-installed-${extras:-base}"
    if [ -f "$target" ] && [ "$(cat "$target")" = "$stamp" ]; then
        return 0
    fi
    # The test extras include everything the plain install has.
    if [ -z "$extras" ] && [ -f "$VENV/.syncguard-installed-test" ] \
        && [ "$(cat "$VENV/.syncguard-installed-test")" = "$stamp" ]; then
        return 0
    fi
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    echo "==> installing syncguard into .venv (pip install -e \"$spec\"; log: .venv/pip-install.log)"
    if ! (cd "$REPO" && "$VENV_PY" -m pip install --disable-pip-version-check --no-input -e "$spec") \
        >"$VENV/pip-install.log" 2>&1; then
        tail -n 40 "$VENV/pip-install.log" >&2
        echo "error: pip install -e \"$spec\" failed; the full log is $VENV/pip-install.log" >&2
        return 1
    fi
    printf '%s\n' "$stamp" > "$target"
}
