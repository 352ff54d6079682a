#!/usr/bin/env bash
# Stage 1 of the mini codec recipe: synthesize seeded multichannel acoustic scenes (once) with
# banda-synth-scenes and write the codec data dirs data/train, data/valid and data/test.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

num_train=160    # scenes per split
num_valid=8
num_test=8
duration=2       # seconds per scene
sample_rate=16000
channels=4       # capsules of the virtual microphone array
seed=0
help_message="Usage: local/data.sh [--num_train N] [--num_valid N] [--num_test N] [--duration S] [--sample_rate HZ] [--channels C] [--seed N]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

signature="${num_train} ${num_valid} ${num_test} ${duration} ${sample_rate} ${channels} ${seed}"
if [ ! -f "${MINI_SCENES}/.complete" ] || [ "$(cat "${MINI_SCENES}/.complete")" != "${signature}" ] \
        || [ ! -f data/train/mix.scp ] || [ ! -f data/valid/mix.scp ] || [ ! -f data/test/mix.scp ]; then
    log "Synthesizing ${num_train}+${num_valid}+${num_test} scenes of ${duration} s, ${channels} channels, into ${MINI_SCENES}"
    rm -rf "${MINI_SCENES}"
    python -m banda.bin.synth_scenes --out "${MINI_SCENES}" --num-train "${num_train}" --num-valid "${num_valid}" \
        --num-test "${num_test}" --duration "${duration}" --sample-rate "${sample_rate}" --channels "${channels}" \
        --seed "${seed}" --data-out data --no-progress
    echo "${signature}" > "${MINI_SCENES}/.complete"
else
    log "Found ${MINI_SCENES} and its data dirs; not synthesizing again"
fi
utils/require_db.sh MINI_SCENES "${MINI_SCENES}"
