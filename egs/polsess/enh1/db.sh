# Corpus location: the PolSESS folder with train/ val/ test/ (each with clean/ event/ mix/ scene/
# sp1_reverb/ sp2_reverb/ ev_reverb/ and its corpus_PolSESS_C_in_<split>_final.csv).
POLSESS=${POLSESS:-}
