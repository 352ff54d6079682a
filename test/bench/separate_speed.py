#!/usr/bin/env python
"""Speed of ``banda-separate`` on one 4-minute song: the CLI end to end, and in-process.

    python test/bench/separate_speed.py [--device cuda] [--batch-size 1,4,16,64] [--segment 6] [--overlap 0.25] [--amp off]
    OMP_NUM_THREADS=1 tools/venv/bin/python test/bench/separate_speed.py --small --device cpu   # smoke run

Writes a 240 s stereo 44.1 kHz 16-bit WAV (tones and noise bursts), packs a 4-stem Bandit with
the Musical-64 BiGRU recipe's model (``egs/musdb18hq/sep1/conf/train_bandit_musical64.yaml``:
D=128, 8 time+band pairs, hidden 256, mask MLP 512; random weights) with
``banda.models.make_archive``, then for each batch size:

- ``cli_wall_s``: wall time of ``python -m banda.bin.separate -m MODEL SONG -o OUT -d DEVICE
  --segment S --overlap O --batch-size N --no-progress`` in a child process (interpreter start,
  imports, CUDA start-up, model load, separation, writing 4 WAV files), measured by this process;
- ``cli``: the same command once more under a small wrapper that times its parts (the
  interpreter's start, imports, ``load_model``, ``Separator`` set-up with the move to the device,
  ``separate_file``). This run comes first, so it also warms the file cache for the timed one;
- ``inprocess_first_s`` / ``inprocess_s``: ``Separator.separate_file`` in this process with the
  model already loaded and on the device: the first call, then the median of ``--repeats`` calls
  (each writes new files: the previous call's outputs are removed first, untimed);
- ``model_only_s``: the model's forward passes alone over as many batches of random segments
  already on the device (the compute floor of this batch size);
- ``pipeline_overhead_s``: ``separate_file`` with a model that copies its input to every stem
  (reading, host-device copies, overlap-add, quantisation, writing; no network), after a warm-up
  call; with ``--overhead-only`` the median of ``--repeats`` calls and nothing else is timed
  (no model is packed: quick on a CPU)::

      OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/separate_speed.py --device cpu --overhead-only --batch-size 4

``--amp bf16|fp16`` is passed to ``banda-separate --amp`` in the CLI runs and wraps the model in
``torch.autocast`` in this process. Target: ``<= 1.0 s`` on one H100 for the song
(HTDemucs: 1.65 s). Prints one JSON object on stdout; progress on stderr.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RATE = 44100
RECIPE = REPO / "egs" / "musdb18hq" / "sep1" / "conf" / "train_bandit_musical64.yaml"
SMALL_PARAMS = dict(dim=16, n_layers=1, hidden=16, mask_hidden=32)
TARGET_S = 1.0
HTDEMUCS_S = 1.65

# Runs banda.bin.separate's main() in this child and times its parts: argv = REPORT AMP BENCH_DIR CLI_ARGS...
WRAPPER = r"""
import json, sys, time
t0 = time.perf_counter()
report, amp, bench_dir, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
import torch
import banda.bin.separate as cli
import banda.inference as inference
import banda.models as models
t_import = time.perf_counter()
times = {"load_model_s": 0.0, "separator_init_s": 0.0, "separate_file_s": 0.0}
orig_load, orig_init, orig_sep = models.load_model, inference.Separator.__init__, inference.Separator.separate_file

def timed(key, fn):
    def run(*a, **k):
        s = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            if torch.cuda.is_initialized():
                torch.cuda.synchronize()
            times[key] += time.perf_counter() - s
    return run

def load_model(*a, **k):
    model = orig_load(*a, **k)
    if amp != "off":
        sys.path.insert(0, bench_dir)
        from separate_speed import AutocastModel
        model = AutocastModel(model, amp)
    return model

models.load_model = timed("load_model_s", load_model)
inference.Separator.__init__ = timed("separator_init_s", orig_init)
inference.Separator.separate_file = timed("separate_file_s", orig_sep)
code = cli.main(args)
t_end = time.perf_counter()
gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_initialized() else None
with open(report, "w") as f:
    json.dump(dict(times, rc=code, import_s=t_import - t0, main_s=t_end - t_import, total_s=t_end - t0, gpu_peak_mb=gpu), f)
sys.exit(code)
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _torch():
    import torch

    return torch


