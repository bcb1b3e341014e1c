#!/usr/bin/env bash
# Make sure the local PostgreSQL answers on 127.0.0.1:5432 (start it if it is down).
# Used by `make test` before the tests; safe to run when it is already up.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

if ready; then
    exit 0
fi
if ! command -v pg_ctlcluster >/dev/null || [ ! -d /etc/postgresql ]; then
    echo "postgres.sh: PostgreSQL is not installed here; its tests will be skipped" >&2
    exit 0
fi
version="$(ls /etc/postgresql | sort -V | tail -n 1)"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 60); do
    if ready; then
        exit 0
    fi
    sleep 0.5
done
echo "postgres.sh: PostgreSQL $version did not become ready on 127.0.0.1:5432 within 30 s" >&2
exit 1
