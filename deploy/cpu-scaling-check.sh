#!/bin/sh
# cpu-scaling-check.sh: training throughput of sgt against the PyTorch peer at
# 1 to 16 threads, for the 16-core check of the CPU backend's scaling.
#
# Run it on a Linux x86-64 host with 16 cores, python3 and PyTorch (with
# torchvision; the peer's setup.sh installs Debian's), from a copy of this
# folder holding a git-ignored .bench/ with:
#
#   .bench/sgt             the sgt binary (go build -o deploy/.bench/sgt ./cmd/sgt)
#   .bench/peer/bench.py   the peer (a copy of shared/peers/torch: bench.py,
#                          and run.sh's local OpenBLAS under blaslibs/ if set up)
#
# For each workload (ResNet-20 at batch 128 and 512 on 32x32x3, ResNet-50 at
# 224x224x3 batch 64, 10 classes) and each thread count it runs sgt bench and
# the peer one after the other (alternating which goes first), and prints one
# JSON line per run on stdout:
#
#   {"model": "resnet20", "batch": 128, "threads": 4, "side": "sgt", "images_per_s": 812.3, ...}
#
# Progress goes to stderr. The whole check is bounded by BUDGET seconds
# (default 600): every run gets a timeout from what is left, and runs that
# no longer fit are reported with "skipped". Settings (environment):
#
#   THREADS="1 2 4 8 16"   thread counts
#   BUDGET=600             seconds for everything
#   SCALE=1                multiplies every timing window (e.g. 0.2 for a smoke test)
#   WORKLOADS="resnet20:128 resnet20:512 resnet50:64"
#   BENCH_DIR=<this folder>/.bench
#   PEER_ARGS=""           extra peer flags (e.g. --channels-last)
#   PIN=0                  1: pin each run to CPUs 0..threads-1 with taskset
#   PREDICT=1              1: also run `sgt bench --scaling MAX` (one thread, kernels split for the
#                          largest thread count) per ResNet-20 workload: side "sgt-predicted",
#                          with the predicted speedups to set beside the measured ones
#   PROFILE_DIR=""         a folder: each sgt run writes a CPU profile of its timed window
#                          there (sgt-MODEL-bBATCH-tTHREADS.prof, for go tool pprof with the
#                          same binary), to find the serial parts at 16 threads
#   PYTHON                 the Python with torch (default: the first of python3 on PATH,
#                          /usr/bin/python3 and /opt/torch/.venv/bin/python3 that imports it)
#
# The peer's bench.py has no ResNet-50: a few lines of Python below add
# torchvision's resnet50 (10 classes, 3x224x224) to it for this check, and
# otherwise call its main() unchanged. sgt's step is its bench: forward,
# cross-entropy, backward, SGD with Nesterov momentum, as the peer's.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
BENCH_DIR=${BENCH_DIR:-$here/.bench}
THREADS=${THREADS:-1 2 4 8 16}
BUDGET=${BUDGET:-600}
SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-resnet20:128 resnet20:512 resnet50:64}
PEER_ARGS=${PEER_ARGS:-}
PIN=${PIN:-0}
PROFILE_DIR=${PROFILE_DIR:-}
PREDICT=${PREDICT:-1}
if [ -z "${PYTHON:-}" ]; then # the first Python that has torch and torchvision
	PYTHON=python3
	for p in python3 /usr/bin/python3 /opt/torch/.venv/bin/python3; do
		if command -v "$p" >/dev/null && "$p" -c 'import torch, torchvision' 2>/dev/null; then
			PYTHON=$p
			break
		fi
	done
fi

sgt="$BENCH_DIR/sgt"
peer="$BENCH_DIR/peer"
die() { echo "cpu-scaling-check: $*" >&2; exit 2; }
[ -x "$sgt" ] || die "no sgt binary at $sgt (go build -o $sgt ./cmd/sgt)"
[ -f "$peer/bench.py" ] || die "no peer at $peer/bench.py (copy shared/peers/torch there)"
command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed (set PYTHON)"
"$PYTHON" -c 'import torch, torchvision' 2>/dev/null || die "$PYTHON cannot import torch and torchvision (the peer's setup.sh installs them; or set PYTHON)"
case "$BUDGET" in '' | *[!0-9]*) die "BUDGET must be a whole number of seconds, got '$BUDGET'" ;; esac
"$PYTHON" -c "import sys; s = float(sys.argv[1]); assert s > 0" "$SCALE" 2>/dev/null || die "SCALE must be a positive number, got '$SCALE'"
for t in $THREADS; do
	case "$t" in '' | *[!0-9]* | 0) die "THREADS must be positive whole numbers, got '$t'" ;; esac
