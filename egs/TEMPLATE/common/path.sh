# Sourced by every recipe: installs banda if needed and activates tools/venv.
# BANDA_ROOT may be set by the caller (e.g. a copy of a recipe outside the repository).
BANDA_ROOT=${BANDA_ROOT:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)}
export BANDA_ROOT
if [ ! -f "${BANDA_ROOT}/tools/venv/.banda-installed" ]; then
    echo "path.sh: installing banda into ${BANDA_ROOT}/tools/venv (make -C tools)" >&2
    make -C "${BANDA_ROOT}/tools" >&2
fi
# shellcheck disable=SC1091
. "${BANDA_ROOT}/tools/venv/bin/activate"
export PATH="${BANDA_ROOT}/utils:${PATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
