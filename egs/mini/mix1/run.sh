#!/usr/bin/env bash
# Mini recipe: a learned mixer on the synthetic 4-stem corpus of egs/mini/sep1: clean stems
# distorted on the fly (volume, pan, EQ), the model learns the programs that undo it; every
# stage in a few minutes on 2 CPU cores. See README.md. Options: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

./mix.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train.yaml \
    --clips_per_track 8 \
    "$@"
