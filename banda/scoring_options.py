"""The names and defaults of scoring that ``banda-evaluate``'s options show: the metrics
(:mod:`banda.metrics`), the BSS-Eval backends, the metrics scored by default and the accepted
length difference (:mod:`banda.scoring`).

A module of their own, light to import (no numpy, no torch), so that ``--help`` loads neither
library; :mod:`banda.metrics` and :mod:`banda.scoring` re-export them.
"""

#: every metric's name, in the order of :data:`banda.metrics.METRICS`
METRIC_NAMES = ("sdr", "si_sdr", "bss_eval", "pesq", "pesq_nb", "stoi", "estoi", "mel_distance", "stft_distance")
#: who computes ``bss_eval``: banda's own code (:mod:`banda.bsseval`) or museval's
BSS_EVAL_BACKENDS = ("banda", "museval")
DEFAULT_METRICS = ("sdr", "si_sdr")
#: accepted length difference of a reference and its estimate, in samples
DEFAULT_LENGTH_TOLERANCE = 16
