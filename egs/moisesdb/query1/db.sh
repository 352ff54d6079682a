# Corpus locations (sourced by local/data.sh). Fill in, or export the variable before ./run.sh.
# MOISESDB: the MoisesDB root holding moisesdb_v0.1/<song uuid>/{data.json,<stemName>/<track uuid>.wav}.
MOISESDB=${MOISESDB:-}
