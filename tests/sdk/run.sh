#!/usr/bin/env bash
# crmsync's own checks with HubSpot's official Python SDK, complementing
# shared/conformance/hubspot/sdk_check.py (every sandbox endpoint that one does not cover).
# Usage: tests/sdk/run.sh BASE_URL [TOKEN]
# Reuses the conformance venv (${CONFORMANCE_VENV:-$HOME/.cache/crmsync-conformance}) with the
# same pinned SDK. Prints one line per check and ends with "N passed, N failed"; exits
# non-zero on any failure. The server must run without rate limits (--no-limits).
set -euo pipefail
base=${1:?usage: run.sh BASE_URL [TOKEN]}
token=${2:-${HUBSPOT_ACCESS_TOKEN:-sandbox-token}}
here=$(cd "$(dirname "$0")" && pwd)
venv=${CONFORMANCE_VENV:-$HOME/.cache/crmsync-conformance}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import hubspot' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
exec "$venv/bin/python" "$here/sdk_extra.py" "$base" "$token"
