"""utils/run.pl (local jobs) and utils/slurm.pl (through a fake sbatch)."""
import os
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_PL = str(REPO / "utils" / "run.pl")
SLURM_PL = str(REPO / "utils" / "slurm.pl")


def run(cmd, cwd, env=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)


def test_jobs_run_in_parallel_and_replace_job(tmp_path):
    start = time.monotonic()
    r = run([RUN_PL, "JOB=1:3", "log/x.JOB.log", "sleep", "1", "&&", "echo", "job", "JOB", "out/JOB"], tmp_path)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert elapsed < 2.5
    for j in (1, 2, 3):
        lines = (tmp_path / "log" / f"x.{j}.log").read_text().splitlines()
        assert lines[0] == f"# sleep 1 && echo job {j} out/{j}"
        assert lines[1].startswith("# Started at ")
        assert lines[2] == f"job {j} out/{j}"
        assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[3])
        assert re.fullmatch(rf"# Ended \(code 0\) at .*, elapsed time \d+ seconds", lines[4])
        assert int(lines[3].split("time=")[1].split()[0]) >= 1


def test_single_job_quoted_pipeline_and_options_ignored(tmp_path):
    r = run([RUN_PL, "--gpu", "1", "--mem", "4G", "--num-threads", "2", "log/y.log", "echo a b c | wc -w"], tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "log" / "y.log").read_text()
    assert text.splitlines()[0] == "# echo a b c | wc -w"
    assert "\n3\n" in text and "threads=2" in text


def test_args_with_spaces_are_quoted(tmp_path):
    r = run([RUN_PL, "log/q.log", "printf", "%s,", "a b", "it's"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "a b,it's," in (tmp_path / "log" / "q.log").read_text()


def test_failing_job_fails_the_call_naming_its_log(tmp_path):
    r = run([RUN_PL, "JOB=1:4", "log/f.JOB.log", "test", "JOB", "-ne", "3", "-a", "JOB", "-ne", "4"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "run.pl: 2 / 4 failed, log is in log/f.3.log"
    assert "# Ended (code 1)" in (tmp_path / "log" / "f.3.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "log" / "f.2.log").read_text()
    r = run([RUN_PL, "log/g.log", "exit 7"], tmp_path)
    assert r.returncode == 1 and "1 / 1 failed, log is in log/g.log" in r.stderr
    assert "# Ended (code 7)" in (tmp_path / "log" / "g.log").read_text()


def test_max_jobs_run_serializes(tmp_path):
    start = time.monotonic()
    r = run([RUN_PL, "--max-jobs-run", "1", "JOB=1:3", "log/s.JOB.log", "sleep 0.3; date +%s.%N"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start >= 0.9
    stamps = [float((tmp_path / "log" / f"s.{j}.log").read_text().splitlines()[2]) for j in (1, 2, 3)]
    assert stamps[1] - stamps[0] >= 0.25 and stamps[2] - stamps[1] >= 0.25


def test_usage_errors(tmp_path):
    assert run([RUN_PL, "log/x.log"], tmp_path).returncode == 1
    r = run([RUN_PL, "JOB=1:2", "log/same.log", "true"], tmp_path)
    assert r.returncode == 1 and "does not contain JOB" in r.stderr


FAKE_SBATCH = """#!/usr/bin/env bash
# Fake sbatch: record the arguments, run the batch script, print a job id.
printf '%s\\n' "$*" >> "$FAKE_SBATCH_RECORD"
out=/dev/null
while [ $# -gt 1 ]; do
  case "$1" in
    --output=*) out=${1#--output=} ;;
    --output) shift; out=$1 ;;
  esac
  shift
done
echo 4242
bash "$1" > "$out" 2>&1
"""


def slurm_env(tmp_path, sbatch_text=FAKE_SBATCH):
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    (bindir / "sbatch").write_text(sbatch_text)
    (bindir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_SBATCH_RECORD=str(tmp_path / "record"))
    return env


def test_slurm_pl_maps_options_and_writes_logs(tmp_path):
    env = slurm_env(tmp_path)
    r = run([SLURM_PL, "--gpu", "1", "--mem", "2G", "JOB=1:2", "log/a.JOB.log", "echo job JOB | tr a-z A-Z"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "record").read_text().splitlines()
    assert len(calls) == 2
    for call in calls:
        assert "--gres=gpu:1" in call.split() and "--mem 2G" in call and "-p gpu" in call
        assert "--wait" in call.split()
    lines = (tmp_path / "log" / "a.2.log").read_text().splitlines()
    assert lines[0] == "# echo job 2 | tr a-z A-Z"
    assert lines[1].startswith("# Started at ")
    assert "JOB 2" in lines
    assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[-2])
    assert re.fullmatch(r"# Ended \(code 0\) at .*, elapsed time \d+ seconds", lines[-1])
    assert (tmp_path / "log" / "q" / "a.1.sh").is_file()

    # without --gpu the default gpu=0 line applies
    (tmp_path / "record").unlink()
    assert run([SLURM_PL, "log/b.log", "true"], tmp_path, env).returncode == 0
    call = (tmp_path / "record").read_text().split()
    assert "-p" in call and call[call.index("-p") + 1] == "cpu" and not any("gres" in a for a in call)


def test_slurm_pl_config_file_and_unknown_option(tmp_path):
    env = slurm_env(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "slurm.conf").write_text(
        "command sbatch --export=ALL\noption time=* --time $0\noption gpu=* --gres=gpu:$0\n"
    )
    r = run([SLURM_PL, "--time", "1:00:00", "log/c.log", "true"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    call = (tmp_path / "record").read_text()
    assert call.startswith("--export=ALL --time 1:00:00 ")
    r = run([SLURM_PL, "--mem", "2G", "log/c.log", "true"], tmp_path, env)
    assert r.returncode == 1 and "--mem" in r.stderr and "conf/slurm.conf" in r.stderr
    other = tmp_path / "other.conf"
    other.write_text("command sbatch\noption mem=* --mem=$0\n")
    r = run([SLURM_PL, "--config", str(other), "--mem", "3G", "log/c.log", "true"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "record").read_text().splitlines()[-1].startswith("--mem=3G ")


def test_slurm_pl_failures(tmp_path):
    env = slurm_env(tmp_path)
    r = run([SLURM_PL, "JOB=1:3", "log/d.JOB.log", "exit $((JOB % 2))"], tmp_path, env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "slurm.pl: 2 / 3 failed, log is in log/d.1.log"
    assert "# Ended (code 1)" in (tmp_path / "log" / "d.3.log").read_text()
    # a submission that fails leaves no log: reported, never mistaken for an old success
    env = slurm_env(tmp_path, "#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    r = run([SLURM_PL, "JOB=1:3", "log/d.JOB.log", "true"], tmp_path, env)
    assert r.returncode == 1
    assert "3 / 3 failed, log is in log/d.1.log" in r.stderr
    assert "invalid partition" in (tmp_path / "log" / "q" / "d.1.submit").read_text()
