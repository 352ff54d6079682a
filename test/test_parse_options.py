"""utils/parse_options.sh: sourced by recipe scripts under `set -euo pipefail`."""
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
nj=4
use_gpu=false
foo_bar=default
name=orig
help_message="Usage: demo.sh [options] <in> <out>
  --nj N   number of jobs"
. {REPO}/utils/parse_options.sh
echo "nj=$nj use_gpu=$use_gpu foo_bar=$foo_bar name=$name"
echo "argc=$#"
for a in "$@"; do echo "arg=$a"; done
"""


@pytest.fixture
def demo(tmp_path):
    script = tmp_path / "demo.sh"
    script.write_text(SCRIPT)

    def run(*args):
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, cwd=tmp_path)

    return run


def test_defaults_and_option_forms(demo):
    r = demo("--nj", "8", "--use-gpu", "true", "--foo_bar=a b", "--name", "x")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "nj=8 use_gpu=true foo_bar=a b name=x"
    r = demo()
    assert r.stdout.splitlines()[:2] == ["nj=4 use_gpu=false foo_bar=default name=orig", "argc=0"]
    r = demo("--foo-bar", "", "--nj=2")
    assert r.stdout.splitlines()[0] == "nj=2 use_gpu=false foo_bar= name=orig"


def test_undeclared_option_is_an_error_naming_it(demo):
    r = demo("--nj", "2", "--xyz", "1", "a")
    assert r.returncode == 1
    assert "parse_options.sh: invalid option --xyz" in r.stderr
    assert r.stdout == ""
    # the helper's own variables are not options
    assert demo("--__po_i", "1").returncode == 1


def test_boolean_accepts_only_true_false(demo):
    r = demo("--use-gpu", "yes")
    assert r.returncode == 1
    assert "--use-gpu" in r.stderr and "true or false" in r.stderr
    assert demo("--use-gpu=false").returncode == 0


def test_missing_value(demo):
    r = demo("--nj")
    assert r.returncode == 1 and "--nj needs a value" in r.stderr


def test_help_prints_help_message(demo):
    for flag in ("--help", "-h"):
        r = demo("--nj", "3", flag)
        assert r.returncode == 0
        assert r.stdout.startswith("Usage: demo.sh [options] <in> <out>")
        assert "nj=" not in r.stdout


def test_stops_at_first_positional_and_double_dash(demo):
    r = demo("--nj", "2", "in dir", "--nj", "5", "out")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("nj=2 ")
    assert lines[1:] == ["argc=4", "arg=in dir", "arg=--nj", "arg=5", "arg=out"]
    r = demo("--nj", "2", "--", "--name", "-h")
    assert r.stdout.splitlines()[1:] == ["argc=2", "arg=--name", "arg=-h"]


def test_config_file(demo, tmp_path):
    conf = tmp_path / "demo.conf"
    conf.write_text("# comment\n\nnj=7\nuse_gpu=true\n")
    r = demo("--nj", "9", "--config", str(conf), "a")  # the command line wins over the config
    assert r.stdout.splitlines()[0] == "nj=9 use_gpu=true foo_bar=default name=orig"
    r = demo(f"--config={conf}")
    assert r.stdout.splitlines()[0].startswith("nj=7 use_gpu=true")
    conf.write_text("njobs=3\n")
    r = demo("--config", str(conf))
    assert r.returncode == 1 and "unknown variable 'njobs'" in r.stderr
    r = demo("--config", str(tmp_path / "missing.conf"))
    assert r.returncode == 1 and "missing.conf" in r.stderr


def test_require_db_names_the_variable(tmp_path):
    script = REPO / "utils" / "require_db.sh"
    empty = subprocess.run(["bash", str(script), "MUSDB18HQ", ""], capture_output=True, text=True)
    assert empty.returncode == 2 and "MUSDB18HQ" in empty.stderr and "db.sh" in empty.stderr
    missing = subprocess.run(["bash", str(script), "MUSDB18HQ", str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "MUSDB18HQ" in missing.stderr
    ok = subprocess.run(["bash", str(script), "MUSDB18HQ", str(tmp_path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
