# Corpus locations (sourced by local/data.sh). Fill in, or export the variable before ./run.sh.
# MEDLEYDB: the MedleyDB root holding Audio/<Track>/<Track>_MIX.wav, <Track>_STEMS/, and
#           Metadata/<Track>_METADATA.yaml (MedleyDB v1 and v2 can share one root; metadata
#           inside the track folders, as some copies have it, is found too).
MEDLEYDB=${MEDLEYDB:-}
