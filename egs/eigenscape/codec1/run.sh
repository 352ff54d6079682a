#!/usr/bin/env bash
# EigenScape neural audio codec: a SEANet autoencoder against a multi-scale STFT
# discriminator, as the codec seed trains it (see README.md).
#   ./run.sh                                         # 1-channel mode: one random channel per item
#   ./run.sh --train_config conf/train_32ch.yaml --local_data_args "--layout raw"   # all 32 capsules
set -euo pipefail
cd "$(dirname "$0")"

./codec.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train_1ch.yaml \
    "$@"
