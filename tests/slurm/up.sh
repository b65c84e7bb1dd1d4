#!/usr/bin/env bash
# Start a real two-node Slurm cluster for the tests on this one machine: slurmctld and two slurmd from
# Debian's slurm-wlm (`slurmd -N n1`, `slurmd -N n2`, ports 17101 and 17102, both NodeHostname this
# machine), each node with this machine's CPUs and two placeholder GPUs (GRES), partitions `cpu` and
# `gpu`, TaskPlugin=task/affinity (job steps are bound to their CPUs, as on a real cluster).
# State, logs and config under STATE_DIR.
#   tests/slurm/up.sh STATE_DIR      (root: daemons, mknod, /etc/slurm, /etc/hosts)
# The config is also copied to /etc/slurm/: the Snakemake jobstep executor drops SLURM_CONF. The node
# names go into /etc/hosts (127.0.0.1): a multi-node job's rendezvous host is its first node's name.
# down.sh puts /etc/slurm and /etc/hosts back as they were.
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
mkdir -p "$STATE/ctld" "$STATE/d/n1" "$STATE/d/n2" "$STATE/log" "$STATE/gpus"
for i in 0 1 2 3; do
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
SlurmdSpoolDir=$STATE/d/%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
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
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=17101 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=17102 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=n[1-2] MaxTime=INFINITE State=UP
CONF
cat > "$STATE/gres.conf" <<GRES
NodeName=n1 Name=gpu File=$STATE/gpus/nvidia[0-1]
NodeName=n2 Name=gpu File=$STATE/gpus/nvidia[2-3]
GRES
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
[ -e "$STATE/hosts-before" ] || cp -p /etc/hosts "$STATE/hosts-before"
echo "127.0.0.1 n1 n2  # mlit test cluster ($STATE)" >> /etc/hosts

slurmctld -f "$STATE/slurm.conf"
slurmd -f "$STATE/slurm.conf" -N n1
slurmd -f "$STATE/slurm.conf" -N n2
for _ in $(seq 1 60); do
  if [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null \
     && [ "$(sinfo -h -N -p gpu -o '%N %T' 2>/dev/null | grep -c ' idle$')" = 2 ]; then
    echo "slurm up: nodes n1 n2 on $HOST, $CPUS CPUs, ${MEM_MB} MB, gpu:2 each, partitions cpu gpu (state in $STATE)"
    exit 0
  fi
  sleep 0.5
done
echo "slurm did not come up; logs:" >&2
tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd-n1.log" "$STATE/log/slurmd-n2.log" >&2
exit 1
