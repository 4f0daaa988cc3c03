#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on this machine, for tests and CI.
#
#   sudo .ci/slurm/setup.sh            # install (first time), configure, start, smoke-test
#   sudo .ci/slurm/setup.sh --stop     # stop the daemons this script started (via pidfiles)
#   sudo .ci/slurm/setup.sh --status   # show daemons, sinfo and squeue
#
# Idempotent: re-running it when the cluster is already up only re-checks it and
# runs the smoke test; the daemons are restarted only when the generated slurm.conf
# (or gres.conf) changed or a daemon is not running.
#
# Made for Debian 12 (slurm-wlm 22.05) containers without systemd: munged, slurmctld
# and slurmd are started directly. No cgroups (proctrack/linuxproc, task/none), no
# accounting database (accounting_storage/none), so `sacct` does NOT work here:
# Snakemake's slurm executor must poll with squeue (`--slurm-status-command squeue`),
# which is reliable because MinJobAge below keeps finished jobs visible to squeue.
#
# Environment knobs:
#   CIRCUITSWEEP_SLURM_PARTITION   the default (CPU) partition (default: debug)
#   CIRCUITSWEEP_SLURM_GPU_PARTITION  a second partition on the same node, for GPU
#                                  jobs (default: gpu; empty = none)
#   CIRCUITSWEEP_SLURM_FAKE_GPUS   advertise N fake "gpu" GRES on the node (device
#                                  files are symlinks to /dev/null) so that
#                                  --gpus=N jobs schedule and get CUDA_VISIBLE_DEVICES
#                                  (default: 1; 0 = no GPUs)
#   CIRCUITSWEEP_SLURM_TIMEOUT     seconds to wait for the node to become idle and
#                                  for the smoke jobs (default: 120)
#   CIRCUITSWEEP_SLURM_SKIP_SMOKE  1 = skip the srun/sbatch smoke test
set -euo pipefail

PARTITION="${CIRCUITSWEEP_SLURM_PARTITION:-debug}"
GPU_PARTITION="${CIRCUITSWEEP_SLURM_GPU_PARTITION-gpu}"
FAKE_GPUS="${CIRCUITSWEEP_SLURM_FAKE_GPUS:-1}"
TIMEOUT="${CIRCUITSWEEP_SLURM_TIMEOUT:-120}"
SKIP_SMOKE="${CIRCUITSWEEP_SLURM_SKIP_SMOKE:-0}"

CLUSTER_NAME=circuitsweep
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
GRES_CONF="$CONF_DIR/gres.conf"
STATE_DIR=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid

START_TS=$(date +%s)
log() { echo "slurm-setup: $*"; }
MUNGE_STAGE=0
die() {
    echo "slurm-setup: ERROR: $*" >&2
    local f logs=("$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log")
    [[ $MUNGE_STAGE -eq 1 ]] && logs=(/var/log/munge/munged.log)
    for f in "${logs[@]}"; do
        if [[ -s "$f" ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 15 "$f" >&2 || true
        fi
    done
    exit 1
}

pid_alive() { # pidfile -> 0 if the daemon it names (slurmd.pid -> slurmd) runs under that pid
    # A pidfile left behind by an earlier run of this machine may name a pid that
    # another process has taken since: only the daemon's own command name counts.
    local pid name
    [[ -s "$1" ]] || return 1
    pid=$(cat "$1")
    name=$(basename "$1" .pid)
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]
}

stop_daemon() { # name pidfile
    local name=$1 pidfile=$2 pid i
    if pid_alive "$pidfile"; then
        pid=$(cat "$pidfile")
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) did not stop, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

wait_for() { # seconds command... -> 0 once the command succeeds
    local secs=$1 i
    shift
    for i in $(seq 1 $((secs * 2))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

case "${1:-}" in
    --stop)
        stop_daemon slurmd "$SLURMD_PID"
        stop_daemon slurmctld "$CTLD_PID"
        stop_daemon munged "$MUNGE_PID"
        exit 0
        ;;
    --status)
        for d in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
            if pid_alive "${d#*:}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"; else echo "${d%%:*}: not running"; fi
        done
        sinfo 2>&1 || true
        squeue 2>&1 || true
        exit 0
        ;;
    "") ;;
    *)
        echo "usage: $0 [--stop|--status]" >&2
        exit 2
        ;;
esac

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm-setup: ERROR: must run as root (try: sudo $0)" >&2
    exit 1
fi
[[ "$FAKE_GPUS" =~ ^[0-9]+$ ]] || die "CIRCUITSWEEP_SLURM_FAKE_GPUS must be a non-negative integer, got '$FAKE_GPUS'"

# --- 1. packages -------------------------------------------------------------
need_install=0
for b in slurmctld slurmd sinfo sbatch srun squeue munged munge unmunge; do
    command -v "$b" >/dev/null 2>&1 || need_install=1
