#!/usr/bin/env bash
# Runs HubSpot's official Python SDK against the crmsync sandbox: the shared conformance check
# (../shared/conformance/hubspot/run.sh, beside the repository) and crmsync's own extra checks
# (tests/sdk/run.sh). Builds and starts `crmsync sandbox --no-limits` on a free port, waits for
# it with a deadline, runs both, stops the server and exits non-zero if either failed.
# Usage: scripts/conformance.sh [PORT]   (env: CONFORMANCE_VENV, CONFORMANCE_PROFILE, CARGO_TARGET_DIR,
#        CONFORMANCE_BIN: a crmsync binary to use as it is, e.g. the one `cargo test` just built)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${1:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
base="http://127.0.0.1:$port"
shared="$root/../shared/conformance/hubspot/run.sh"
[[ -x $shared || -f $shared ]] || { echo "missing $shared (clone shared/ beside the repository)" >&2; exit 2; }

# The test build's binary (CI has just built it); CONFORMANCE_PROFILE=release for a release one.
profile=${CONFORMANCE_PROFILE:-debug}
target=${CARGO_TARGET_DIR:-$root/target}
bin=${CONFORMANCE_BIN:-}
if [[ -z $bin ]]; then
  if [[ $profile == release ]]; then
    cargo build --release -p crmsync --quiet || { echo "build failed" >&2; exit 2; }
  else
    cargo build -p crmsync --quiet || { echo "build failed" >&2; exit 2; }
  fi
  bin="$target/$profile/crmsync"
fi
[[ -x $bin ]] || { echo "no crmsync binary at $bin" >&2; exit 2; }
log=$(mktemp)
"$bin" sandbox --port "$port" --no-limits >"$log" 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT

deadline=$((SECONDS + 60))
until curl -s -o /dev/null "$base/_sandbox/stats"; do
  if ! kill -0 $server 2>/dev/null; then echo "sandbox exited:" >&2; cat "$log" >&2; exit 2; fi
  if (( SECONDS >= deadline )); then echo "sandbox did not answer on $base within 60 s" >&2; exit 2; fi
  sleep 0.2
done

status=0
echo "== shared conformance (HubSpot Python SDK) against $base"
bash "$shared" "$base" || status=1
echo "== crmsync extra SDK checks against $base"
bash "$root/tests/sdk/run.sh" "$base" || status=1
exit $status
