"""banda: audio source separation, speech enhancement and neural audio coding recipes."""
import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r'__version__ = "([^"]+)"', (here / "banda" / "__init__.py").read_text()).group(1)

setup(
    name="banda",
    version=version,
    description="PyTorch toolkit for audio source separation, speech enhancement and neural audio coding",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["banda", "banda.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.5",  # torch.serialization.safe_globals
        "torchaudio>=2.5",
        "numpy>=1.23",
        "soundfile>=0.12",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "tensorboard>=2.12",
    ],
    extras_require={
        "metrics": ["museval>=0.4", "pesq>=0.0.4", "pystoi>=0.3", "scipy>=1.6"],  # scipy: bsseval's CPU FFT
        "mamba": ["mambapy>=1.2"],
        "test": ["pytest>=7", "museval>=0.4", "pesq>=0.0.4", "pystoi>=0.3"],
    },
    entry_points={
        "console_scripts": [
            "banda-train=banda.bin.train:main",
            "banda-separate=banda.bin.separate:main",
            "banda-evaluate=banda.bin.evaluate:main",
            "banda-prepare-musdb=banda.bin.prepare_musdb:main",
            "banda-prepare-dnr=banda.bin.prepare_dnr:main",
            "banda-prepare-medleydb=banda.bin.prepare_medleydb:main",
            "banda-prepare-moisesdb=banda.bin.prepare_moisesdb:main",
            "banda-prepare-polsess=banda.bin.prepare_polsess:main",
            "banda-prepare-librimix=banda.bin.prepare_librimix:main",
            "banda-prepare-eigenscape=banda.bin.prepare_eigenscape:main",
            "banda-synth-mini=banda.bin.synth_mini:main",
            "banda-synth-polsess=banda.bin.synth_polsess:main",
            "banda-synth-scenes=banda.bin.synth_scenes:main",
            "banda-pack=banda.bin.pack:main",
            "banda-results=banda.bin.results:main",
            "banda-query-eval=banda.bin.query_eval:main",
            "banda-data-dir=banda.bin.data_dir:main",
            "banda-remix=banda.bin.remix:main",
            "banda-automix=banda.bin.automix:main",
            "banda-mix-eval=banda.bin.mix_eval:main",
        ]
    },
)