done
for w in $WORKLOADS; do
	case "$w" in resnet20:[1-9]* | resnet50:[1-9]*) ;; *) die "WORKLOADS entries are resnet20:BATCH or resnet50:BATCH, got '$w'" ;; esac
	case "${w#*:}" in *[!0-9]*) die "WORKLOADS: batch of '$w' is not a whole number" ;; esac
done
export GOMLX_NO_AUTO_INSTALL=1

# The peer's OpenBLAS, as its run.sh sets it up.
if [ -d "$peer/blaslibs/usr/lib/x86_64-linux-gnu/openblas-openmp" ]; then
	export LD_LIBRARY_PATH="$peer/blaslibs/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
fi

# The peer with ResNet-50: bench.py's main() with one more model.
peer_py='
import argparse, sys
sys.path.insert(0, sys.argv.pop(1))
import bench
build = bench.build
def build_with_resnet50(name, shortcut="A"):
    if name == "resnet50":
        import torchvision
        return torchvision.models.resnet50(num_classes=10), (3, 224, 224), 10, 64
    return build(name, shortcut)
bench.build = build_with_resnet50
add_argument = argparse.ArgumentParser.add_argument
def add_argument_with_resnet50(self, *args, **kw):
    if args and args[0] == "--model" and "choices" in kw:
        kw["choices"] = list(kw["choices"]) + ["resnet50"]
    return add_argument(self, *args, **kw)
argparse.ArgumentParser.add_argument = add_argument_with_resnet50
bench.main()
'

start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
ncpu=$(nproc)
scaled() { "$PYTHON" -c "import sys; print(round(float(sys.argv[1]) * float(sys.argv[2]), 2))" "$1" "$SCALE"; }

# emit MODEL BATCH THREADS SIDE SECONDS STATUS OUTFILE: one JSON line from a
# run's output (sgt's --json object, or the peer's RESULT line).
emit() {
	"$PYTHON" - "$@" <<'EOF'
import json, re, sys
model, batch, threads, side, seconds, status, out = sys.argv[1:8]
rec = {"model": model, "batch": int(batch), "threads": int(threads), "side": side,
       "wall_seconds": float(seconds), "host_cpus": int(sys.argv[8])}
text = open(out, errors="replace").read() if out != "-" else ""
try:
    if status != "ok":
        raise ValueError(status)
    if side in ("sgt", "sgt-predicted"):
        r = json.loads(text[text.index("{"):])
        rec.update(images_per_s=r["images_per_s"], images_per_s_best=r["images_per_s_best"],
                   windows=len(r["windows"]), steps=sum(w["steps"] for w in r["windows"]), isa=r["isa"])
        if r.get("scaling"):
            rec.update(serial_fraction=r["scaling"]["serial_fraction"], predicted=r["scaling"]["predicted"])
    else:
        m = re.search(r"^RESULT .*images_per_s_median=([0-9.]+) images_per_s_best=([0-9.]+) windows=(\d+)", text, re.M)
        if not m:
            raise ValueError("no RESULT line")
        rec.update(images_per_s=float(m.group(1)), images_per_s_best=float(m.group(2)), windows=int(m.group(3)))
        steps = re.findall(r"^window \d+: steps=(\d+)", text, re.M)
        rec["steps"] = sum(int(s) for s in steps)
except (ValueError, KeyError) as e:
    rec["error"] = str(e) or "failed"
    tail = text.strip().splitlines()[-3:]
    if tail:
        rec["output_tail"] = tail
print(json.dumps(rec), flush=True)
EOF
}

