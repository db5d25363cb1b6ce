#!/usr/bin/env bash
# Runs HubSpot's official Python SDK against the crmsync sandbox: the shared conformance check
# (../shared/conformance/hubspot/run.sh, beside the repository) and crmsync's own extra checks
# (tests/sdk/run.sh); then simple-salesforce against `crmsync sandbox --flavour salesforce`
# (../shared/conformance/salesforce/run.sh). Builds and starts both sandboxes (limits far above
# what the checks make for HubSpot, whose check asks for the rate-limit headers; none for Salesforce) on
# free ports, waits for them with a deadline, runs the checks, stops the servers and exits
# non-zero if any check failed.
# Usage: scripts/conformance.sh [PORT]   (env: CONFORMANCE_VENV, CONFORMANCE_PROFILE, CARGO_TARGET_DIR,
#        CONFORMANCE_BIN: a crmsync binary to use as it is, e.g. the one `cargo test` just built)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=${1:-$(free_port)}
port_sf=$(free_port)
while [[ $port_sf == "$port" ]]; do port_sf=$(free_port); done
base="http://127.0.0.1:$port"
base_sf="http://127.0.0.1:$port_sf"
shared="$root/../shared/conformance/hubspot/run.sh"
shared_sf="$root/../shared/conformance/salesforce/run.sh"
for f in "$shared" "$shared_sf"; do
  [[ -f $f ]] || { echo "missing $f (clone shared/ beside the repository)" >&2; exit 2; }
done

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
log_sf=$(mktemp)
# Limits on but far above what the checks make: HubSpot sends its interval headers on every
# answer, and the shared check asks for them; a sandbox with a limit off sends none of its headers.
"$bin" sandbox --port "$port" --interval-limit 1000000 --daily-limit 100000000 --search-per-second 100000 >"$log" 2>&1 &
server=$!
"$bin" sandbox --flavour salesforce --port "$port_sf" --no-limits >"$log_sf" 2>&1 &
server_sf=$!
trap 'kill -INT $server $server_sf 2>/dev/null; wait $server $server_sf 2>/dev/null; rm -f "$log" "$log_sf"' EXIT

wait_for() { # URL PID LOG
  local deadline=$((SECONDS + 60))
  until curl -s -o /dev/null "$1/_sandbox/stats"; do
    if ! kill -0 "$2" 2>/dev/null; then echo "sandbox exited:" >&2; cat "$3" >&2; exit 2; fi
    if (( SECONDS >= deadline )); then echo "sandbox did not answer on $1 within 60 s" >&2; exit 2; fi
    sleep 0.2
  done
}
wait_for "$base" "$server" "$log"
wait_for "$base_sf" "$server_sf" "$log_sf"

status=0
echo "== shared conformance (HubSpot Python SDK) against $base"
bash "$shared" "$base" || status=1
echo "== crmsync extra SDK checks against $base"
bash "$root/tests/sdk/run.sh" "$base" || status=1
echo "== shared conformance (simple-salesforce) against $base_sf"
# The sandbox's fixed refresh token (its password grant also returns one).
SF_REFRESH_TOKEN=${SF_REFRESH_TOKEN:-sandbox-refresh-token} bash "$shared_sf" "$base_sf" || status=1
exit $status
