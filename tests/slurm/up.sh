#!/usr/bin/env bash
# Start a real one-node Slurm cluster for the tests: slurmctld + slurmd from Debian's slurm-wlm,
# state, logs and config under STATE_DIR, two placeholder GPUs (GRES), partitions `cpu` and `gpu`.
#   tests/slurm/up.sh STATE_DIR      (root: daemons, mknod, /etc/slurm)
# The config is also copied to /etc/slurm/: the Snakemake jobstep executor drops SLURM_CONF.
set -euo pipefail
STATE=$(realpath -m "${1:?usage: up.sh STATE_DIR}")
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

"$(dirname "$0")/down.sh" "$STATE" >/dev/null 2>&1 || true
running=$( { pgrep -x slurmctld; pgrep -x slurmd; } | tr '\n' ' ' || true)
if [ -n "$running" ]; then
  echo "a slurmctld/slurmd is already running (pids: $running);" \
       "stop it first (tests/slurm/down.sh ITS_STATE_DIR)" >&2
  exit 1
fi
rm -rf "$STATE/ctld" "$STATE/d"          # old DRAIN/INVAL node state must not survive
mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log" "$STATE/gpus"
for i in 0 1; do
  # a GPU GRES needs File= character devices; these stand in for /dev/nvidiaN
  [ -c "$STATE/gpus/nvidia$i" ] || mknod -m 666 "$STATE/gpus/nvidia$i" c 1 3
done

cat > "$STATE/slurm.conf" <<CONF
ClusterName=mlit-test
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=3600
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
GresTypes=gpu
SchedulerParameters=sched_interval=1
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
CONF
echo "NodeName=$HOST Name=gpu File=$STATE/gpus/nvidia[0-1]" > "$STATE/gres.conf"
# /etc/slurm as it was, for down.sh to put back: a config left there pointing at a stopped controller
# makes every later Snakemake start on this machine wait about 9 s for it
SAVED="$STATE/etc-slurm-before"
if [ ! -d "$SAVED" ]; then
  mkdir -p "$SAVED"
  [ -d /etc/slurm ] || touch "$SAVED/.no-dir"
  for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ]; then cp -p "/etc/slurm/$f" "$SAVED/$f"; else touch "$SAVED/$f.absent"; fi
  done
fi
mkdir -p /etc/slurm
cp "$STATE/slurm.conf" "$STATE/gres.conf" /etc/slurm/

slurmctld -f "$STATE/slurm.conf"
slurmd -f "$STATE/slurm.conf"
for _ in $(seq 1 60); do
  if [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null \
     && sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
    echo "slurm up: node $HOST, $CPUS CPUs, ${MEM_MB} MB, gpu:2, partitions cpu gpu (state in $STATE)"
    exit 0
  fi
  sleep 0.5
done
echo "slurm did not come up; logs:" >&2
tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2
exit 1
