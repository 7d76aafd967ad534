#!/usr/bin/env bash
# Build a distributable Capture Studio bundle for Linux x86_64:
#   dist/capture-studio-<version>/
#       capture_studio-<version>-py3-none-any.whl   the app (engines, app, resources; command capture-studio)
#       requirements.lock                            exact versions seen working (pip freeze)
#       wheels/                                      (with --offline) every dependency wheel
#       install.sh                                   creates a venv and installs the above
#       capture-studio                               launcher
#   dist/capture-studio-<version>.tar.gz
# Usage: installer/build.sh [--offline]   (--offline downloads all wheels: ~3 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "Run ./studio.sh once first (it creates .venv)." >&2; exit 1; }
VERSION=$("$PY" -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
OUT="dist/capture-studio-$VERSION"
rm -rf "$OUT"; mkdir -p "$OUT"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" . 2>&1 | grep -v "^WARNING: Location" || true
"$PY" -m pip freeze --exclude-editable | grep -v '^-e ' > "$OUT/requirements.lock"
if [ "${1:-}" = "--offline" ]; then
    "$PY" -m pip download -q -r "$OUT/requirements.lock" -d "$OUT/wheels"
fi
cp installer/install.sh "$OUT/install.sh"
cat > "$OUT/capture-studio" <<'EOS'
#!/usr/bin/env bash
here=$(cd "$(dirname "$0")" && pwd)
unset QT_QPA_PLATFORM_PLUGIN_PATH
exec "$here/venv/bin/capture-studio" "$@"
EOS
chmod +x "$OUT/install.sh" "$OUT/capture-studio"
tar -C dist -czf "dist/capture-studio-$VERSION.tar.gz" "capture-studio-$VERSION"
echo "Built dist/capture-studio-$VERSION.tar.gz"
