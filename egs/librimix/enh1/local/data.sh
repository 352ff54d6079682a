#!/usr/bin/env bash
# Stage 1 of the Libri2Mix recipe: data dirs data/<split>_<mixtype>/{mix,s1,s2}.scp from
# LibriMix's metadata CSVs (banda-prepare-librimix); paths written on another machine are
# found again under LIBRIMIX.
set -euo pipefail

rate=8k                          # 8k or 16k
mode=min                         # min or max
splits=train-100,dev,test
mix_types=mix_both,mix_clean     # also mix_single (one speaker in noise: s1 only)
help_message="Usage: local/data.sh [--rate 8k|16k] [--mode min|max] [--splits LIST] [--mix_types LIST]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh LIBRIMIX "${LIBRIMIX}"
python -m banda.bin.prepare_librimix --root "${LIBRIMIX}" --out data --rate "${rate}" --mode "${mode}" \
    --splits "${splits}" --mix-types "${mix_types}"
