#!/usr/bin/env bash
# Mini recipe: query-based separation (Banquet) on the synthetic 4-stem corpus of egs/mini/sep1,
# queried with clips from other tracks; every stage in a few minutes on 2 CPU cores. See
# README.md. Options: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

./query.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train.yaml \
    --query_seconds 3 \
    "$@"
