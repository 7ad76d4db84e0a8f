#!/bin/sh
# CTest driver of the http_operation example: starts the server (a real process on 127.0.0.1, ephemeral port),
# runs the client against it, and stops the server whatever happens.
#   http_operation_test.sh SERVER CLIENT PORT_FILE EXPECTED_CLIENT_STATUS [server options...]
# Passes when the client exits with EXPECTED_CLIENT_STATUS (0: it saw ACTIVE) and, when that is 0, the server
# exited 0 after serving the final state.
set -u
server=$1
client=$2
port_file=$3
expected=$4
shift 4

rm -f "$port_file"
"$server" "$port_file" "$@" &
server_pid=$!
# Whatever happens from here on (a failed client, an interrupted test), the server does not outlive the test.
trap 'kill "$server_pid" 2>/dev/null' EXIT INT TERM

tries=0
while [ ! -s "$port_file" ]; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "driver: the server exited before it listened"
    exit 1
  fi
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ]; then
    echo "driver: no port from the server after 5 s"
    exit 1
  fi
  sleep 0.05
done
port=$(cat "$port_file")

"$client" "http://127.0.0.1:$port"
client_status=$?
if [ "$client_status" -ne "$expected" ]; then
  echo "driver: the client exited $client_status, expected $expected"
  exit 1
fi
if [ "$expected" -eq 0 ]; then
  # The server exits by itself after serving the final state; it has a hard timeout besides.
  wait "$server_pid"
  server_status=$?
  if [ "$server_status" -ne 0 ]; then
    echo "driver: the server exited $server_status"
    exit 1
  fi
fi
echo "driver: ok (client exited $client_status)"
exit 0
