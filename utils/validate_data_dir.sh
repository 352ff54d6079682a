#!/usr/bin/env bash
# validate_data_dir.sh: check a data dir (sorted files, same ids everywhere, files exist, lengths and rates agree)
#
# Usage: utils/validate_data_dir.sh [--no-audio] <data-dir>
#
#   --no-audio   only check the text files and that the audio files exist
# Runs "python -m banda.bin.data_dir validate"; problems with the data are one line on stderr,
# exit status 2. Python: $BANDA_PYTHON, else tools/venv/bin/python of this checkout if it
# exists, else python3; this checkout is put on PYTHONPATH.
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
python=${BANDA_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/tools/venv/bin/python" ]; then python=$root/tools/venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m banda.bin.data_dir validate "$@"
