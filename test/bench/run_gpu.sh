#!/usr/bin/env bash
# The GPU benchmarks of test/bench/README.md, one device call each (each fits in 10 minutes).
#   test/bench/run_gpu.sh train      # banda RoFormer recipe vs bs-roformer 0.5.0, bf16 (banda) / fp16 (peer), eager
#   test/bench/run_gpu.sh compile    # banda alone under torch.compile, bf16
#   test/bench/run_gpu.sh separate   # banda-separate on a 240 s song, Musical-64 BiGRU, fp32 and bf16
#   test/bench/run_gpu.sh codec      # codec G+D step vs encodec 0.1.1's modules, 1ch and 32ch, fp32 and bf16
# Further options go to the benchmark script (e.g. --steps 40). Needs the wheels in .whl/ (see
# README: "On the GPU machine") carried to the device; writes JSON (stdout) and logs (stderr) to
# $OUT (default: bench-out/).
set -euo pipefail
what=${1:?usage: $0 train|compile|separate|codec [extra benchmark options]}
shift
case $what in train|compile|separate|codec) ;; *) echo "unknown benchmark: $what (train, compile, separate or codec)" >&2; exit 2 ;; esac
out=${OUT:-bench-out}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
if ! python3 -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('soundfile') and u.find_spec('bs_roformer') and u.find_spec('encodec')))" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1 || true
case $what in
  train)    python3 "$here/train_throughput.py" --profile "$out/prof" "$@" > "$out/train.json" 2> "$out/train.err" ;;
  compile)  python3 "$here/train_throughput.py" --compile --peer off "$@" > "$out/train_compile.json" 2> "$out/train_compile.err" ;;
  separate) python3 "$here/separate_speed.py" --batch-size 4,16,64 "$@" > "$out/separate_fp32.json" 2> "$out/separate_fp32.err"
            python3 "$here/separate_speed.py" --amp bf16 --batch-size 16,64 --no-cli "$@" > "$out/separate_bf16.json" 2> "$out/separate_bf16.err" ;;
  codec)    python3 "$here/bench_codec.py" --device cuda --amp off,bf16 --steps 10 "$@" > "$out/codec.json" 2> "$out/codec.err" ;;
esac
cat "$out"/*.json