# run SIDE MODEL BATCH THREADS WARMUP STEPS TIME LIMIT
run() {
	side=$1 model=$2 batch=$3 threads=$4 warmup=$5 steps=$6 time=$7 limit=$8
	left=$((BUDGET - $(elapsed)))
	if [ "$left" -lt 5 ]; then
		echo "  skip $side $model batch $batch threads $threads: out of time" >&2
		emit "$model" "$batch" "$threads" "$side" 0 "skipped: out of time (BUDGET=$BUDGET)" - "$ncpu"
		return
	fi
	[ "$limit" -gt "$left" ] && limit=$left
	pin=""
	[ "$PIN" = 1 ] && pin="taskset -c 0-$((threads - 1))"
	out=$(mktemp)
	t0=$(date +%s)
	echo "  [$(elapsed)s] $side $model batch $batch threads $threads (limit ${limit}s)" >&2
	status=ok
	if [ "$side" = sgt-predicted ]; then
		# shellcheck disable=SC2086
		timeout "$limit" "$sgt" bench --json --model "$model" --batch "$batch" --scaling "$threads" \
			--warmup "$warmup" --steps "$steps" --time "$time" --repeats 1 >"$out" 2>&1 || status="exit status $?"
	elif [ "$side" = sgt ]; then
		prof=""
		[ -n "$PROFILE_DIR" ] && prof="--cpuprofile $PROFILE_DIR/sgt-$model-b$batch-t$threads.prof"
		# shellcheck disable=SC2086
		timeout "$limit" $pin "$sgt" bench --json --model "$model" --batch "$batch" --threads "$threads" \
			--warmup "$warmup" --steps "$steps" --time "$time" --repeats 1 $prof >"$out" 2>&1 || status="exit status $?"
	else
		# shellcheck disable=SC2086
		OMP_NUM_THREADS=$threads timeout "$limit" $pin "$PYTHON" -c "$peer_py" "$peer" --model "$model" --batch "$batch" \
			--threads "$threads" --warmup "$warmup" --steps "$steps" --time "$time" --repeats 1 $PEER_ARGS >"$out" 2>&1 || status="exit status $?"
	fi
	case "$status" in "exit status 124") status="timeout after ${limit}s" ;; esac
	emit "$model" "$batch" "$threads" "$side" $(($(date +%s) - t0)) "$status" "$out" "$ncpu"
	rm -f "$out"
}

[ -z "$PROFILE_DIR" ] || mkdir -p "$PROFILE_DIR" || die "cannot create PROFILE_DIR $PROFILE_DIR"
echo "cpu-scaling-check: $ncpu CPUs, threads {$THREADS}, workloads {$WORKLOADS}, budget ${BUDGET}s" >&2
[ "$ncpu" -ge 16 ] || echo "cpu-scaling-check: note: this host has $ncpu CPUs, fewer than 16" >&2
maxthreads=0
for t in $THREADS; do [ "$t" -gt "$maxthreads" ] && maxthreads=$t; done
first=sgt
for w in $WORKLOADS; do
	model=${w%%:*} batch=${w#*:}
	# Windows per workload: warm-up steps (sgt's first compiles), minimum
	# steps and seconds of the timed window, and a per-run cap, chosen so
	# that the default set fits about 10 minutes on 16 cores.
	case "$model:$batch" in
	resnet20:128) warmup=3 steps=3 time=$(scaled 4) limit=60 ;;
	resnet20:512) warmup=2 steps=2 time=$(scaled 5) limit=90 ;;
	resnet50:*) warmup=1 steps=1 time=$(scaled 4) limit=150 ;;
	*) warmup=2 steps=2 time=$(scaled 5) limit=120 ;;
	esac
	for t in $THREADS; do
		if [ "$first" = sgt ]; then order="sgt peer" first=peer; else order="peer sgt" first=sgt; fi
		for side in $order; do
			run "$side" "$model" "$batch" "$t" "$warmup" "$steps" "$time" "$limit"
		done
	done
	# sgt's own prediction from one thread (sgt bench --scaling), to set
	# beside the measured scaling; ResNet-50 on one thread is too slow for it.
	if [ "$PREDICT" = 1 ] && [ "$model" = resnet20 ] && [ "$maxthreads" -ge 2 ]; then
		run sgt-predicted "$model" "$batch" "$maxthreads" "$warmup" "$steps" "$time" "$limit"
	fi
done
echo "cpu-scaling-check: done in $(elapsed)s" >&2
