# Corpus locations (sourced by local/data.sh). Fill in, or export the variable before ./run.sh.
# MUSDB18HQ: the MUSDB18-HQ root holding train/ and test/ (https://zenodo.org/records/3338373),
#            e.g. /data/musdb18hq; each track is <split>/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav
MUSDB18HQ=${MUSDB18HQ:-}
