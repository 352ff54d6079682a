#!/usr/bin/env bash
# Mini codec recipe: synthetic 4-channel acoustic scenes (moving and static sources, noise
# beds) coded by a small SEANet autoencoder trained against a multi-scale STFT discriminator
# on a CPU. See README.md. Options: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

./codec.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train.yaml \
    --nj 2 \
    --untrained_baseline true \
    "$@"
