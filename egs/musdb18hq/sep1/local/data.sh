#!/usr/bin/env bash
# Stage 1 of the MUSDB18-HQ recipe: data/{train,valid,test} from ${MUSDB18HQ} (db.sh).
# The 86/14 train/valid split is the standard MUSDB18 one (musdb's "valid" subset) unless
# --valid_tracks FILE (one track name per line) or --num_valid N (last N train tracks) is given.
set -euo pipefail

valid_tracks=    # file of validation track names (default: the standard 14)
num_valid=       # or: the last N train tracks, sorted
stems=vocals,drums,bass,other
help_message="Usage: local/data.sh [--valid_tracks FILE | --num_valid N] [--stems LIST]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh MUSDB18HQ "${MUSDB18HQ}"
args=(--root "${MUSDB18HQ}" --out data --stems "${stems}")
[ -n "${valid_tracks}" ] && args+=(--valid-tracks "${valid_tracks}")
[ -n "${num_valid}" ] && args+=(--num-valid "${num_valid}")
python -m banda.bin.prepare_musdb "${args[@]}"
