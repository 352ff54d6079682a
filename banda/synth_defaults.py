"""The default sample rates (and channels) of the synthetic data sets, which their entry points'
``--help`` shows: :mod:`banda.synth` (``banda-synth-mini``), :mod:`banda.synth_speech`
(``banda-synth-polsess``) and :mod:`banda.synth_scenes` (``banda-synth-scenes``).

A module of their own, light to import (no numpy), so that ``--help`` loads no numpy; each
synthesizer re-exports its values as ``SAMPLE_RATE`` (and ``CHANNELS``).
"""

MINI_SAMPLE_RATE = 44100  # banda.synth: MUSDB18-HQ's rate
SPEECH_SAMPLE_RATE = 8000  # banda.synth_speech: PolSESS's rate
SCENES_SAMPLE_RATE = 24000  # banda.synth_scenes
SCENES_CHANNELS = 4  # banda.synth_scenes: capsules of the virtual array
