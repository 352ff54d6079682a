#!/usr/bin/env bash
# Libri2Mix (8 kHz, min): two-speaker separation in WHAM! noise with Conv-TasNet and a
# permutation-invariant SI-SDR loss; the test sets also score a PolSESS model across corpora
# (see README.md).
set -euo pipefail
cd "$(dirname "$0")"

./enh.sh \
    --train_set train-100_mix_both \
    --valid_set dev_mix_both \
    --test_sets "test_mix_both test_mix_clean" \
    --train_config conf/train.yaml \
    --score_metrics si_sdr,pesq_nb,stoi,estoi \
    "$@"
