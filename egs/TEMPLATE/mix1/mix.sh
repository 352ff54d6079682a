#!/usr/bin/env bash
# Stage script of banda's learned-mixer recipes (egs/<corpus>/mix1): the mix task. A recipe's
# run.sh sets its corpus choices and forwards "$@" here; stages 1-3 and 5-6 are the shared ones
# of egs/TEMPLATE/common/stages.sh, the logic lives in the Python entry points.
#
# Stages (run a range with --stage N --stop_stage M; each can be re-run alone):
#   1 data prep   local/data.sh -> data/<set>/{mix.scp,<stem>.scp,utt2num_samples}
#   2 validate    check every data dir (sorting, ids, files, lengths)
#   3 train       exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth, best/averaged weights):
#                 clean stems distorted on the fly, the model learns the programs that undo it
#   4 score       distorted clips of every test track repaired by the model's programs:
#                 exp/<tag>/scores/<set>/{long,summary}.csv (stft_distance_ratio, volume_error_db, ...)
#   5 results     exp/<tag>/RESULTS.md
#   6 pack        exp/<tag>/model_pack.pth: one self-describing archive (config, weights, versions)
#   7 automix     the first test track's stems mixed by the model: exp/<tag>/automix/<track>.{mix,wav}
set -euo pipefail

# ---- the mix task's options (the shared ones: egs/TEMPLATE/common/stages.sh) ----
clips_per_track=4       # distorted clips scored per test track (stage 4)
score_args=             # extra banda-mix-eval options, e.g. "--seconds 6"
task_help="  --clips_per_track N        distorted clips scored per test track (default ${clips_per_track})
  --score_args \"...\"         extra banda-mix-eval options (stage 4)"

# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../common/stages.sh"
stages_begin "$@"

stage_data
stage_validate
stage_train --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}"

if run_stage 4; then
    for dset in ${test_sets}; do
        log "Stage 4: scoring ${dset} (${clips_per_track} distorted clips per track, repaired by the model's programs)"
        # shellcheck disable=SC2086
        python -m banda.bin.mix_eval -m "${expdir}/${inference_model}" --data "data/${dset}" \
            --clips-per-track "${clips_per_track}" -o "${expdir}/scores/${dset}" --no-progress ${score_args}
    done
fi
stage_results 5
stage_pack 6

if run_stage 7; then
    dset=${test_sets%% *}
    # the first test track's folder of the first stem it has (a '-' in an scp: a stem the track lacks)
    read -r track path < <(python -c 'import sys
from banda.config import load_yaml
from banda.datadir import ABSENT, read_scp
for stem in load_yaml(sys.argv[1])["stems"]:
    for track, path in read_scp(f"{sys.argv[2]}/{stem}.scp").items():
        if path != ABSENT:
            print(track, path); sys.exit(0)' "${expdir}/config.yaml" "data/${dset}")
    mkdir -p "${expdir}/automix"
    log "Stage 7: automix of ${track} (stems in $(dirname "${path}")) -> ${expdir}/automix/${track}.wav"
    python -m banda.bin.automix -m "${expdir}/${inference_model}" --stems-dir "$(dirname "${path}")" \
        -o "${expdir}/automix/${track}.wav" --no-progress > "${expdir}/automix/${track}.mix"
    log "Program: $(cat "${expdir}/automix/${track}.mix")"
fi
stages_end
