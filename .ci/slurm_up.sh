#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine, for CI (rasterflow, DESIGN.md §5).
#
#   .ci/slurm_up.sh      # install if missing, configure, start, wait until the node is idle
#   .ci/slurm_down.sh    # stop the daemons again (by PID)
#
# Runs as root, without systemd. Idempotent: daemons already running with the same config are
# left alone; a changed config restarts them. The node is called `localhost` (whatever the
# machine's hostname), partition `debug` (default, no time limit), no accounting: this is what
# site_configs/slurm-ci.toml submits to.
#
# Environment:
#   RASTERFLOW_SLURM_DIR      state, spool, logs and PID files   [/var/lib/rasterflow-slurm]
#   RASTERFLOW_SLURM_TIMEOUT  seconds to wait for an idle node    [60]
#
# Facts found on this kind of machine (container / gVisor): the cgroup proctrack plugin fails
# with "Plugin initialization failed", so ProctrackType=proctrack/linuxproc and TaskPlugin=
# task/none; slurmd must be started with `-N localhost` because the hostname is not
# `localhost`; select/cons_tres so that a job gets the CPUs it asks for, not the whole node.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo --preserve-env=RASTERFLOW_SLURM_DIR,RASTERFLOW_SLURM_TIMEOUT "$0" "$@"
    fi
    echo "slurm_up: must run as root (or with sudo available)" >&2
    exit 1
fi

BASE=${RASTERFLOW_SLURM_DIR:-/var/lib/rasterflow-slurm}
TIMEOUT=${RASTERFLOW_SLURM_TIMEOUT:-60}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARKER="# written by rasterflow .ci/slurm_up.sh"

log() { echo "slurm_up: $*"; }
die() {
    echo "slurm_up: ERROR: $*" >&2
    exit 1
}

pid_alive() { # pid_alive FILE: the PID in FILE is a running process
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# --- 1. install ------------------------------------------------------------------------------
export PATH=$PATH:/usr/sbin:/sbin
missing=()
for cmd in slurmctld slurmd sinfo srun sbatch munged munge; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if ((${#missing[@]})); then
    log "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # No init system here: keep the packages' postinst scripts from starting the daemons.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        own_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    ((own_policy)) && rm -f "$policy"
fi

# --- 2. munge --------------------------------------------------------------------------------
id munge >/dev/null 2>&1 || die "user 'munge' does not exist (is the munge package installed?)"
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    elif command -v create-munge-key >/dev/null 2>&1; then
        create-munge-key -f
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key

if pid_alive /run/munge/munged.pid && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running (pid $(cat /run/munge/munged.pid))"
else
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    log "starting munged as user munge"
    runuser -u munge -- munged --force
    for _ in $(seq 50); do
        munge -n </dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null | unmunge >/dev/null 2>&1 ||
        die "munged does not answer; see /var/log/munge/munged.log"
fi

# --- 3. slurm.conf ---------------------------------------------------------------------------
mkdir -p "$BASE"/{ctld,spool,log,run} $CONF_DIR
chmod 0755 "$BASE" "$BASE"/{ctld,spool,log,run}
CPUS=$(nproc)
# Slurm drains a node that reports less memory than RealMemory: stay ~10 % under the total
# (a fixed function of MemTotal, so the file, and hence idempotency, does not drift).
MEM_TOTAL_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MEM=$((MEM_TOTAL_MB * 9 / 10))

new_conf=$(
    cat <<EOF
$MARKER
# Single-node CI cluster: node "localhost", partition "debug". Do not edit by hand.
ClusterName=rasterflow-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$BASE/ctld
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
)

restart=0
if [[ -f $CONF ]] && [[ "$(cat "$CONF")" == "$new_conf" ]]; then
    log "$CONF is up to date"
else
    if [[ -f $CONF ]] && ! grep -qxF "$MARKER" "$CONF"; then
        log "backing up the existing $CONF to $CONF.rasterflow-backup"
        cp -p "$CONF" "$CONF.rasterflow-backup"
    fi
    log "writing $CONF (node localhost: CPUs=$CPUS RealMemory=$REAL_MEM)"
    printf '%s\n' "$new_conf" >"$CONF"
    chmod 0644 "$CONF"
    restart=1
fi

# --- 4. daemons ------------------------------------------------------------------------------
if ((restart)) && { pid_alive "$BASE/run/slurmctld.pid" || pid_alive "$BASE/run/slurmd.pid"; }; then
    log "config changed: restarting the Slurm daemons"
    "$(dirname "$0")/slurm_down.sh" --keep-munge
fi

if pid_alive "$BASE/run/slurmctld.pid"; then
    log "slurmctld already running (pid $(cat "$BASE/run/slurmctld.pid"))"
else
    log "starting slurmctld"
    slurmctld || die "slurmctld did not start; see $BASE/log/slurmctld.log"
fi
if pid_alive "$BASE/run/slurmd.pid"; then
    log "slurmd already running (pid $(cat "$BASE/run/slurmd.pid"))"
else
    log "starting slurmd -N localhost"
    slurmd -N localhost || die "slurmd did not start; see $BASE/log/slurmd.log"
fi

# --- 5. wait until the node is usable ----------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n1 || true)
    # A trailing "*" means the node does not answer yet: keep waiting.
    case $state in
    idle | mixed | allocated | completing) break ;;
    drain* | down* | inval* | fail*)
        # A node left down by an earlier run (ReturnToService covers most cases).
        scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 0.5
done
case $state in
idle | mixed | allocated | completing) ;;
*)
    echo "slurm_up: ERROR: node localhost not idle after ${TIMEOUT}s (state: '${state:-none}')" >&2
    sinfo -N -l >&2 || true
    scontrol show node localhost >&2 || true
    echo "--- tail $BASE/log/slurmctld.log" >&2
    tail -n 20 "$BASE/log/slurmctld.log" >&2 || true
    echo "--- tail $BASE/log/slurmd.log" >&2
    tail -n 20 "$BASE/log/slurmd.log" >&2 || true
    exit 1
    ;;
esac
log "Slurm is up: node localhost is $state"
sinfo
