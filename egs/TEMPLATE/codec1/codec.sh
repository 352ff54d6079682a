#!/usr/bin/env bash
# Stage script of banda's neural-audio-codec recipes (egs/<corpus>/codec1): the codec task
# (banda.tasks.codec: a SEANet autoencoder against a multi-scale STFT discriminator). A
# recipe's run.sh sets its corpus choices and forwards "$@" here; stages 1-3 and 6 are the
# shared ones of egs/TEMPLATE/common/stages.sh.
#
# Stages (run a range with --stage N --stop_stage M; each can be re-run alone):
#   1 data prep   local/data.sh -> data/<set>/{mix.scp,reconstruction.scp,utt2num_samples,utt2channels,...}
#                 (codec data dirs: each file is its own reference, see banda/codec_data.py)
#   2 validate    every data dir
#   3 train       exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth with both
#                 models, optimizers and schedulers; best/averaged generator weights)
#   4 code        each test set, encoded and decoded in streaming segments (banda-separate runs
#                 an autoencoder as a separator of one stem, "reconstruction"), split over --nj
#                 jobs -> exp/<tag>/decoded/<set>/<id>/reconstruction.wav
#   5 score       exp/<tag>/scores/<set>/{long,summary}.csv per channel (<stem>.ch<k>) and the
#                 mean over channels, and exp/<tag>/RESULTS.md
# With --untrained_baseline true, stage 3 also saves the untrained model (the same seed's
# initial weights, banda-train --train.max_epochs 0) in exp/<tag>/untrained/, stages 4-5 code
# and score it too, and RESULTS.md shows its row ("untrained") above the trained model's.
#   6 pack        exp/<tag>/model_pack.pth
set -euo pipefail

# ---- the codec task's options (the shared ones: egs/TEMPLATE/common/stages.sh) ----
# The reconstructions are written as 32-bit float (a codec's error, not the format's, is scored).
separate_args="--bit-depth 32"   # banda-separate options for stage 4, e.g. "--bit-depth 32 --segment 10"
score_metrics=si_sdr,mel_distance,stft_distance   # add pesq for speech material
score_jobs=2
untrained_baseline=false  # true: also code and score the untrained model (exp/<tag>/untrained/)
task_help="  --separate_args \"...\"      banda-separate options (stage 4; default ${separate_args})
  --score_metrics LIST       comma-separated metrics for stage 5 (default ${score_metrics})
  --score_jobs N             scoring processes (default ${score_jobs})
  --untrained_baseline BOOL  also code and score the untrained model, a row in RESULTS.md (default ${untrained_baseline})"

# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../common/stages.sh"
stages_begin "$@"

stage_data
stage_validate
stage_train --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}"

# the systems stages 4-5 code and score: "<exp dir>|<weights file>"
systems=("${expdir}|${inference_model}")
if [ "${untrained_baseline}" = true ]; then
    systems+=("${expdir}/untrained|last.pth")
    if run_stage 3; then
        log "Stage 3: the untrained model (initial weights) -> ${expdir}/untrained/last.pth"
        # shellcheck disable=SC2086
        python -m banda.bin.train --config "${train_config}" --exp_dir "${expdir}/untrained" --train.max_epochs 0 \
            --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}" ${train_args} \
            > "${expdir}/untrained.log" 2>&1 || { log "Error: see ${expdir}/untrained.log"; exit 1; }
    fi
fi

if run_stage 4; then
    for system in "${systems[@]}"; do
        dir=${system%|*} weights=${system##*|}
        log "Stage 4: coding with ${dir}/${weights}"
        for dset in ${test_sets}; do
            outdir=${dir}/decoded/${dset}
            rm -rf "${outdir}"
            # shellcheck disable=SC2086
            split_jobs "data/${dset}" "${outdir}/logs" "Stage 4: encode-decode" \
                python -m banda.bin.separate -m "${dir}/${weights}" --scp SPLIT/mix.scp -o "${outdir}" \
                    --no-progress ${separate_args}
        done
    done
fi

if run_stage 5; then
    for system in "${systems[@]}"; do
        dir=${system%|*}
        for dset in ${test_sets}; do
            log "Stage 5: scoring ${dset} of ${dir} (${score_metrics}, per channel)"
            python -m banda.bin.evaluate --ref "data/${dset}" --est "${dir}/decoded/${dset}" --stems reconstruction \
                --metrics "${score_metrics}" --per-channel --no-input-baseline -j "${score_jobs}" -o "${dir}/scores/${dset}"
        done
    done
fi
if [ "${untrained_baseline}" = true ]; then
    stage_results 5 --baseline "untrained=${expdir}/untrained"
else
    stage_results 5
fi
stage_pack 6
stages_end
