#!/bin/sh
# CTest driver for the programs that need Redis (the README's "More than one process", fleet examples): starts a real
# redis-server on 127.0.0.1 on a free port (no persistence), runs PROGRAM PORT [ARGS...] for at most 60 s, and stops
# the server whatever happens.
#   with_redis_server.sh REDIS_SERVER PROGRAM [ARGS...]
set -u
redis_server=$1
shift
redis_cli="$(dirname "$redis_server")/redis-cli"
[ -x "$redis_cli" ] || redis_cli=redis-cli
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null' EXIT INT TERM

for attempt in 1 2 3 4 5; do
  # A port from 20000 to 59999; if it is taken the server exits and another is tried.
  port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
  "$redis_server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning > /dev/null 2>&1 &
  server_pid=$!
  tries=0
  while [ "$tries" -lt 100 ]; do  # at most 5 s
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if [ "$("$redis_cli" -p "$port" ping 2>/dev/null)" = PONG ]; then break 2; fi
    tries=$((tries + 1))
    sleep 0.05
  done
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=
done
if [ -z "$server_pid" ]; then
  echo "driver: redis-server did not start on a free port in 5 tries"
  exit 1
fi

program=$1
shift
timeout 60 "$program" "$port" "$@"
status=$?
"$redis_cli" -p "$port" shutdown nosave > /dev/null 2>&1
wait "$server_pid" 2>/dev/null
server_pid=
exit "$status"
