#!/usr/bin/env bash
# Stop the test cluster started by up.sh STATE_DIR (its daemons) and put /etc/slurm and /etc/hosts back as
# up.sh found them.
set -uo pipefail
STATE=$(realpath -m "${1:?usage: down.sh STATE_DIR}")
for daemon in slurmd-n1 slurmd-n2 slurmd slurmctld; do
  if [ -f "$STATE/$daemon.pid" ]; then
    pid=$(cat "$STATE/$daemon.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$STATE/$daemon.pid"
  fi
done
SAVED="$STATE/etc-slurm-before"
if [ -d "$SAVED" ]; then
  for f in slurm.conf gres.conf; do
    if [ -e "$SAVED/$f.absent" ]; then rm -f "/etc/slurm/$f"; else cp -p "$SAVED/$f" "/etc/slurm/$f"; fi
  done
  if [ -e "$SAVED/.no-dir" ]; then rmdir /etc/slurm 2>/dev/null; fi
  rm -rf "$SAVED"
fi
if [ -e "$STATE/hosts-before" ]; then  # the node names up.sh added
  cat "$STATE/hosts-before" > /etc/hosts && rm -f "$STATE/hosts-before"
fi
exit 0
