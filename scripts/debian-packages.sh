#!/usr/bin/env bash
# Install the Debian packages the tests and the fault harness need, when missing:
# stress (the overload fault, the stress runs) and chromium (the dashboard's browser tests).
# Used by `make test` and `make faults`; does nothing when all are there.
set -euo pipefail

missing=()
command -v stress >/dev/null || missing+=(stress)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # the path test_dashboard.py launches
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "debian-packages.sh: need root to install ${missing[*]}" >&2
    exit 1
fi
as_root=""
[ "$(id -u)" -ne 0 ] && as_root="sudo"
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -qq
$as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
