#!/usr/bin/env bash
# Stage 1 of the DnR recipe: data/{train,valid,test} from ${DNR} (db.sh): tr -> train,
# cv -> valid, tt -> test (DnR v2; DnR v3's train/val/test are detected too).
set -euo pipefail

stems=speech,music,sfx
splits=auto      # or FOLDER:DATA_DIR pairs, e.g. tr:train,cv:valid,tt:test
help_message="Usage: local/data.sh [--stems LIST] [--splits auto|FOLDER:DATA_DIR,...]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh DNR "${DNR}"
python -m banda.bin.prepare_dnr --root "${DNR}" --out data --stems "${stems}" --splits "${splits}"