def autocast_model_class():
    torch = _torch()

    class AutocastModel(torch.nn.Module):
        """Runs the wrapped separation model under ``torch.autocast`` (what a ``--amp`` option of
        banda-separate would do); keeps the attributes the Separator reads."""

        def __init__(self, model, amp: str):
            super().__init__()
            self.model = model
            self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
            self.stems, self.sample_rate, self.in_channels = model.stems, model.sample_rate, model.in_channels

        def forward(self, x):
            with torch.autocast(x.device.type, dtype=self.dtype):
                return self.model(x)

    return AutocastModel


def __getattr__(name):  # ``from separate_speed import AutocastModel`` without importing torch at import time
    if name == "AutocastModel":
        return autocast_model_class()
    raise AttributeError(name)


def identity_model(stems, channels: int):
    torch = _torch()

    class CopyStems(torch.nn.Module):
        """``(batch, channels, time)`` -> the input copied to every stem: the pipeline without a network."""

        def __init__(self):
            super().__init__()
            self.stems, self.sample_rate, self.in_channels = list(stems), RATE, channels

        def forward(self, x):
            return x[:, None].repeat(1, len(self.stems), 1, 1)

    return CopyStems()


def write_song(path: Path, seconds: float) -> None:
    sys.path.insert(0, str(HERE))
    from separate_memory import write_song as write  # tones + decaying noise bursts, 16-bit stereo

    write(path, seconds)


def make_archive(path: Path, config: Path, small: bool) -> dict:
    torch = _torch()
    sys.path.insert(0, str(REPO))
    from banda.config import load_yaml
    from banda.models import build_model, make_archive as pack, model_params

    cfg = load_yaml(config)
    params = dict(cfg["model"].get("params") or {})
    if small:
        params.update(SMALL_PARAMS)
    stems = cfg.get("stems", ["vocals", "drums", "bass", "other"])
    full = model_params(cfg["model"]["name"], params, stems, int(cfg.get("sample_rate", RATE)), int(cfg.get("channels", 2)))
    torch.manual_seed(0)
    model = build_model(cfg["model"]["name"], full)
    torch.save(pack(model, cfg["model"]["name"], full), path)
    return {"name": cfg["model"]["name"], "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            **{k: full[k] for k in ("bands", "n_bands", "dim", "tf_block", "n_layers", "hidden", "mask_hidden") if k in full},
            "stems": len(stems)}


def config_stems(config: Path) -> dict:
    """The stems and channel count of the recipe's model, without building it (``--overhead-only``)."""
    sys.path.insert(0, str(REPO))
    from banda.config import load_yaml

    cfg = load_yaml(config)
    return {"name": cfg["model"]["name"], "stem_names": list(cfg.get("stems", ["vocals", "drums", "bass", "other"])),
            "channels": int(cfg.get("channels", 2))}


def cli_args(model: Path, song: Path, out: Path, args, batch: int):
    return ["-m", str(model), str(song), "-o", str(out), "-d", args.device, "--segment", str(args.segment),
            "--overlap", str(args.overlap), "--batch-size", str(batch), "--amp", args.amp, "--no-progress"]


