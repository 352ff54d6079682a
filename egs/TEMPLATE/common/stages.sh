#!/usr/bin/env bash
# Shared stage logic of every task's stage script (egs/TEMPLATE/<task>1/<task>.sh), sourced
# after that script has declared its own options (and before parse_options.sh runs here):
#
#   my_option=default                  # the task's own options
#   task_help="  --my_option X       ..."
#   . "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../common/stages.sh"
#   stages_begin "$@"                   # options, path.sh, cmd.sh, tag and expdir
#   stage_data; stage_validate; stage_train          # stages 1-3, the same for every task
#   if run_stage 4; then ... split_jobs "data/${dset}" ... ; fi   # the task's stages
#   stage_results 5 ...; stage_pack 6; stages_end
#
# Stages shared by every task:
#   1 data prep   local/data.sh -> data/<set>/...
#   2 validate    check every data dir (sorting, ids, files, lengths)
#   3 train       exp/<tag>/ (config.yaml, train.log, tensorboard/, checkpoint.pth, model archives)
#   (the task's inference and scoring stages; RESULTS.md through stage_results)
#   6 pack        exp/<tag>/model_pack.pth: one self-describing archive (config, weights, versions)

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

# ---- options of every task (each settable as --name value) ----
stage=1
stop_stage=100
nj=2                    # parallel inference jobs
ngpu=0                  # GPUs for training; >1 starts torchrun with that many processes
train_set=train
valid_set=valid
test_sets=test
train_config=conf/train.yaml
tag=                    # exp/<tag>; default: the train config's file name without .yaml
expdir=
train_args=             # extra banda-train overrides, e.g. "--train.max_epochs 5"
init_param=             # fine-tune from these weights (never used to resume)
inference_model=averaged.pth   # weights file in exp/<tag> used for inference and packing
local_data_args=        # options for local/data.sh

common_help="  --stage N --stop_stage M   stages to run
  --nj N                     inference jobs (default ${nj})
  --ngpu N                   training GPUs (default ${ngpu})
  --train_set / --valid_set / --test_sets   data dirs under data/
  --train_config FILE        (default ${train_config})
  --tag NAME                 experiment name under exp/
  --train_args \"...\"         extra banda-train overrides
  --init_param FILE          fine-tune from these weights
  --inference_model FILE     weights in exp/<tag> for inference and packing (default ${inference_model})
  --local_data_args \"...\"    options for local/data.sh"

# Parse the options (the task's and the common ones), set up the environment and the exp dir.
stages_begin() {
    stage_script_args=("$@")
    help_message="Usage: $0 [options]
${common_help}
${task_help:-}"
    . utils/parse_options.sh
    if [ $# -ne 0 ]; then
        log "Error: unexpected positional argument(s): $*"
        exit 2
    fi
    . ./path.sh
    . ./cmd.sh
    [ -z "${tag}" ] && tag=$(basename "${train_config}" .yaml)
    [ -z "${expdir}" ] && expdir=exp/${tag}
    return 0
}

# run_stage N: whether stage N is inside --stage .. --stop_stage
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

stage_data() {
    run_stage 1 || return 0
    log "Stage 1: data preparation (local/data.sh ${local_data_args})"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_args}
}

stage_validate() {
    run_stage 2 || return 0
    log "Stage 2: validate data dirs"
    for dset in ${train_set} ${valid_set} ${test_sets}; do
        utils/validate_data_dir.sh "data/${dset}"
    done
}

# stage_train [extra banda-train options...]: stage ${train_stage} (3 unless the task script sets it; also
# writes exp/<tag>/run.sh, which re-runs it all)
stage_train() {
    run_stage "${train_stage:-3}" || return 0
    log "Stage ${train_stage:-3}: training -> ${expdir} (log: ${expdir}/train.log, TensorBoard: ${expdir}/tensorboard)"
    mkdir -p "${expdir}"
    {
        echo "#!/usr/bin/env bash"
        echo "# Re-runs this experiment (extra options are appended, e.g. --stage 4)."
        printf 'cd %q && %q' "$(pwd)" "$0"
        printf ' %q' "${stage_script_args[@]}"
        echo ' "$@"'
    } > "${expdir}/run.sh"
    chmod +x "${expdir}/run.sh"
    local args=(--config "${train_config}" --exp_dir "${expdir}" "$@")
    [ -n "${init_param}" ] && args+=(--init_param "${init_param}")
    local launcher="python -m banda.bin.train"
    [ "${ngpu}" -gt 1 ] && launcher="torchrun --standalone --nproc_per_node ${ngpu} -m banda.bin.train"
    [ "${ngpu}" -gt 0 ] && args+=(--train.device cuda)
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" "${expdir}/logs/train.stdout.log" ${launcher} "${args[@]}" ${train_args}
    log "Training done: $(ls "${expdir}"/*.pth | xargs -n1 basename | tr '\n' ' ')"
}

# split_jobs DATA_DIR LOGDIR NAME COMMAND...: run COMMAND over min(--nj, ids) parts of DATA_DIR
# through the job backend (run.pl or slurm.pl); in COMMAND, SPLIT stands for the part's data dir.
# With run.pl the jobs share this machine: unless OMP_NUM_THREADS is set, each job gets
# cores / jobs threads (jobs of all the cores' threads each slow each other down, by 100x and
# more for a model with an LSTM: every time step is a parallel region whose threads then wait
# for cores).
split_jobs() {
    local data=$1 logdir=$2 name=$3
    shift 3
    local n_ids
    n_ids=$(wc -l < "${data}/mix.scp")
    local jobs=$(( nj < n_ids ? nj : n_ids ))
    utils/split_data_dir.sh "${data}" "${jobs}" > /dev/null
    mkdir -p "${logdir}"
    local cmd=("${@//SPLIT/${data}/split${jobs}/JOB}")
    log "${name}: ${data} (${n_ids} ids, ${jobs} jobs)"
    local with_threads=()
    if [ -z "${OMP_NUM_THREADS:-}" ] && [[ "${decode_cmd}" == *run.pl* ]]; then
        local threads=$(( $(nproc) / jobs ))
        with_threads=(env OMP_NUM_THREADS=$(( threads >= 1 ? threads : 1 )))
    fi
    "${with_threads[@]}" ${decode_cmd} JOB=1:"${jobs}" "${logdir}/${name}.JOB.log" "${cmd[@]}"
}

# stage_results N [banda-results options...]: RESULTS.md of the scored test sets (exp/<tag>/scores/<set>/summary.csv)
stage_results() {
    run_stage "$1" || return 0
    shift
    # shellcheck disable=SC2086
    python -m banda.bin.results --exp_dir "${expdir}" --sets ${test_sets} --out "${expdir}/RESULTS.md" "$@"
    log "Results: ${expdir}/RESULTS.md"
}

# stage_pack N: one self-describing model archive
stage_pack() {
    run_stage "$1" || return 0
    log "Stage $1: packing ${expdir}/${inference_model} -> ${expdir}/model_pack.pth"
    python -m banda.bin.pack --exp_dir "${expdir}" --weights "${inference_model}" --out "${expdir}/model_pack.pth"
}

stages_end() { log "Successfully finished. [elapsed=${SECONDS}s]"; }