done
if [[ $need_install -eq 1 ]]; then
    command -v apt-get >/dev/null 2>&1 || die "slurm/munge missing and apt-get not available (Debian/Ubuntu only)"
    log "installing slurm-wlm and munge with apt-get"
    # keep package postinst scripts from trying to start services (no systemd here)
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_ok=1
    apt-get update -qq || apt_ok=0
    if [[ $apt_ok -eq 1 ]]; then
        apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || apt_ok=0
    fi
    [[ $created_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    [[ $apt_ok -eq 1 ]] || die "apt-get failed to install slurm-wlm and munge"
    for b in slurmctld slurmd sinfo sbatch srun squeue munged; do
        command -v "$b" >/dev/null 2>&1 || die "'$b' still missing after installing slurm-wlm"
    done
else
    log "slurm and munge already installed ($(sinfo --version 2>/dev/null || echo '?'))"
fi

# --- 2. munge ------------------------------------------------------------------
id munge >/dev/null 2>&1 || die "user 'munge' does not exist (package install incomplete?)"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s "$MUNGE_KEY" ]]; then
    log "creating munge key $MUNGE_KEY"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$MUNGE_KEY" --force
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"

MUNGE_STAGE=1
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    stop_daemon munged "$MUNGE_PID"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" ||
        die "munged failed to start (see /var/log/munge/munged.log)"
    wait_for 20 munge_ok || die "munged started but 'munge -n | unmunge' fails"
else
    log "munged already running"
fi

MUNGE_STAGE=0

# --- 3. slurm.conf -------------------------------------------------------------
NODE=$(hostname -s)
[[ -n "$NODE" ]] || die "hostname -s is empty"
NCPUS=$(nproc --all 2>/dev/null || getconf _NPROCESSORS_ONLN)
# memory slurmd itself detects (what it checks RealMemory against); /proc/meminfo as fallback
MEM_MB=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]\+\).*/\1/p' | head -n1 || true)
if [[ -z "$MEM_MB" ]]; then
    MEM_MB=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
fi
[[ "$NCPUS" =~ ^[0-9]+$ && "$NCPUS" -ge 1 ]] || die "could not determine the CPU count (got '$NCPUS')"
[[ "$MEM_MB" =~ ^[0-9]+$ && "$MEM_MB" -ge 256 ]] || die "could not determine memory (got '$MEM_MB' MB)"

install -d -m 0755 "$CONF_DIR" "$STATE_DIR" "$SLURMD_SPOOL" "$LOG_DIR" "$RUN_DIR"

gres_node=""
gres_types=""
if [[ "$FAKE_GPUS" -gt 0 ]]; then
    gres_node=" Gres=gpu:$FAKE_GPUS"
    gres_types="GresTypes=gpu"
fi

new_conf=$(mktemp)
new_gres=$(mktemp)
trap 'rm -f "$new_conf" "$new_gres"' EXIT
cat >"$new_conf" <<EOF
# Generated by circuitsweep .ci/slurm/setup.sh -- single-node test cluster.
# Do not edit by hand: re-running setup.sh rewrites it (and restarts the daemons).
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
# root keeps file ownership simple in a throw-away container
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
# containers: no cgroups, no systemd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# trust the node definition below rather than the (container-distorted) hardware probe
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# jobs without --mem must not grab the whole node
DefMemPerCPU=512
# no accounting database: sacct does not work, poll job state with squeue
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# keep finished jobs visible to 'squeue --states=all' for 10 min; Snakemake's slurm
# executor needs MinJobAge >= 3 * init_seconds_before_status_checks to trust squeue
MinJobAge=600
InactiveLimit=0
KillWait=10
SlurmctldTimeout=60
SlurmdTimeout=60
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NCPUS RealMemory=$MEM_MB$gres_node State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
if [[ -n "$GPU_PARTITION" ]]; then
    echo "PartitionName=$GPU_PARTITION Nodes=$NODE Default=NO MaxTime=INFINITE State=UP" >>"$new_conf"
fi
FAKE_GPU_DIR="$RUN_DIR/fake-gpus"
if [[ "$FAKE_GPUS" -gt 0 ]]; then
    # slurmd only counts a GPU that has a device file (a character device): point
    # symlinks at /dev/null. Jobs get CUDA_VISIBLE_DEVICES but no real GPU.
    install -d -m 0755 "$FAKE_GPU_DIR"
    for ((i = 0; i < FAKE_GPUS; i++)); do ln -sfn /dev/null "$FAKE_GPU_DIR/gpu$i"; done
    printf '# Generated by circuitsweep .ci/slurm/setup.sh: %s fake GPUs (-> /dev/null)\nNodeName=%s Name=gpu File=%s/gpu[0-%s]\n' \
        "$FAKE_GPUS" "$NODE" "$FAKE_GPU_DIR" "$((FAKE_GPUS - 1))" >"$new_gres"
fi

conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
    [[ -e "$CONF" ]] && cp -f "$CONF" "$CONF.bak"
    install -m 0644 "$new_conf" "$CONF"
    conf_changed=1
    log "wrote $CONF (node $NODE: $NCPUS CPUs, ${MEM_MB} MB, partitions $PARTITION ${GPU_PARTITION:-}, fake GPUs $FAKE_GPUS)"
