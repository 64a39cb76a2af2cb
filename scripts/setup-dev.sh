#!/usr/bin/env bash
# One-command developer set-up: a fresh .venv with edgeclf (editable) and every extra the tests need,
# plus Debian's Chromium and Mosquitto for the real-browser and real-broker tests of `edgeclf camera --serve/--mqtt`
# (installed only when missing and root).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[train,camera,mqtt,test]"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing="$missing mosquitto"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "note: could not install$missing; the tests that need them will say so" >&2
fi
echo "ready: run the tests with  .venv/bin/python -m pytest"
