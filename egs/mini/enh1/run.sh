#!/usr/bin/env bash
# Mini speech-enhancement recipe: synthetic speech in noise scenes, events and reverberation, in
# PolSESS's exact layout, enhanced by a small Conv-TasNet (PolSESS task ES with MM-IPC) on a CPU.
# See README.md. Options: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

./enh.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --variants SER,SR,ER,R,SE,S,E \
    --train_config conf/train.yaml \
    --score_metrics si_sdr,pesq,pesq_nb,stoi,estoi \
    --nj 2 \
    "$@"
