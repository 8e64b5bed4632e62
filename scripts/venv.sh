# Sourced by scripts/demo, scripts/test and bench/run: create .venv when missing and install into it
# the pinned dependencies from the lock files (./scripts/lock refreshes them), then the project itself,
# editable and with no dependencies of its own. The install is skipped when neither pyproject.toml,
# the lock files nor the checkout's path have changed since the last one.
#   ensure_venv          -> pip install --require-hashes -r requirements.lock;      pip install --no-deps -e .
#   ensure_venv test     -> pip install --require-hashes -r requirements-test.lock; pip install --no-deps -e .
# Sets VENV and VENV_PY. Set PYTHON to choose the interpreter (Python >= 3.11; the locks are for 3.11).

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
VENV_PY="$VENV/bin/python"

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: syncguard needs Python 3.11 or newer; none found (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

lock_file() {  # the lock for these extras: "" (runtime) or "test"
    case "${1:-}" in
        "") echo "$REPO/requirements.lock" ;;
        test) echo "$REPO/requirements-test.lock" ;;
        *) echo "error: no lock file for the extras '$1' (see scripts/lock)" >&2; return 1 ;;
    esac
}

dependencies_digest() {  # dependencies_digest PYTHON: a digest of what pyproject.toml asks for, written in the locks
    "$1" - "$REPO/pyproject.toml" <<'PY'
import hashlib, json, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
asked = {"dependencies": project.get("dependencies", []), "optional": project.get("optional-dependencies", {})}
print(hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest())
PY
}

lock_is_current() {  # lock_is_current LOCK: the lock was compiled from the dependencies pyproject.toml has now
    local digest
    digest="$(dependencies_digest "$VENV_PY")" || return 1
    if ! grep -qx "# pyproject dependencies: sha256 $digest" "$1"; then
        echo "error: ${1#"$REPO"/} is older than the dependencies in pyproject.toml;" \
             "run ./scripts/lock and commit the lock files with the change" >&2
        return 1
    fi
}

install_stamp() {  # what the install depends on: the project file, both locks, the checkout's path, the Python
    "$VENV_PY" - "$REPO" <<'PY'
import hashlib, sys
from pathlib import Path
repo = Path(sys.argv[1])
digest = hashlib.sha256()
for name in ("pyproject.toml", "requirements.lock", "requirements-test.lock"):
    path = repo / name
    digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"(missing)") + b"\0")
print(digest.hexdigest(), repo, sys.version.split()[0])
PY
}

ensure_venv() {
    local extras="${1:-}" python stamp target lock log started
    lock="$(lock_file "$extras")" || return 1
    if [ ! -f "$lock" ]; then
        echo "error: $lock is missing; ./scripts/lock writes it from pyproject.toml" >&2
        return 1
    fi
    if ! "$VENV_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        python="$(find_python)" || return 1
        echo "==> creating $VENV with $("$python" --version 2>&1)"
        rm -rf "$VENV"
        "$python" -m venv "$VENV" || return 1
    fi
    lock_is_current "$lock" || return 1
    stamp="$(install_stamp)" || return 1
    target="$VENV/.syncguard-installed-${extras:-base}"
    if [ -f "$target" ] && [ "$(cat "$target")" = "$stamp" ]; then
        return 0
    fi
    # The test lock pins everything the runtime lock does, at the same versions (scripts/lock).
    if [ -z "$extras" ] && [ -f "$VENV/.syncguard-installed-test" ] \
        && [ "$(cat "$VENV/.syncguard-installed-test")" = "$stamp" ]; then
        return 0
    fi
    rm -f "$VENV"/.syncguard-installed-*  # whatever was installed before no longer matches the files
    log="$VENV/pip-install.log"
    echo "==> installing syncguard into .venv from ${lock#"$REPO"/} (log: .venv/pip-install.log)"
    started=$SECONDS
    if ! (cd "$REPO" \
        && "$VENV_PY" -m pip install --disable-pip-version-check --no-input --require-hashes -r "$lock" \
        && "$VENV_PY" -m pip install --disable-pip-version-check --no-input --no-deps -e .) >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "error: installing from ${lock#"$REPO"/} failed; the full log is $log" >&2
        return 1
    fi
    echo "    installed in $((SECONDS - started)) s"
    printf '%s\n' "$stamp" > "$target"
}
