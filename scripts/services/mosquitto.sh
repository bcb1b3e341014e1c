#!/bin/sh
# Make sure the local Mosquitto runs with the project's config (mosquitto.conf beside this
# script) on 127.0.0.1:1883; (re)start it when it is down or runs with another config.
# Called by `make services`. Mosquitto's defaults drop queued QoS 1 messages past 1000 per
# client and save to disk every 30 minutes: tests against such a broker would be fooled.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
conf="$here/mosquitto.conf"
# The broker reads a copy, so an edit of mosquitto.conf is seen as "configured otherwise".
running_conf=/run/mosquitto/wrkr-mosquitto.conf

if ! command -v mosquitto >/dev/null 2>&1; then
    echo "mosquitto.sh: Mosquitto is not installed; its tests will be skipped" >&2
    exit 0
fi

port_open() {
    python3 -c 'import socket; socket.create_connection(("127.0.0.1", 1883), timeout=1).close()' \
        2>/dev/null
}

pid=$(pgrep -x mosquitto | head -n 1 || true)
if [ -n "$pid" ]; then
    args=$(tr '\0' ' ' < "/proc/$pid/cmdline")
    if [ "${args#*-c "$running_conf"}" != "$args" ] && cmp -s "$conf" "$running_conf" \
            && port_open; then
        exit 0
    fi
    echo "mosquitto.sh: restarting Mosquitto (pid $pid: $args) with $conf"
    kill "$pid"  # SIGTERM: Mosquitto saves its database, then exits
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -ge 100 ]; then
            echo "mosquitto.sh: Mosquitto (pid $pid) did not stop within 10 s" >&2
            exit 1
        fi
        sleep 0.1
    done
fi

mkdir -p /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
chown mosquitto:mosquitto /run/mosquitto /var/lib/mosquitto /var/log/mosquitto 2>/dev/null || true
cp "$conf" "$running_conf"
mosquitto -d -c "$running_conf"
tries=0
until port_open; do
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ]; then
        echo "mosquitto.sh: Mosquitto did not answer on 127.0.0.1:1883 within 10 s" >&2
        exit 1
    fi
    sleep 0.1
done
