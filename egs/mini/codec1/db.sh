# Corpus locations. The mini corpus is synthesized by stage 1 into MINI_SCENES.
MINI_SCENES=${MINI_SCENES:-downloads/mini_scenes}
