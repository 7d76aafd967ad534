#!/usr/bin/env bash
# Capture Studio: set up (system packages, .venv, pinned dependencies) and start.
#   ./studio.sh            set up if needed, then start the app
#   ./studio.sh test [..]  set up if needed, then run the whole test suite headless (Xvfb)
#   ./studio.sh run ...    set up if needed, then the command line (python main.py run ...)
# Idempotent: a second run skips what is already done.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
VENV="$HERE/.venv"
PY=${PYTHON:-python3.11}

APT_PKGS="python3-venv xvfb xauth libusb-1.0-0 libxcb-icccm4 libxcb-keysyms1 libgl1 libegl1 \
libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libgomp1 libglib2.0-0 libdbus-1-3 libfontconfig1 \
libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-image0 libxcb-randr0 \
libxcb-render-util0 libxcb-shape0 libxcb-xfixes0"

system_packages() {
    command -v dpkg-query >/dev/null || return 0   # not Debian/Ubuntu: the user knows best
    local missing=()
    for p in $APT_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # python3-venv is only needed when the chosen Python lacks venv
    if "$PY" -c "import venv, ensurepip" 2>/dev/null; then
        missing=("${missing[@]/python3-venv}")
    fi
    local need=()
    for p in "${missing[@]}"; do [ -n "$p" ] && need+=("$p"); done
    [ ${#need[@]} -eq 0 ] && return 0
    echo "Installing system packages: ${need[*]}"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
        echo "Capture Studio needs these system packages. Please run:" >&2
        echo "  sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
}

python_env() {
    if ! command -v "$PY" >/dev/null; then
        PY=python3
        "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || {
            echo "Capture Studio needs Python 3.11 (python3.11 not found)." >&2; exit 1; }
    fi
    local stamp="$VENV/.installed"
    local want
    want=$(cat pyproject.toml constraints.txt | sha1sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    echo "Installing Python dependencies into .venv (first run: about 2 minutes)..."
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    # Editable install registers the engines' entry points; pyproject gives compatible ranges,
    # constraints.txt the exact tested versions of everything.
    if ! "$VENV/bin/python" -m pip install -c constraints.txt -e ".[test]" > "$VENV/install.log" 2>&1; then
        grep -v "^WARNING: Location" "$VENV/install.log" | tail -30 >&2
        echo "Installing the Python dependencies failed (full log: $VENV/install.log)." >&2
        exit 1
    fi
    "$VENV/bin/python" -m pip check
    "$VENV/bin/python" -c "import engines.registry as r; print('Engines:', ', '.join(sorted(r.engines())))"
    echo "$want" > "$stamp"
}

# The glTF clients the tests run (Khronos validator, three.js) from tests/js/package-lock.json.
# Needs npm; without it those tests skip. Re-installs only when the lock file changes.
js_clients() {
    command -v npm >/dev/null || return 0
    local dir="$HERE/tests/js" want
    [ -f "$dir/package-lock.json" ] || return 0
    want=$(sha1sum "$dir/package-lock.json" | cut -d' ' -f1)
    [ "$(cat "$dir/node_modules/.capture-studio-lock" 2>/dev/null)" = "$want" ] && return 0
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$dir/npm-ci.log"); then
        echo "$want" > "$dir/node_modules/.capture-studio-lock"
        rm -f "$dir/npm-ci.log"
    else
        echo "npm ci in tests/js failed (see tests/js/npm-ci.log): the glTF client tests will skip." >&2
    fi
}

system_packages
python_env
export PYTHONNOUSERSITE=1
unset QT_QPA_PLATFORM_PLUGIN_PATH

cmd=${1:-app}
case "$cmd" in
    test)
        shift
        js_clients
        export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-xcb}
        exec xvfb-run -a -s "-screen 0 1920x1080x24" "$VENV/bin/python" -m pytest "$@"
        ;;
    run|engines)
        exec "$VENV/bin/python" main.py "$@"
        ;;
    app)
        shift || true
        if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
            echo "No display found: starting the app on a virtual screen (Xvfb)." >&2
            exec xvfb-run -a -s "-screen 0 1920x1080x24" "$VENV/bin/python" main.py "$@"
        fi
        exec "$VENV/bin/python" main.py "$@"
        ;;
    *)
        exec "$VENV/bin/python" main.py "$@"
        ;;
esac
