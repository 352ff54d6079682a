#!/usr/bin/env bash
# Stage script of banda's speech-enhancement recipes (egs/<corpus>/enh1): the enhancement task
# (banda.tasks.enhancement). A recipe's run.sh sets its corpus choices and forwards "$@" here;
# stages 1, 3 and 6 are the shared ones of egs/TEMPLATE/common/stages.sh.
#
# Stages (run a range with --stage N --stop_stage M; each can be re-run alone):
#   1 data prep   local/data.sh -> data/<train>, data/<valid> (data dirs, or corpus folders such as
#                 PolSESS splits read by MM-IPC) and data/<test>[_<variant>]/{mix.scp,<output>.scp,...}
#   2 validate    every data dir (a corpus folder is checked by banda-train before its first step)
#   3 train       exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth, best/averaged weights)
#   4 enhance     each test set (each variant), split over --nj jobs -> exp/<tag>/separated/<set>[_<variant>]/
#   5 score       exp/<tag>/scores/<set>/{long,summary}.csv (a variant column when --variants is set) and
#                 exp/<tag>/RESULTS.md, each metric with the unprocessed input's own score
#   6 pack        exp/<tag>/model_pack.pth
set -euo pipefail

# ---- the enhancement task's options (the shared ones: egs/TEMPLATE/common/stages.sh) ----
variants=               # test-set variants scored apart, data/<set>_<variant> (PolSESS: SER,SR,ER,R,SE,S,E)
# A scale-invariant loss (SI-SDR) leaves the output level free: the estimates are written as
# 32-bit float, which keeps a quiet estimate as exact as a loud one (16-bit would add noise).
separate_args="--bit-depth 32"   # banda-separate options for stage 4, e.g. "--bit-depth 32 --segment 8"
score_metrics=si_sdr,pesq,pesq_nb,stoi,estoi
score_jobs=2
task_help="  --variants LIST            test-set variants, data/<set>_<variant> (default: none)
  --separate_args \"...\"      banda-separate options (stage 4; default ${separate_args})
  --score_metrics LIST       comma-separated metrics for stage 5 (default ${score_metrics})
  --score_jobs N             scoring processes (default ${score_jobs})"

# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../common/stages.sh"
stages_begin "$@"

# the data dirs of a test set: <set>_<variant> for each variant, or <set> itself
test_dirs() {
    if [ -n "${variants}" ]; then
        for v in ${variants//,/ }; do echo "$1_${v}"; done
    else
        echo "$1"
    fi
}

stage_data

if run_stage 2; then
    log "Stage 2: validate data dirs"
    for dset in ${train_set} ${valid_set}; do
        if [ -f "data/${dset}/mix.scp" ]; then
            utils/validate_data_dir.sh "data/${dset}"
        else
            log "data/${dset}: a corpus folder, checked by banda-train before its first step"
        fi
    done
    for tset in ${test_sets}; do
        for dset in $(test_dirs "${tset}"); do
            utils/validate_data_dir.sh "data/${dset}"
        done
    done
fi

stage_train --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}"

if run_stage 4; then
    for tset in ${test_sets}; do
        for dset in $(test_dirs "${tset}"); do
            outdir=${expdir}/separated/${dset}
            rm -rf "${outdir}"
            # shellcheck disable=SC2086
            split_jobs "data/${dset}" "${outdir}/logs" "Stage 4: enhance" \
                python -m banda.bin.separate -m "${expdir}/${inference_model}" --scp SPLIT/mix.scp -o "${outdir}" \
                    --no-progress ${separate_args}
        done
    done
fi

if run_stage 5; then
    for tset in ${test_sets}; do
        log "Stage 5: scoring ${tset} (${score_metrics}${variants:+; variants ${variants}})"
        if [ -n "${variants}" ]; then
            python -m banda.bin.evaluate --ref "data/${tset}_{variant}" --est "${expdir}/separated/${tset}_{variant}" \
                --variants "${variants}" --metrics "${score_metrics}" -j "${score_jobs}" -o "${expdir}/scores/${tset}"
        else
            python -m banda.bin.evaluate --ref "data/${tset}" --est "${expdir}/separated/${tset}" \
                --metrics "${score_metrics}" -j "${score_jobs}" -o "${expdir}/scores/${tset}"
        fi
    done
fi
stage_results 5
stage_pack 6
stages_end
