#!/usr/bin/env bash
# Screenshot of the running livefit job in the Flink web UI (headless Debian chromium; flags from
# PLATFORM.md). Usage: scripts/screenshot-webui.sh [OUT.png] [URL]
# Needs: apt-get install chromium; a cluster with the job (make cluster && make submit).
set -euo pipefail
out=${1:-docs/flink-web-ui.png}
url=${2:-}
if [ -z "$url" ]; then
  jid=$(curl -fs http://127.0.0.1:8081/jobs/overview | python3 -c 'import json,sys; j=[x for x in json.load(sys.stdin)["jobs"] if x["state"]=="RUNNING"]; print(j[0]["jid"] if j else "")')
  [ -n "$jid" ] || { echo "no running job on 127.0.0.1:8081: make cluster && make submit" >&2; exit 1; }
  url="http://127.0.0.1:8081/#/job/running/$jid/overview"
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --headless=old: Chromium 150's default (new) headless mode never ends its virtual time budget on
# this page (the UI polls the REST API); timeout: never wait forever for it either way.
timeout 120 chromium --headless=old --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-dev-shm-usage --user-data-dir="$profile" --hide-scrollbars \
  --screenshot="$(realpath -m "$out")" --window-size=1400,900 --virtual-time-budget=8000 "$url" 2>/dev/null
echo "wrote $out ($url)"
