#!/usr/bin/env bash
# subset_data_dir.sh: copy some ids of a data dir into a new data dir
#
# Usage: utils/subset_data_dir.sh <src-dir> <dst-dir> (--ids <file> | --first N | --last N)
#
#   --ids FILE   keep the ids in the first field of each line of FILE (an scp works)
#   --first N    keep the first N ids;  --last N  keep the last N ids
# Runs "python -m banda.bin.data_dir subset"; problems with the data are one line on stderr,
# exit status 2. Python: $BANDA_PYTHON, else tools/venv/bin/python of this checkout if it
# exists, else python3; this checkout is put on PYTHONPATH.
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
python=${BANDA_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/tools/venv/bin/python" ]; then python=$root/tools/venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m banda.bin.data_dir subset "$@"
