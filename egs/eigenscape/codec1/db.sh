# Corpus location: the EigenScape folder (the Ambisonics release: <Scene>.<n>.wav, 25 channels,
# 48 kHz; or the raw 32-capsule release with --local_data_args "--layout raw").
EIGENSCAPE=${EIGENSCAPE:-}
