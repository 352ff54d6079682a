#!/usr/bin/env bash
# combine_data_dir.sh: merge data dirs that have the same stems and no id in common
#
# Usage: utils/combine_data_dir.sh <dst-dir> <src-dir> [<src-dir> ...]
#
#   Other utt2* files are kept when every source has them.
# Runs "python -m banda.bin.data_dir combine"; problems with the data are one line on stderr,
# exit status 2. Python: $BANDA_PYTHON, else tools/venv/bin/python of this checkout if it
# exists, else python3; this checkout is put on PYTHONPATH.
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
python=${BANDA_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/tools/venv/bin/python" ]; then python=$root/tools/venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m banda.bin.data_dir combine "$@"
