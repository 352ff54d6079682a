#!/usr/bin/env bash
# Stage script of banda's source-separation recipes (egs/<corpus>/sep1): the separation task.
# A recipe's run.sh sets its corpus choices and forwards "$@" here; stages 1-3 and 6 are the
# shared ones of egs/TEMPLATE/common/stages.sh, the logic lives in the Python entry points.
#
# Stages (run a range with --stage N --stop_stage M; each can be re-run alone):
#   1 data prep   local/data.sh -> data/<set>/{mix.scp,<stem>.scp,utt2num_samples}
#   2 validate    check every data dir (sorting, ids, files, lengths)
#   3 train       exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth, best/averaged weights)
#   4 separate    the test sets, split over --nj jobs -> exp/<tag>/separated/<set>/<track>/<stem>.wav
#   5 score       exp/<tag>/scores/<set>/{long,summary}.csv and exp/<tag>/RESULTS.md (with a mixture row)
#   6 pack        exp/<tag>/model_pack.pth: one self-describing archive (config, weights, versions)
set -euo pipefail

# ---- the separation task's options (the shared ones: egs/TEMPLATE/common/stages.sh) ----
separate_args=          # extra banda-separate options, e.g. "--segment 8 --overlap 0.5"
score_metrics=sdr,si_sdr   # add bss_eval for museval cSDR (slow), pesq/stoi for speech
score_stems=            # stems scored in stage 5 (default: the model's, from ${expdir}/config.yaml)
score_jobs=2
task_help="  --separate_args \"...\"      extra banda-separate options (stage 4)
  --score_metrics LIST       comma-separated metrics for stage 5 (default ${score_metrics})
  --score_stems LIST         stems to score in stage 5 (default: the model's stems)
  --score_jobs N             scoring processes (default ${score_jobs})"

# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../common/stages.sh"
stages_begin "$@"

stage_data
stage_validate
stage_train --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}"

if run_stage 4; then
    for dset in ${test_sets}; do
        outdir=${expdir}/separated/${dset}
        rm -rf "${outdir}"
        # shellcheck disable=SC2086
        split_jobs "data/${dset}" "${outdir}/logs" "Stage 4: separate" \
            python -m banda.bin.separate -m "${expdir}/${inference_model}" --scp SPLIT/mix.scp -o "${outdir}" \
                --no-progress ${separate_args}
    done
fi

if run_stage 5; then
    if [ -z "${score_stems}" ]; then  # a model of some stems (e.g. one BSRNN per stem) scores those only
        score_stems=$(python -c 'import sys; from banda.config import load_yaml; print(",".join(load_yaml(sys.argv[1])["stems"]))' \
                      "${expdir}/config.yaml")
    fi
    for dset in ${test_sets}; do
        log "Stage 5: scoring ${dset} (${score_stems}; ${score_metrics})"
        python -m banda.bin.evaluate --ref "data/${dset}" --est "${expdir}/separated/${dset}" --stems "${score_stems}" \
            --metrics "${score_metrics}" -j "${score_jobs}" -o "${expdir}/scores/${dset}"
    done
fi
stage_results 5
stage_pack 6
stages_end
