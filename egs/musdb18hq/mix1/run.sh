#!/usr/bin/env bash
# MUSDB18-HQ recipe: a learned mixer on the 4 stems (vocals, drums, bass, other), 44.1 kHz
# stereo: the stems distorted on the fly (volume, pan, EQ), the model learns the programs that
# undo it. Set MUSDB18HQ in db.sh (shared with ../sep1), then ./run.sh; see README.md.
# Options: ./run.sh --help (later options win).
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
