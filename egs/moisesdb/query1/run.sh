#!/usr/bin/env bash
# MoisesDB query recipe (Banquet): separate any stem named by an audio clip from another song.
# Set MOISESDB in db.sh (or export it), then ./run.sh; see README.md. Options: ./run.sh --help
# (later options win), e.g. --train_config conf/train_vdbgp.yaml.
set -euo pipefail
cd "$(dirname "$0")"

./query.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_config conf/train_vdb.yaml \
    --query_seconds 10 \
    --ngpu 1 \
    "$@"
