#!/usr/bin/env bash
# Stage script of banda's query-based separation recipes (egs/<corpus>/query1): the query task
# (Banquet). A recipe's run.sh sets its corpus choices and forwards "$@" here; stages 1-3 and
# 6-7 are the shared ones of egs/TEMPLATE/common/stages.sh, the logic lives in the Python
# entry points.
#
# Stages (run a range with --stage N --stop_stage M; each can be re-run alone):
#   1 data prep      local/data.sh -> data/<set>/{mix.scp,<stem>.scp,utt2num_samples} ('-': a stem the track lacks)
#   2 validate       check every data dir (sorting, ids, files, lengths)
#   3 query windows  data/<set>/utt2query_offsets: each stem file's most onset-dense window, where queries start
#   4 train          exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth, best/averaged weights)
#   5 score          every test track queried for each stem it holds with a clip from another track (and with
#                    a clip of another stem type): exp/<tag>/scores/<set>/{long,summary}.csv
#   6 results        exp/<tag>/RESULTS.md
#   7 pack           exp/<tag>/model_pack.pth: one self-describing archive (config, weights, versions)
set -euo pipefail

# ---- the query task's options (the shared ones: egs/TEMPLATE/common/stages.sh) ----
query_seconds=10        # query clip length (stages 3 and 5; the training config's data.query_seconds)
score_stems=            # stem types asked for in stage 5 (default: the config's stems)
score_args=             # extra banda-query-eval options, e.g. "--segment 8"
task_help="  --query_seconds S          query clip length in seconds (default ${query_seconds})
  --score_stems LIST         stem types asked for in stage 5 (default: the training config's stems)
  --score_args \"...\"         extra banda-query-eval options (stage 5)"

# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../common/stages.sh"
stages_begin "$@"

stage_data
stage_validate

if run_stage 3; then
    for dset in ${train_set} ${valid_set} ${test_sets}; do
        log "Stage 3: query windows of data/${dset} (${query_seconds} s)"
        python -m banda.bin.data_dir query-offsets "data/${dset}" --seconds "${query_seconds}"
    done
fi

train_stage=4
stage_train --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}" --data.query_seconds "${query_seconds}"

if run_stage 5; then
    if [ -z "${score_stems}" ]; then
        score_stems=$(python -c 'import sys; from banda.config import load_yaml; print(",".join(load_yaml(sys.argv[1])["stems"]))' \
                      "${expdir}/config.yaml")
    fi
    for dset in ${test_sets}; do
        log "Stage 5: scoring ${dset} (${score_stems}; matching and mismatched queries)"
        # shellcheck disable=SC2086
        python -m banda.bin.query_eval -m "${expdir}/${inference_model}" --data "data/${dset}" --stems "${score_stems}" \
            --query-seconds "${query_seconds}" -o "${expdir}/scores/${dset}" --no-progress ${score_args}
    done
fi
stage_results 6
stage_pack 7
stages_end
