#!/usr/bin/env bash
# Stop the test cluster started by up.sh STATE_DIR (its daemons only).
set -uo pipefail
STATE=$(realpath -m "${1:?usage: down.sh STATE_DIR}")
for daemon in slurmd slurmctld; do
  if [ -f "$STATE/$daemon.pid" ]; then
    pid=$(cat "$STATE/$daemon.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$STATE/$daemon.pid"
  fi
done
exit 0
