#!/usr/bin/env bash
# A Slurm cluster of one node, this machine, to test slurm-grid.sbatch on a
# real Slurm (the project's Slurm test, cmd/sgt/slurm_test.go, and CI use it).
# Debian or Ubuntu, as root; it starts munged, slurmctld and slurmd itself,
# without systemd, and keeps all their state in one directory.
#
#   slurm-test-cluster.sh install     apt-get install slurm-wlm and munge,
#                                     without starting their services
#   slurm-test-cluster.sh start DIR   configure and start the cluster in DIR;
#                                     prints SLURM_CONF=DIR/slurm.conf, which
#                                     sbatch, squeue and sinfo then need
#   slurm-test-cluster.sh stop DIR    stop it (DIR/log stays)
#
# SLURM_TEST_PORT (default 6827) is slurmctld's port; slurmd takes the next.
set -euo pipefail

say() { echo "slurm-test-cluster: $*" >&2; }
fail() {
  say "$*"
  exit 1
}

need_root() { [ "$(id -u)" -eq 0 ] || fail "must run as root (it starts the Slurm and munge daemons)"; }

# install puts the Debian packages in place. Their maintainer scripts would
# start the services through invoke-rc.d; a policy-rc.d that answers 101
# ("action forbidden") keeps them stopped while apt runs.
install() {
  need_root
  local missing=""
  for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
  done
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null 2>&1 || fail "missing$missing and no apt-get to install slurm-wlm and munge"
  local policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  say "installing slurm-wlm and munge"
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
  if [ "$status" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || status=$?
  fi
  [ -n "$ours" ] && rm -f "$policy"
  [ "$status" -eq 0 ] || fail "apt-get could not install slurm-wlm and munge (status $status)"
}

# pid_of NAME FILE prints the pid in FILE if a live process NAME has it.
pid_of() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

# halt NAME FILE ends the daemon NAME whose pid FILE holds: SIGTERM, then
# SIGKILL after 10 s.
halt() {
  local pid
  pid=$(pid_of "$1" "$2") || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    pid_of "$1" "$2" >/dev/null || return 0
    sleep 0.2
  done
  say "$1 ($pid) still running after SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  local dir=$1
  export SLURM_CONF=$dir/slurm.conf
  if pid_of slurmctld "$dir/slurmctld.pid" >/dev/null; then
    scancel --full "--user=$(id -un)" 2>/dev/null || true
  fi
  halt slurmd "$dir/slurmd.pid"
  halt slurmctld "$dir/slurmctld.pid"
  halt munged "$dir/munge/munged.pid"
  rm -rf "$dir/state" "$dir/spool" "$dir/munge"
}

start() {
  local dir=$1 port=${SLURM_TEST_PORT:-6827}
  need_root
  for tool in munged munge slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing: run \"$0 install\" first"
  done
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  stop "$dir"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
  local node cpus mem
  node=$(hostname -s)
  cpus=$(nproc)
  # The node's memory in MB, less a margin that the daemons keep.
  mem=$(awk '/^MemTotal:/ { m = int($2 / 1024); print m - (m > 10240 ? 1024 : int(m / 10)) }' /proc/meminfo)

  # munge: a key and a daemon of our own, on our own socket. munged runs as
  # the user munge, who must be able to reach DIR.
  chmod 755 "$dir"
  runuser -u munge -- test -x "$dir" || fail "the user munge cannot reach $dir: every directory above it must be world-executable"
  chown munge:munge "$dir/munge"
  chmod 755 "$dir/munge"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chown munge:munge "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  local socket=$dir/munge/munged.socket
  runuser -u munge -- munged --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" ||
    fail "munged did not start: $(cat "$dir/munge/munged.log" 2>/dev/null)"
  munge --socket="$socket" --no-input | unmunge --socket="$socket" >/dev/null || fail "munge cannot decode its own credential"

  cat >"$dir/slurm.conf" <<EOF
# Written by deploy/slurm-test-cluster.sh: one node, this machine.
ClusterName=sgt-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups, no accounting: processes are tracked by their parents.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
# CPUs are the unit of allocation (the node is given as CPUs only, without
# sockets and cores), so that array tasks of 1 CPU share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start: $(tail -5 "$dir/log/slurmctld.log" 2>/dev/null)"
  slurmd -f "$SLURM_CONF" || fail "slurmd did not start: $(tail -5 "$dir/log/slurmd.log" 2>/dev/null)"
  local state=""
  for _ in $(seq 60); do
    state=$(sinfo --noheader --nodes="$node" --format=%t 2>/dev/null || true)
    case $state in idle | mix | alloc) break ;; esac
    sleep 0.5
  done
  case $state in
  idle | mix | alloc) ;;
  *)
    tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    fail "node $node is not ready (state \"$state\")"
    ;;
  esac
  say "node $node up: $cpus CPUs, $mem MB"
  echo "SLURM_CONF=$SLURM_CONF"
}

case ${1:-} in
install) install ;;
start)
  [ $# -eq 2 ] || fail "usage: $0 start DIR"
  start "$2"
  ;;
stop)
  [ $# -eq 2 ] || fail "usage: $0 stop DIR"
  stop "$(cd "$2" && pwd)"
  ;;
*)
  sed -n '2,15p' "$0" >&2
  exit 2
  ;;
esac
