#!/usr/bin/env bash
# Stage 1 of the mini enhancement recipe: synthesize a small PolSESS-layout corpus (once), link
# its train and val splits as data/train and data/valid (read by MM-IPC in training), and write
# one data dir per test variant, data/test_<variant>, with banda-prepare-polsess.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

num_train=120    # synthetic utterances per split
num_val=12
num_test=28
duration=4       # seconds per utterance
sample_rate=8000
seed=0
task=ES          # PolSESS task: ES (one speaker), EB (both speakers as one signal), SB (each speaker)
help_message="Usage: local/data.sh [--num_train N] [--num_val N] [--num_test N] [--duration S] [--sample_rate HZ] [--seed N] [--task ES|EB|SB]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

signature="${num_train} ${num_val} ${num_test} ${duration} ${sample_rate} ${seed}"
if [ ! -f "${MINI_POLSESS}/.complete" ] || [ "$(cat "${MINI_POLSESS}/.complete")" != "${signature}" ]; then
    log "Synthesizing ${num_train}+${num_val}+${num_test} utterances of ${duration} s into ${MINI_POLSESS}"
    rm -rf "${MINI_POLSESS}"
    python -m banda.bin.synth_polsess --out "${MINI_POLSESS}" --num-train "${num_train}" --num-val "${num_val}" \
        --num-test "${num_test}" --duration "${duration}" --sample-rate "${sample_rate}" --seed "${seed}"
    echo "${signature}" > "${MINI_POLSESS}/.complete"
else
    log "Found ${MINI_POLSESS}; not synthesizing again"
fi
utils/require_db.sh MINI_POLSESS "${MINI_POLSESS}"
mkdir -p data
corpus=$(cd "${MINI_POLSESS}" && pwd)
ln -sfn "${corpus}/train" data/train
ln -sfn "${corpus}/val" data/valid
python -m banda.bin.prepare_polsess --root "${MINI_POLSESS}" --out data --task "${task}" --splits test
