#!/usr/bin/env bash
# MedleyDB recipe: six instrument-group stems (vocals, drums, bass, guitar, piano, other) from
# MedleyDB's multitracks. Set MEDLEYDB in db.sh (or export it), then ./run.sh; see README.md.
# Options: ./run.sh --help (later options win).
set -euo pipefail
cd "$(dirname "$0")"

./sep.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train.yaml \
    --ngpu 1 \
    --nj 4 \
    --score_metrics sdr,si_sdr \
    --score_jobs 4 \
    "$@"
