#!/usr/bin/env bash
# Stage 1 of the PolSESS recipe: link the corpus's train and val splits as data/train and
# data/valid (MM-IPC reads their layers in training) and write one data dir per test variant,
# data/test_<variant>, for the PolSESS task the model is trained for.
set -euo pipefail

task=ES          # ES (one speaker), EB (both speakers as one signal), SB (each speaker)
splits=test      # the splits written as per-variant data dirs
help_message="Usage: local/data.sh [--task ES|EB|SB] [--splits test]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh POLSESS "${POLSESS}"
mkdir -p data
corpus=$(cd "${POLSESS}" && pwd)
ln -sfn "${corpus}/train" data/train
ln -sfn "${corpus}/val" data/valid
python -m banda.bin.prepare_polsess --root "${POLSESS}" --out data --task "${task}" --splits "${splits}"
