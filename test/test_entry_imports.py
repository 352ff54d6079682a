"""Entry points import only what they use: ``--help`` and usage errors of every ``banda-*``
command load no torch, torchaudio, scipy, soundfile or numpy (``python -m banda.bin.separate
--help`` takes a tenth of a second, not the seconds of ``import torch``).

Each ``--help`` runs as ``python -X importtime -m banda.bin.<name> --help``, all at once, and
the usage errors one after the other in one process, so the file takes a few seconds. The names a
parser shows (stems, layouts, metrics, default rates) come from modules that load none of these
libraries: the corpus modules themselves, :mod:`banda.corpora.polsess_variants`,
:mod:`banda.scoring_options` and :mod:`banda.synth_defaults`.
"""
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, subprocess_env

HEAVY = ("torch", "torchaudio", "scipy", "soundfile", "numpy")
ENTRY_POINTS = sorted(set(re.findall(r'"banda-[\w-]+=banda\.bin\.(\w+):main"', (REPO / "setup.py").read_text())))
BAD_OPTION = "--no-such-option"


def test_every_bin_module_is_an_entry_point():
    modules = sorted(p.stem for p in (REPO / "banda" / "bin").glob("*.py") if p.stem != "__init__")
    assert ENTRY_POINTS == modules


def _help(name):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", f"banda.bin.{name}", "--help"],
                          capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=120)
    imported, other = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.split("|")[-1].strip())
        else:
            other.append(line)
    return proc.returncode, proc.stdout, other, imported


@pytest.fixture(scope="module")
def helps():
    """name -> (exit code, stdout, other stderr lines, imported modules) of ``python -m banda.bin.<name>
    --help``, every entry point at once."""
    with ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 1))) as pool:
        return dict(zip(ENTRY_POINTS, pool.map(_help, ENTRY_POINTS)))


def _heavy(imported):
    return sorted(m for m in imported if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_imports_no_heavy_library(helps, name):
    code, out, err, imported = helps[name]
    assert code == 0, err
    assert out.startswith("usage: ") and not err
    assert "banda.cli" in imported  # the import list is the command's
    assert _heavy(imported) == []


# every entry point's main() with an unknown option, one after the other in one process
USAGE_ERRORS = """
import contextlib, importlib, io, json, sys
heavy, result = tuple(sys.argv[1].split(",")), {}
for name in sys.argv[3:]:
    before, err = set(sys.modules), io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = importlib.import_module("banda.bin." + name).main([sys.argv[2]])
        except SystemExit as e:
            code = e.code
    loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)
    result[name] = [code, err.getvalue().splitlines(), loaded]
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def usage_errors():
    proc = subprocess.run([sys.executable, "-c", USAGE_ERRORS, ",".join(HEAVY), BAD_OPTION, *ENTRY_POINTS],
                          capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_usage_error_imports_no_heavy_library(usage_errors, name):
    code, err, loaded = usage_errors[name]
    assert code == 2
    assert len(err) == 1 and ": error: " in err[0], err  # one line, no traceback
    assert loaded == []
