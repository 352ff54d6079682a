#!/usr/bin/env bash
# Usage: utils/require_db.sh VARIABLE "${VARIABLE}"
# Stops a recipe's data prep when a corpus path from db.sh is unset or missing, naming the
# variable to fill. Exits 0 when the path is a readable folder.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "Usage: $0 VARIABLE \"\${VARIABLE}\"" >&2
    exit 1
fi
name=$1
value=$2
if [ -z "${value}" ]; then
    echo "Error: the corpus path ${name} is empty: fill the value of '${name}' in db.sh (or export ${name}=/path)" >&2
    exit 2
fi
if [ ! -d "${value}" ]; then
    echo "Error: ${name}=${value} does not exist: fix the value of '${name}' in db.sh (or export ${name}=/path)" >&2
    exit 2
fi
