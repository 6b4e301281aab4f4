#!/usr/bin/env bash
# A throwaway single-node Slurm on this machine (Debian's slurmctld, slurmd and munge), for the
# Slurm driver's test: `scale/local_slurm.sh DIR` starts munged (if it is not running),
# slurmctld and slurmd with a config in DIR (clients then need SLURM_CONF=DIR/slurm.conf) and waits
# until the node is idle;
# `scale/local_slurm.sh DIR stop` stops the two Slurm daemons. Needs root (the daemons run as root).
set -euo pipefail
dir=$(realpath -m "${1:?state directory}")
if [[ "${2:-}" == stop ]]; then
    for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid; do
        [[ -f "$pid" ]] && kill "$(cat "$pid")" 2> /dev/null || true
    done
    exit 0
fi
mkdir -p "$dir/state" "$dir/spool"
host=$(hostname -s)
cpus=$(nproc)
memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))
cat > "$dir/slurm.conf" <<CONF
ClusterName=smirl-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-6917}
SlurmdPort=${SLURMD_PORT:-6918}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if ! pgrep -x munged > /dev/null; then
    [[ -f /etc/munge/munge.key ]] || mungekey --create
    mkdir -p /run/munge && chown munge:munge /run/munge 2> /dev/null || true
    runuser -u munge -- munged || munged --force
fi
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for ((t = 0; t < 120; t++)); do
    state=$(sinfo -h -o %t 2> /dev/null || true)
    [[ "$state" == idle ]] && break
    sleep 0.5
done
[[ "$state" == idle ]] || { echo "local Slurm did not come up (node state: ${state:-none}); logs in $dir" >&2; exit 1; }
echo "local Slurm up: node $host, $cpus CPUs, SLURM_CONF=$SLURM_CONF"
