# Corpus location: the folder holding Libri2Mix/ (as LibriMix's generate_librimix.sh writes it).
LIBRIMIX=${LIBRIMIX:-}
