#!/usr/bin/env bash
# Stop the single-node CI Slurm cluster started by .ci/slurm_up.sh, by PID (no systemd).
#
#   .ci/slurm_down.sh                # stop slurmd, slurmctld and munged
#   .ci/slurm_down.sh --keep-munge   # stop the Slurm daemons only
#
# Idempotent: a daemon that is not running is skipped. Leaves the config and state in place,
# so slurm_up.sh starts again quickly.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo --preserve-env=RASTERFLOW_SLURM_DIR "$0" "$@"
    fi
    echo "slurm_down: must run as root (or with sudo available)" >&2
    exit 1
fi

BASE=${RASTERFLOW_SLURM_DIR:-/var/lib/rasterflow-slurm}
keep_munge=0
[[ ${1:-} == --keep-munge ]] && keep_munge=1

stop_pidfile() { # stop_pidfile NAME FILE: SIGTERM, wait up to 10 s, then SIGKILL
    local name=$1 file=$2 pid
    if [[ ! -s $file ]]; then
        echo "slurm_down: $name: no PID file ($file), not running"
        return 0
    fi
    pid=$(cat "$file")
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "slurm_down: $name: pid $pid not running"
        rm -f "$file"
        return 0
    fi
    echo "slurm_down: stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "slurm_down: $name (pid $pid) ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop_pidfile slurmd "$BASE/run/slurmd.pid"
stop_pidfile slurmctld "$BASE/run/slurmctld.pid"
if ((!keep_munge)); then
    stop_pidfile munged /run/munge/munged.pid
fi
