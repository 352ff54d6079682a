#!/usr/bin/env bash
# Mini recipe: a synthetic 4-stem dataset in MUSDB18-HQ's layout, trained and scored on a CPU.
# Runs every stage in a few minutes on 2 cores; see README.md. Options: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

./sep.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train.yaml \
    --score_metrics sdr,si_sdr \
    --nj 2 \
    "$@"