def child_env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_cli(cmd, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return wall


def cli_runs(model: Path, song: Path, work: Path, args, batch: int) -> dict:
    out = work / f"cli_bs{batch}"
    report = work / f"cli_bs{batch}.json"
    # the CLI applies --amp itself: the timing wrapper adds no autocast ("off")
    wrapped = [sys.executable, "-c", WRAPPER, str(report), "off", str(HERE)] + cli_args(model, song, out, args, batch)
    wall = run_cli(wrapped, out)
    parts = json.loads(report.read_text())
    breakdown = {"wall_s": round(wall, 3), "python_start_s": round(wall - parts["total_s"], 3)}
    for key in ("import_s", "load_model_s", "separator_init_s", "separate_file_s", "total_s"):
        breakdown[key] = round(parts[key], 3)
    breakdown["rest_s"] = round(parts["main_s"] - parts["load_model_s"] - parts["separator_init_s"] - parts["separate_file_s"], 3)
    if parts.get("gpu_peak_mb") is not None:
        breakdown["gpu_peak_mb"] = round(parts["gpu_peak_mb"], 1)
    res = {"cli": breakdown}
    plain = [sys.executable, "-m", "banda.bin.separate"] + cli_args(model, song, out, args, batch)
    res["cli_wall_s"] = round(run_cli(plain, out), 3)
    log(f"  batch {batch}: CLI {res['cli_wall_s']:.2f} s (separate_file {breakdown['separate_file_s']:.2f} s)")
    return res


def clear(outputs: dict) -> None:
    """Remove the previous call's outputs (untimed), so each timed call writes a new song's files
    as the CLI runs do, not over old ones (on a file system mounted with ``discard`` replacing a
    file waits for the old one's blocks to be trimmed)."""
    for path in outputs.values():
        Path(path).unlink(missing_ok=True)


def sync(device: str) -> None:
    torch = _torch()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def inprocess_runs(model, song: Path, work: Path, args, batch: int, n_seg: int) -> dict:
    torch = _torch()
    from banda.inference import Separator

    out = work / f"inproc_bs{batch}"
    outputs = {s: out / f"{s}.wav" for s in model.stems}
    sep = Separator(model, device=args.device, segment=args.segment, overlap=args.overlap, batch_size=batch, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = timed_calls(sep, song, outputs, 1 + args.repeats, args.device)
    res = {"inprocess_first_s": round(times[0], 3), "inprocess_s": round(statistics.median(times[1:]), 3),
           "inprocess_min_s": round(min(times[1:]), 3)}
    if args.device.startswith("cuda"):
        res["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    shutil.rmtree(out, ignore_errors=True)

    # The network alone: the same batches as separate_file (the last one may be smaller) of random
    # segments already on the device.
    seg = int(round(args.segment * RATE))
    sizes = [batch] * (n_seg // batch) + ([n_seg % batch] if n_seg % batch else [])
    inputs = {n: 0.1 * torch.randn(n, model.in_channels, seg, device=args.device) for n in set(sizes)}
    with torch.inference_mode():
        for x in inputs.values():
            model(x)  # warm-up (cuDNN RNN set-up for each shape)
        sync(args.device)
        t0 = time.perf_counter()
        for n in sizes:
            model(inputs[n])
        sync(args.device)
    res["model_only_s"] = round(time.perf_counter() - t0, 3)

    res.update(overhead_runs(model.stems, model.in_channels, song, work, args, batch, repeats=1))
    res["realtime_factor"] = round(args.seconds / res["inprocess_s"], 1)
    log(f"  batch {batch}: in-process {res['inprocess_s']:.3f} s (first {res['inprocess_first_s']:.3f} s), "
        f"model only {res['model_only_s']:.3f} s, pipeline without model {res['pipeline_overhead_s']:.3f} s")
    return res


def overhead_runs(stems, channels: int, song: Path, work: Path, args, batch: int, repeats: int) -> dict:
    """``pipeline_overhead_s``: ``separate_file`` with a model that copies its input to every stem
    (after one warm-up call; the median of ``repeats`` calls)."""
    from banda.inference import Separator

    out = work / f"overhead_bs{batch}"
    outputs = {s: out / f"{s}.wav" for s in stems}
    ident = Separator(identity_model(stems, channels), device=args.device, segment=args.segment,
                      overlap=args.overlap, batch_size=batch, progress=False)
    ident.separate_file(song, outputs)  # warm-up
    times = timed_calls(ident, song, outputs, repeats, args.device)
    shutil.rmtree(out, ignore_errors=True)
    return {"pipeline_overhead_s": round(statistics.median(times), 3)}


def timed_calls(sep, song: Path, outputs, n: int, device: str) -> list:
    """Seconds of ``n`` calls of ``sep.separate_file(song, outputs)``, each writing new files (the
    previous outputs removed before it, untimed)."""
    times = []
    for _ in range(n):
        clear(outputs)
        sync(device)
        t0 = time.perf_counter()
        sep.separate_file(song, outputs)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--config", default=str(RECIPE), help="training config whose model is packed (default: Musical-64 BiGRU)")
    p.add_argument("--seconds", type=float, default=240.0, help="song length (default 240)")
    p.add_argument("--segment", type=float, default=6.0, help="--segment of banda-separate (default 6)")
    p.add_argument("--overlap", type=float, default=0.25, help="--overlap of banda-separate (default 0.25)")
    p.add_argument("--batch-size", default="1,4,16,64", help="comma-separated --batch-size values to time (default 1,4,16,64)")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"],
                   help="mixed precision: banda-separate --amp in the CLI runs, autocast in-process")
    p.add_argument("--repeats", type=int, default=3, help="timed in-process calls after the first (default 3)")
    p.add_argument("--no-cli", action="store_true", help="skip the child-process runs")
    p.add_argument("--no-inprocess", action="store_true", help="skip the in-process runs")
    p.add_argument("--overhead-only", action="store_true",
                   help="time only pipeline_overhead_s (no model is packed or run; implies --no-cli; "
                        "the median of --repeats calls)")
    p.add_argument("--workdir", help="where to put the song, the model and the outputs (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--small", action="store_true",
                   help="smoke run: D=16 one-layer model, 8 s song, 2 s segments, batch size 2, one repeat")
    args = p.parse_args()
    if args.small:
        for key, value, default in (("seconds", 8.0, 240.0), ("segment", 2.0, 6.0), ("batch_size", "2", "1,4,16,64"),
                                    ("repeats", 1, 3)):
            if getattr(args, key) == default:
                setattr(args, key, value)
    batches = [int(b) for b in str(args.batch_size).split(",") if b.strip()]
    if not batches or min(batches) < 1 or args.repeats < 1:
        sys.exit("--batch-size needs values >= 1 and --repeats >= 1")

    torch = _torch()
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda, but no CUDA device is available")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="banda-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        song, archive = work / "song.wav", work / "model.pth"
        t0 = time.perf_counter()
        write_song(song, args.seconds)
        if args.overhead_only:
            model_info = config_stems(Path(args.config))
            log(f"song ({args.seconds:g} s) ready in {time.perf_counter() - t0:.1f} s in {work}")
        else:
            model_info = make_archive(archive, Path(args.config), args.small)
            log(f"song ({args.seconds:g} s) and model ({model_info['params_m']} M parameters) ready in "
                f"{time.perf_counter() - t0:.1f} s in {work}")
        seg = int(round(args.segment * RATE))
        ov = int(round(seg * args.overlap))  # as banda.inference.Separator counts segments
        n_seg = max(1, math.ceil((int(args.seconds * RATE) + 2 * ov - seg) / (seg - ov)) + 1)
        result = {
            "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "torch": torch.__version__,
            "song_seconds": args.seconds,
            "segment": args.segment,
            "overlap": args.overlap,
            "n_segments": n_seg,
            "amp": args.amp,
            "model": model_info,
            "runs": [],
        }
        runs = {b: {"batch_size": b} for b in batches}
        if args.overhead_only:
            log("pipeline without a network (in-process):")
            for b in batches:
                runs[b].update(overhead_runs(model_info["stem_names"], model_info["channels"], song, work, args, b,
                                             args.repeats))
                log(f"  batch {b}: pipeline without model {runs[b]['pipeline_overhead_s']:.3f} s")
        elif not args.no_cli:
            log("CLI (child processes):")
            for b in batches:
                try:
                    runs[b].update(cli_runs(archive, song, work, args, b))
                except Exception as e:  # report and go on with the other batch sizes
                    runs[b]["cli_error"] = f"{type(e).__name__}: {str(e)[-1500:]}"
                    log(f"  batch {b}: CLI failed: {e}")
        if not args.no_inprocess and not args.overhead_only:
            log("in-process:")
            from banda.models import load_model

            t0 = time.perf_counter()
            model = load_model(archive)
            result["load_model_s"] = round(time.perf_counter() - t0, 3)
            if args.amp != "off":
                model = autocast_model_class()(model, args.amp)
            for b in batches:
                try:
                    runs[b].update(inprocess_runs(model, song, work, args, b, n_seg))
                except Exception as e:
                    runs[b]["inprocess_error"] = f"{type(e).__name__}: {str(e)[-1500:]}"
                    log(f"  batch {b}: in-process run failed: {e}")
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
        result["runs"] = list(runs.values())
        best = {}
        for key in ("cli_wall_s", "inprocess_s"):
            have = [r for r in result["runs"] if key in r]
            if have:
                r = min(have, key=lambda r: r[key])
                best[key] = r[key]
                best[f"{key.rsplit('_', 1)[0]}_batch_size"] = r["batch_size"]
        result["best"] = best
        result["target_s"] = TARGET_S
        result["htdemucs_s"] = HTDEMUCS_S
        print(json.dumps(result))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
