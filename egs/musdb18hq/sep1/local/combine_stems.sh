#!/usr/bin/env bash
# Score models that each separate some of the stems as one system, e.g. BSRNN's four
# single-stem models:
#
#   local/combine_stems.sh --out exp/bsrnn vocals=exp/train_bsrnn_vocals drums=exp/train_bsrnn_drums \
#       bass=exp/train_bsrnn_bass other=exp/train_bsrnn_other
#
# Every model must have run stage 4 (exp/<tag>/separated/<set>/<track>/<stem>.wav). Their
# outputs are linked into <out>/separated/<set>/<track>/, then banda-evaluate scores all the
# given stems of a track together and banda-results writes <out>/RESULTS.md. Scoring them
# together matters for BSS-Eval: museval's distortion filters project onto every evaluated
# reference, so a cSDR comparable with the published 4-stem numbers needs the 4 stems at once.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
die() { echo "$0: error: $*" >&2; exit 2; }

out=                               # the combined system's exp dir (required)
test_sets=test
score_metrics=sdr,si_sdr,bss_eval
score_jobs=4
help_message="Usage: $0 --out DIR [--test_sets \"test\"] [--score_metrics LIST] [--score_jobs N] STEM=EXP_DIR ..."
. utils/parse_options.sh
[ -n "${out}" ] && [ $# -ge 1 ] || { echo "${help_message}" >&2; exit 1; }
. ./path.sh

stems=()
exps=()
for pair in "$@"; do
    stem=${pair%%=*}
    exp=${pair#*=}
    { [[ "${pair}" == *=* ]] && [ -n "${stem}" ] && [ -n "${exp}" ]; } || die "expected STEM=EXP_DIR, got '${pair}'"
    for seen in "${stems[@]}"; do
        [ "${seen}" != "${stem}" ] || die "stem '${stem}' is given twice"
    done
    stems+=("${stem}")
    exps+=("${exp}")
done
stem_list=$(IFS=,; echo "${stems[*]}")

mkdir -p "${out}"
printf '%s\n' "$@" > "${out}/combined_from"
for dset in ${test_sets}; do
    [ -f "data/${dset}/mix.scp" ] || die "data/${dset}/mix.scp: not found (run stages 1-2 first)"
    est=${out}/separated/${dset}
    rm -rf "${est}"
    for i in "${!stems[@]}"; do
        src=${exps[$i]}/separated/${dset}
        [ -d "${src}" ] || die "${src}: not found (run stage 4 for ${exps[$i]} first)"
        while read -r id _; do
            file=${src}/${id}/${stems[$i]}.wav
            [ -f "${file}" ] || die "${file}: missing (does ${exps[$i]} separate '${stems[$i]}'?)"
            mkdir -p "${est}/${id}"
            ln -s "$(readlink -f "${file}")" "${est}/${id}/${stems[$i]}.wav"
        done < "data/${dset}/mix.scp"
    done
    log "Scoring ${dset} (${stem_list}; ${score_metrics}) -> ${out}/scores/${dset}"
    python -m banda.bin.evaluate --ref "data/${dset}" --est "${est}" --stems "${stem_list}" \
        --metrics "${score_metrics}" -j "${score_jobs}" -o "${out}/scores/${dset}" --no-progress
done
# shellcheck disable=SC2086
python -m banda.bin.results --exp_dir "${out}" --sets ${test_sets} --out "${out}/RESULTS.md" > /dev/null
log "Results: ${out}/RESULTS.md"
