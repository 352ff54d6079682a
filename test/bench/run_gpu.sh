#!/usr/bin/env bash
# The GPU benchmarks of test/bench/README.md.
#   test/bench/run_gpu.sh all        # issue 13's table in one device call (about 7 minutes on one H100):
#                                    # separate (fp32 batch 16 with the CLI, bf16 batch 64), HTDemucs, train, compile
#   test/bench/run_gpu.sh train      # banda RoFormer recipe vs bs-roformer 0.5.0, bf16 (banda) / fp16 (peer), eager
#   test/bench/run_gpu.sh compile    # banda alone under regional torch.compile, bf16
#   test/bench/run_gpu.sh htdemucs   # the peer of separate: demucs' HTDemucs apply_model on the same song
#   test/bench/run_gpu.sh separate   # banda-separate on a 240 s song, Musical-64 BiGRU, fp32 and bf16
#   test/bench/run_gpu.sh codec      # codec G+D step vs encodec 0.1.1's modules, 1ch and 32ch, fp32 and bf16
# Further options go to the benchmark script (e.g. --steps 40). Needs the wheels in .whl/ (see
# README: "On the GPU machine") carried to the device; writes JSON (stdout) and logs (stderr) to
# $OUT (default: bench-out/).
set -euo pipefail
what=${1:?usage: $0 all|train|compile|separate|htdemucs|codec [extra benchmark options]}
shift
case $what in all|train|compile|separate|htdemucs|codec) ;; *) echo "unknown benchmark: $what (all, train, compile, separate, htdemucs or codec)" >&2; exit 2 ;; esac
out=${OUT:-bench-out}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
if ! python3 -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('soundfile') and u.find_spec('bs_roformer') and u.find_spec('demucs')))" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1 || true
# one benchmark: NAME SECONDS COMMAND... -> $out/NAME.json (stdout); stderr goes to $out/log.txt (the
# device returns at most 8 files); killed after SECONDS
bench() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "== $name: $*" >> "$out/log.txt"
  timeout "$limit" "$@" > "$out/$name.json" 2>> "$out/log.txt" || echo "$name: exit $? after $((SECONDS - t0)) s" | tee -a "$out/log.txt" >&2
  echo "$name: $((SECONDS - t0)) s" | tee -a "$out/log.txt" >&2
}
case $what in
  all)      # the issue's table, most wanted first; each part bounded so that the whole fits one call
            [ $# -eq 0 ] || { echo "all takes no further options" >&2; exit 2; }
            bench separate_fp32 140 python3 "$here/separate_speed.py" --batch-size 16 --repeats 2
            bench separate_bf16 50 python3 "$here/separate_speed.py" --amp bf16 --batch-size 64 --repeats 2 --no-cli
            bench htdemucs 50 python3 "$here/peer_htdemucs.py" --repeats 2
            bench train 130 python3 "$here/train_throughput.py" --count-launches --warmup 3 --steps 10
            bench train_compile 160 python3 "$here/train_throughput.py" --compile --peer off --count-launches --warmup 3 --steps 10 ;;
  train)    bench train 590 python3 "$here/train_throughput.py" --count-launches --profile "$out/prof" "$@" ;;
  compile)  bench train_compile 590 python3 "$here/train_throughput.py" --compile --peer off --count-launches "$@" ;;
  separate) bench separate_fp32 400 python3 "$here/separate_speed.py" --batch-size 4,16,64 "$@"
            bench separate_bf16 190 python3 "$here/separate_speed.py" --amp bf16 --batch-size 16,64 --no-cli "$@" ;;
  htdemucs) bench htdemucs 590 python3 "$here/peer_htdemucs.py" "$@" ;;
  codec)    bench codec 590 python3 "$here/bench_codec.py" --device cuda --amp off,bf16 --steps 10 "$@" ;;
esac
for f in "$out"/*.json; do echo "== $f"; cat "$f"; done
