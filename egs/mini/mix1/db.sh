# Corpus locations. The mini corpus is synthesized by stage 1 into MINI_MUSDB.
MINI_MUSDB=${MINI_MUSDB:-downloads/mini_musdb}