fi
if [[ "$FAKE_GPUS" -gt 0 ]]; then
    if ! cmp -s "$new_gres" "$GRES_CONF"; then
        install -m 0644 "$new_gres" "$GRES_CONF"
        conf_changed=1
    fi
elif [[ -e "$GRES_CONF" ]] && grep -q 'circuitsweep' "$GRES_CONF"; then
    rm -f "$GRES_CONF"
    conf_changed=1
fi

# --- 4. daemons ---------------------------------------------------------------
if [[ $conf_changed -eq 1 ]]; then
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
fi
if pid_alive "$CTLD_PID" && ! wait_for 10 scontrol ping; then
    log "slurmctld (pid $(cat "$CTLD_PID")) does not answer 'scontrol ping', restarting it"
    stop_daemon slurmctld "$CTLD_PID"
fi
if ! pid_alive "$CTLD_PID"; then
    log "starting slurmctld"
    # -c: start from a clean state (a stale node/job state from an earlier config
    # would otherwise be reloaded from $STATE_DIR)
    slurmctld -c || die "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
    wait_for 30 scontrol ping || die "slurmctld does not answer 'scontrol ping'"
else
    log "slurmctld already running (pid $(cat "$CTLD_PID"))"
fi
if ! pid_alive "$SLURMD_PID"; then
    log "starting slurmd"
    slurmd || die "slurmd failed to start (see $LOG_DIR/slurmd.log)"
else
    log "slurmd already running (pid $(cat "$SLURMD_PID"))"
fi

# (|| true: under set -e and pipefail, a failing sinfo would end the script without a word)
node_state() { sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n1 || true; }
node_usable() {
    case "$(node_state)" in
        idle | mix | alloc | comp) return 0 ;;
        *) return 1 ;;
    esac
}
resumed=0
deadline=$(($(date +%s) + TIMEOUT))
until node_usable; do
    state=$(node_state)
    if [[ "$state" == inval* ]]; then
        die "node $NODE is INVAL: slurm.conf does not match what slurmd reports ($(sinfo -h -R -n "$NODE" -o '%E' 2>/dev/null))"
    fi
    if [[ $resumed -eq 0 && "$state" =~ ^(down|drain|drng|fail) ]]; then
        log "node $NODE is '$state', resuming it"
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        resumed=1
    fi
    if [[ $(date +%s) -ge $deadline ]]; then
        sinfo -N -l >&2 || true
        die "node $NODE did not become idle within ${TIMEOUT}s (state: '${state:-none}'," \
            "reason: '$(sinfo -h -R -n "$NODE" -o '%E' 2>/dev/null)')"
    fi
    sleep 1
done
log "node $NODE is $(node_state) in partition $PARTITION"

# --- 5. smoke test ------------------------------------------------------------
if [[ "$SKIP_SMOKE" != "1" ]]; then
    out=$(timeout "$TIMEOUT" srun -N1 -n1 -p "$PARTITION" hostname 2>&1) ||
        die "smoke test 'srun hostname' failed: $out"
    log "srun hostname -> $out"

    smoke_dir=$(mktemp -d /tmp/circuitsweep-slurm-smoke.XXXXXX)
    # shellcheck disable=SC2016 # $SLURM_JOB_ID is expanded by the job, not here
    jobid=$(sbatch --parsable -p "$PARTITION" -t 1 --mem=100 -o "$smoke_dir/slurm-%j.out" -D "$smoke_dir" \
        --wrap 'echo "job=$SLURM_JOB_ID node=$SLURMD_NODENAME" > sbatch-ok.txt') ||
        die "sbatch --wrap submission failed"
    jobid=${jobid%%;*}
    job_state() { squeue -h --states=all -j "$jobid" -o '%T' 2>/dev/null | head -n1; }
    deadline=$(($(date +%s) + TIMEOUT))
    while :; do
        state=$(job_state)
        case "$state" in
            COMPLETED) break ;;
            FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
                cat "$smoke_dir"/slurm-*.out >&2 2>/dev/null || true
                die "smoke sbatch job $jobid ended in state $state"
                ;;
        esac
        if [[ $(date +%s) -ge $deadline ]]; then
            squeue --states=all -j "$jobid" >&2 || true
            die "smoke sbatch job $jobid not COMPLETED within ${TIMEOUT}s (state: '${state:-gone}')"
        fi
        sleep 0.5
    done
    grep -q "job=$jobid" "$smoke_dir/sbatch-ok.txt" 2>/dev/null ||
        die "smoke sbatch job $jobid COMPLETED but did not write its output"
    log "sbatch --wrap job $jobid COMPLETED ($(cat "$smoke_dir/sbatch-ok.txt")); squeue saw it after it finished"
    rm -rf "$smoke_dir"
fi

log "cluster ready in $(($(date +%s) - START_TS))s: partition '$PARTITION', node '$NODE'" \
    "(status polling: squeue; sacct is unavailable: no accounting storage)"
