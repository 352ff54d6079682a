#!/usr/bin/env bash
# PolSESS speech enhancement with Conv-TasNet and MM-IPC augmentation (see README.md).
#   ./run.sh                                   # task ES, the default preset
#   ./run.sh --train_config conf/train_eb.yaml --local_data_args "--task EB"
#   ./run.sh --train_config conf/train_sb.yaml --local_data_args "--task SB"
set -euo pipefail
cd "$(dirname "$0")"

./enh.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --variants SER,SR,ER,R,SE,S,E \
    --train_config conf/train_es.yaml \
    --score_metrics si_sdr,pesq,pesq_nb,stoi,estoi \
    "$@"
