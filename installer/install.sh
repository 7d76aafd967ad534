#!/usr/bin/env bash
# Install a Capture Studio bundle built by installer/build.sh into ./venv beside this file.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
"$PY" -m venv venv
find_links=()
[ -d wheels ] && find_links=(--no-index --find-links wheels)
venv/bin/python -m pip install -q "${find_links[@]}" -r requirements.lock
venv/bin/python -m pip install -q "${find_links[@]}" --no-deps capture_studio-*.whl
echo "Installed. Start with ./capture-studio (or ./capture-studio run ENGINE ... for the command line)."
