#!/usr/bin/env bash
# Shared stage script of banda's source-separation recipes (egs/<corpus>/sep1).
# A recipe's run.sh sets its corpus choices and forwards "$@" here; the logic lives in the
# Python entry points (banda-train, banda-separate, banda-evaluate, ...).
#
# Stages (run a range with --stage N --stop_stage M; each can be re-run alone):
#   1 data prep   local/data.sh -> data/<set>/{mix.scp,<stem>.scp,utt2num_samples}
#   2 validate    check every data dir (sorting, ids, files, lengths)
#   3 train       exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth, best/averaged weights)
#   4 separate    the test sets, split over --nj jobs -> exp/<tag>/separated/<set>/<track>/<stem>.wav
#   5 score       exp/<tag>/scores/<set>/{long,summary}.csv and exp/<tag>/RESULTS.md (with a mixture row)
#   6 pack        exp/<tag>/model_pack.pth: one self-describing archive (config, weights, versions)
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
sep_sh_args=("$@")

# ---- options (each settable as --name value) ----
stage=1
stop_stage=100
nj=2                    # parallel separation jobs in stage 4
ngpu=0                  # GPUs for training; >1 starts torchrun with that many processes
train_set=train
valid_set=valid
test_sets=test
train_config=conf/train.yaml
tag=                    # exp/<tag>; default: the train config's file name without .yaml
expdir=
train_args=             # extra banda-train overrides, e.g. "--train.max_epochs 5"
init_param=             # fine-tune from these weights (never used to resume)
inference_model=averaged.pth   # weights file in exp/<tag> used by stages 4 and 6
separate_args=          # extra banda-separate options, e.g. "--segment 8 --overlap 0.5"
score_metrics=sdr,si_sdr   # add bss_eval for museval cSDR (slow), pesq/stoi for speech
score_stems=            # stems scored in stage 5 (default: the model's, from ${expdir}/config.yaml)
score_jobs=2
local_data_args=        # options for local/data.sh

help_message="Usage: $0 [options]
  --stage N --stop_stage M   stages to run (1 data, 2 validate, 3 train, 4 separate, 5 score, 6 pack)
  --nj N                     separation jobs (default $nj)
  --ngpu N                   training GPUs (default $ngpu)
  --train_config FILE        (default $train_config)
  --tag NAME                 experiment name under exp/
  --train_args \"...\"         extra banda-train overrides
  --init_param FILE          fine-tune from these weights
  --separate_args \"...\"      extra banda-separate options
  --score_metrics LIST       comma-separated metrics for stage 5 (default $score_metrics)
  --score_stems LIST         stems to score in stage 5 (default: the model's stems)
  --local_data_args \"...\"    options for local/data.sh"

. utils/parse_options.sh

if [ $# -ne 0 ]; then
    log "Error: unexpected positional argument(s): $*"
    exit 2
fi

. ./path.sh
. ./cmd.sh

[ -z "${tag}" ] && tag=$(basename "${train_config}" .yaml)
[ -z "${expdir}" ] && expdir=exp/${tag}

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation (local/data.sh ${local_data_args})"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_args}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: validate data dirs"
    for dset in ${train_set} ${valid_set} ${test_sets}; do
        utils/validate_data_dir.sh "data/${dset}"
    done
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: training -> ${expdir} (log: ${expdir}/train.log, TensorBoard: ${expdir}/tensorboard)"
    mkdir -p "${expdir}"
    {
        echo "#!/usr/bin/env bash"
        echo "# Re-runs this experiment (extra options are appended, e.g. --stage 4)."
        printf 'cd %q && %q' "$(pwd)" "$0"
        printf ' %q' "${sep_sh_args[@]}"
        echo ' "$@"'
    } > "${expdir}/run.sh"
    chmod +x "${expdir}/run.sh"
    train_cmd_args=(--config "${train_config}" --exp_dir "${expdir}"
                    --data.train_dir "data/${train_set}" --data.valid_dir "data/${valid_set}")
    [ -n "${init_param}" ] && train_cmd_args+=(--init_param "${init_param}")
    if [ "${ngpu}" -gt 1 ]; then
        launcher="torchrun --standalone --nproc_per_node ${ngpu} -m banda.bin.train"
    else
        launcher="python -m banda.bin.train"
    fi
    [ "${ngpu}" -gt 0 ] && train_cmd_args+=(--train.device cuda)
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" "${expdir}/logs/train.stdout.log" \
        ${launcher} "${train_cmd_args[@]}" ${train_args}
    log "Training done: $(ls "${expdir}"/*.pth | xargs -n1 basename | tr '\n' ' ')"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    for dset in ${test_sets}; do
        n_tracks=$(wc -l < "data/${dset}/mix.scp")
        _nj=$(( nj < n_tracks ? nj : n_tracks ))
        log "Stage 4: separating ${dset} (${n_tracks} tracks, ${_nj} jobs) with ${expdir}/${inference_model}"
        utils/split_data_dir.sh "data/${dset}" "${_nj}" > /dev/null
        outdir=${expdir}/separated/${dset}
        rm -rf "${outdir}"
        mkdir -p "${outdir}/logs"
        # shellcheck disable=SC2086
        ${decode_cmd} JOB=1:"${_nj}" "${outdir}/logs/separate.JOB.log" \
            python -m banda.bin.separate -m "${expdir}/${inference_model}" \
                --scp "data/${dset}/split${_nj}/JOB/mix.scp" -o "${outdir}" --no-progress ${separate_args}
    done
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    if [ -z "${score_stems}" ]; then  # a model of some stems (e.g. one BSRNN per stem) scores those only
        score_stems=$(python -c 'import sys; from banda.config import load_yaml; print(",".join(load_yaml(sys.argv[1])["stems"]))' \
                      "${expdir}/config.yaml")
    fi
    for dset in ${test_sets}; do
        log "Stage 5: scoring ${dset} (${score_stems}; ${score_metrics})"
        python -m banda.bin.evaluate --ref "data/${dset}" --est "${expdir}/separated/${dset}" --stems "${score_stems}" \
            --metrics "${score_metrics}" -j "${score_jobs}" -o "${expdir}/scores/${dset}"
    done
    python -m banda.bin.results --exp_dir "${expdir}" --sets ${test_sets} --out "${expdir}/RESULTS.md"
    log "Results: ${expdir}/RESULTS.md"
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "Stage 6: packing ${expdir}/${inference_model} -> ${expdir}/model_pack.pth"
    python -m banda.bin.pack --exp_dir "${expdir}" --weights "${inference_model}" --out "${expdir}/model_pack.pth"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
