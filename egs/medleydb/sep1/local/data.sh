#!/usr/bin/env bash
# Stage 1 of the MedleyDB recipe: sum each track's stems into instrument groups under
# ${audio_out} and write data/{train,valid,test} (banda.bin.prepare_medleydb; see its --help).
set -euo pipefail

stems=vocals,drums,bass,guitar,piano,other
audio_out=data/local/medleydb_stems   # the summed group stems: <audio_out>/<track>/<group>.wav
metadata_dir=               # default: ${MEDLEYDB}/Metadata, then each track folder
valid_tracks=               # files of track names, one per line; without them the split is
test_tracks=                #   drawn by artist with the fractions and seed below
valid_fraction=0.1
test_fraction=0.2
seed=0
exclude_bleed=false         # leave out tracks whose metadata says has_bleed: yes
mixture=mix                 # mix: the track's _MIX.wav; sum: the sum of the groups
mixing_coefficients=        # YAML of per-stem mixing coefficients (see README.md)
bit_depth=16
map=                        # instrument label overrides, e.g. "electric piano=other;theremin=other"
help_message="Usage: local/data.sh [--stems LIST] [--audio_out DIR] [--valid_tracks FILE] [--test_tracks FILE]
  [--valid_fraction F] [--test_fraction F] [--seed N] [--exclude_bleed true|false] [--mixture mix|sum]
  [--mixing_coefficients FILE] [--bit_depth 16|24|32] [--map 'LABEL=GROUP;...'] [--metadata_dir DIR]"
. utils/parse_options.sh
. ./path.sh
. ./db.sh

utils/require_db.sh MEDLEYDB "${MEDLEYDB}"
args=(--root "${MEDLEYDB}" --out data --audio-out "${audio_out}" --stems "${stems}"
      --valid-fraction "${valid_fraction}" --test-fraction "${test_fraction}" --seed "${seed}"
      --mixture "${mixture}" --bit-depth "${bit_depth}")
[ -n "${metadata_dir}" ] && args+=(--metadata-dir "${metadata_dir}")
[ -n "${valid_tracks}" ] && args+=(--valid-tracks "${valid_tracks}")
[ -n "${test_tracks}" ] && args+=(--test-tracks "${test_tracks}")
[ -n "${mixing_coefficients}" ] && args+=(--mixing-coefficients "${mixing_coefficients}")
[ -n "${map}" ] && args+=(--map "${map}")
[ "${exclude_bleed}" = true ] && args+=(--exclude-bleed)
python -m banda.bin.prepare_medleydb "${args[@]}"
