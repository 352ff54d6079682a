#!/usr/bin/env bash
# MUSDB18-HQ recipe: 4-stem music separation (vocals, drums, bass, other), 44.1 kHz stereo.
# Set MUSDB18HQ in db.sh (or export it), then ./run.sh; see README.md for the configs and
# how to train one BSRNN model per stem. Options: ./run.sh --help (later options win).
set -euo pipefail
cd "$(dirname "$0")"

# Stage 5 reports uSDR (sdr, mean over tracks), SI-SDR and museval's cSDR (bss_sdr: BSS-Eval v4,
# median over 1 s frames, then median over tracks: the number MUSDB18-HQ papers quote).
./sep.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train_bandit_musical64.yaml \
    --ngpu 1 \
    --nj 4 \
    --score_metrics sdr,si_sdr,bss_eval \
    --score_jobs 4 \
    "$@"
