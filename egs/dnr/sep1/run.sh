#!/usr/bin/env bash
# Divide and Remaster (DnR) recipe: cinematic audio source separation of a mono soundtrack
# into speech (dialogue), music and sfx (effects). Set DNR in db.sh (or export it), then
# ./run.sh; see README.md. Options: ./run.sh --help (later options win).
set -euo pipefail
cd "$(dirname "$0")"

# Stage 5 reports uSDR (sdr: whole-item SNR, mean over items; the number DnR papers quote)
# and SI-SDR, each with the unprocessed mixture as baseline.
./sep.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train_bandit.yaml \
    --ngpu 1 \
    --nj 4 \
    --score_metrics sdr,si_sdr \
    --score_jobs 4 \
    "$@"
