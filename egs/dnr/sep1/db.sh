# Corpus locations (sourced by local/data.sh). Fill in, or export the variable before ./run.sh.
# DNR: the Divide and Remaster root holding the split folders:
#      DnR v2 (https://zenodo.org/records/6949108): the extracted dnr_v2/ folder with tr/, cv/, tt/,
#      each item <split>/<id>/{mix,speech,music,sfx}.wav (44.1 kHz mono);
#      DnR v3: the folder holding train/, val/, test/ (48 kHz: see README.md).
DNR=${DNR:-}
