#!/bin/sh
# Make sure the local RabbitMQ server answers on 127.0.0.1:5672; start it if it is down.
# Called by `make test` before the run. Bounded: gives up after about a minute.
set -eu

port_open() {
    python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5672), timeout=1).close()' \
        2>/dev/null
}

if port_open; then
    exit 0
fi
if ! command -v rabbitmqctl >/dev/null 2>&1; then
    echo "rabbitmq.sh: RabbitMQ is not installed; its tests will be skipped" >&2
    exit 0
fi
if rabbitmqctl -q ping >/dev/null 2>&1; then
    # The node runs but its application was stopped (`rabbitmqctl stop_app`);
    # `status` fails then (exit 64), `ping` answers the node itself.
    rabbitmqctl -q start_app
else
    rabbitmq-server -detached
    # await_startup needs a node to ask: wait (bounded) until the new node answers.
    tries=0
    until rabbitmqctl -q ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "rabbitmq.sh: the RabbitMQ node did not come up within 60 s" >&2
            exit 1
        fi
        sleep 1
    done
fi
timeout 70 rabbitmqctl -q await_startup --timeout 60
port_open
