#!/usr/bin/env bash
# Stage 1 of the MoisesDB query recipe: sum each song's tracks per stem under ${audio_out} and
# write data/{train,valid,test} (folds 1-3, 4, 5; banda.bin.prepare_moisesdb, see its --help).
set -euo pipefail

level=coarse                         # coarse: MoisesDB's stems (vocals, guitar, ...); fine: track types
coarse=                              # with level=fine: stems kept whole, e.g. drums (setup C)
audio_out=data/local/moisesdb_stems  # the summed stems: <audio_out>/<song>/<stem>.wav
folds=                               # '<song uuid> <fold>' lines (default: a hash of each uuid)
bit_depth=16
help_message="Usage: local/data.sh [--level coarse|fine] [--coarse STEMS] [--audio_out DIR] [--folds FILE] [--bit_depth 16|24|32]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh MOISESDB "${MOISESDB}"
args=(--root "${MOISESDB}" --out data --audio-out "${audio_out}" --level "${level}" --bit-depth "${bit_depth}")
[ -n "${folds}" ] && args+=(--folds "${folds}")
[ -n "${coarse}" ] && args+=(--coarse "${coarse}")
python -m banda.bin.prepare_moisesdb "${args[@]}"
