# Corpus locations. The mini corpus is synthesized by stage 1 into MINI_POLSESS.
MINI_POLSESS=${MINI_POLSESS:-downloads/mini_polsess}
