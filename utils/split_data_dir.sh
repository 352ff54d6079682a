#!/usr/bin/env bash
# split_data_dir.sh: split a data dir into N parts <src-dir>/splitN/1..N for parallel jobs
#
# Usage: utils/split_data_dir.sh <src-dir> <N>
#
#   The parts are contiguous and their sizes differ by at most 1.
# Runs "python -m banda.bin.data_dir split"; problems with the data are one line on stderr,
# exit status 2. Python: $BANDA_PYTHON, else tools/venv/bin/python of this checkout if it
# exists, else python3; this checkout is put on PYTHONPATH.
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
python=${BANDA_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/tools/venv/bin/python" ]; then python=$root/tools/venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m banda.bin.data_dir split "$@"
