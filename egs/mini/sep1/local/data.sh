#!/usr/bin/env bash
# Stage 1 of the mini recipe: synthesize the corpus (MUSDB18-HQ layout) into ${MINI_MUSDB},
# then build data/{train,valid,test} exactly as a real MUSDB18-HQ recipe does.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

num_train=24     # synthetic training tracks (the last num_valid of them become data/valid)
num_test=6
num_valid=4
duration=12      # seconds per track
seed=0
help_message="Usage: local/data.sh [--num_train N] [--num_test N] [--num_valid N] [--duration S] [--seed N]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

if [ ! -f "${MINI_MUSDB}/.complete" ] || [ "$(cat "${MINI_MUSDB}/.complete")" != "${num_train} ${num_test} ${duration} ${seed}" ]; then
    log "Synthesizing ${num_train}+${num_test} tracks of ${duration} s into ${MINI_MUSDB}"
    rm -rf "${MINI_MUSDB}"
    python -m banda.bin.synth_mini --out "${MINI_MUSDB}" --num-train "${num_train}" --num-test "${num_test}" \
        --duration "${duration}" --seed "${seed}"
    echo "${num_train} ${num_test} ${duration} ${seed}" > "${MINI_MUSDB}/.complete"
else
    log "Found ${MINI_MUSDB}; not synthesizing again"
fi
utils/require_db.sh MINI_MUSDB "${MINI_MUSDB}"
python -m banda.bin.prepare_musdb --root "${MINI_MUSDB}" --out data --num-valid "${num_valid}"
