#!/usr/bin/env bash
# omg-server's web page in headless Chromium: upload the sample photo, click a
# point and drag a box, see the masks (interactive segmentation, then a streamed chat
# with a forced [SEG]), and save a screenshot (default docs/serve-page.png).
#
#   scripts/page-test.sh [SCREENSHOT]
#
# Installs Debian's chromium and playwright-core (npm, into a temporary folder) if they
# are missing; builds omg-server and starts it on a free loopback port on the built-in
# demo bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
shot="${1:-docs/serve-page.png}"
case "$shot" in /*) ;; *) shot="$PWD/$shot" ;; esac

if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
fi
tools="${PAGE_TEST_TOOLS:-/tmp/omg-page-test}"
if [ ! -d "$tools/node_modules/playwright-core" ]; then
  echo "installing playwright-core into $tools"
  mkdir -p "$tools"
  (cd "$tools" && npm init -y >/dev/null && npm install --silent playwright-core@1 >/dev/null)
fi
cp scripts/page-test.mjs "$tools/"

cargo build --release -p omg-server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${CARGO_TARGET_DIR:-target}/release/omg-server" --addr "127.0.0.1:$port" >"$tools/omg-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$tools/omg-server.log"; exit 1; }
  sleep 0.2
done
node "$tools/page-test.mjs" "http://127.0.0.1:$port/" "$PWD/omg-demo/assets/chelsea.png" "$shot"
