#!/usr/bin/env bash
# MedleyDB recipe: a learned mixer on six instrument-group stems (vocals, drums, bass, guitar,
# piano, other) summed from MedleyDB's multitracks (stage 1 of ../sep1). Set MEDLEYDB in db.sh
# (shared with ../sep1), then ./run.sh; see README.md. Options: ./run.sh --help.
set -euo pipefail
cd "$(dirname "$0")"

./mix.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train.yaml \
    --ngpu 1 \
    --clips_per_track 8 \
    "$@"
