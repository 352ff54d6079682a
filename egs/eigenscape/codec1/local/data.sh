#!/usr/bin/env bash
# Stage 1 of the EigenScape codec recipe: find the recordings and write the codec data dirs
# data/train, data/valid and data/test (banda-prepare-eigenscape; each file is its own reference).
set -euo pipefail

layout=ambisonics    # ambisonics (<Scene>.<n>.wav, 25 channels) or raw (32 capsules)
splits=by-recording  # by-recording (7 valid, 8 test, the rest train) or all (every file in every split)
help_message="Usage: local/data.sh [--layout ambisonics|raw] [--splits by-recording|all]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh EIGENSCAPE "${EIGENSCAPE}"
python -m banda.bin.prepare_eigenscape --root "${EIGENSCAPE}" --out data --layout "${layout}" --splits "${splits}"
