"""PolSESS: banda.corpora.polsess (read_split, MM-IPC variants, MMIPCDataset, prepare_polsess)
and banda.bin.prepare_polsess, on a tiny synthetic copy of the corpus."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from banda.bin.prepare_polsess import main
from banda.corpora.polsess import (INDOOR_VARIANTS, LAYERS, MIX_COLUMN, OUTDOOR_VARIANTS, TARGETS, TASKS, VARIANTS,
                                   MMIPCDataset, csv_name, prepare_polsess, present_layers, read_split, removed_layers)
from banda.datadir import read_scp, stem_names, validate_data_dir
from banda.errors import BandaError, ConfigError, DataError

RATE = 8000
FRAMES = 4000  # 0.5 s
PROG = "banda-prepare-polsess"
# split -> (mixture file name without .wav, indoor); "u#3" and "u3" collide on their id
UTTERANCES = {
    "val": [("mix 1", True), ("u#3", True), ("u3", False), ("out_4", False)],
    "test": [("t_in", True), ("t_out", False)],
    "train": [("o1", False), ("o2", False)],  # outdoor only
}
COLUMNS = [MIX_COLUMN[0]] + [column for column, _ in LAYERS.values()]


def layer_file(name: str, layer: str) -> str:
    return f"{name}_{layer}.wav"


def write_split(split_dir: Path, split: str, utterances, seed: int) -> dict:
    """Write one split; return {resolved mixture path: {"mix"|layer: float32 array}}."""
    rng = np.random.default_rng(seed)
    for _, folder in [MIX_COLUMN] + list(LAYERS.values()):
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    truth, rows = {}, []
    for name, indoor in utterances:
        row = {"lang": "pl", "speaker1ID": "spk 7"}  # extra columns are ignored
        audio = {}
        for layer, (column, folder) in LAYERS.items():
            if "reverb" in layer and not indoor:
                row[column] = ""
                continue
            audio[layer] = rng.uniform(-0.2, 0.2, FRAMES).astype(np.float32)
            row[column] = layer_file(name, layer)
            sf.write(str(split_dir / folder / row[column]), audio[layer], RATE, subtype="FLOAT")
        mix = np.zeros(FRAMES, np.float32)
        for layer in LAYERS:
            if layer in audio:
                mix = mix + audio[layer]  # float32 sum
        audio["mix"] = mix
        row[MIX_COLUMN[0]] = f"{name}.wav"
        sf.write(str(split_dir / "mix" / f"{name}.wav"), mix, RATE, subtype="FLOAT")
        truth[str((split_dir / "mix" / f"{name}.wav").resolve())] = audio
        rows.append(row)
    write_csv(split_dir / csv_name(split), rows, ["lang"] + COLUMNS[::-1] + ["speaker1ID"])
    return truth


def write_csv(path: Path, rows, fields) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader), list(reader.fieldnames)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(root, truth): the tiny PolSESS copy and every file's samples, by resolved mixture path."""
    root = tmp_path_factory.mktemp("polsess") / "PolSESS"
    truth = {}
    for k, (split, utterances) in enumerate(UTTERANCES.items()):
        truth.update(write_split(root / split, split, utterances, seed=k))
    return root, truth


@pytest.fixture
def copy(corpus, tmp_path):
    """A copy of the corpus to break."""
    root = tmp_path / "PolSESS"
    shutil.copytree(corpus[0], root)
    return root


def expected_mixture(audio, task, variant, indoor):
    return sum(audio[n].astype(np.float64) for n in present_layers(task, variant, indoor))


def expected_target(audio, task):
    return np.stack([sum(audio[n].astype(np.float64) for n in layers)[None] for layers in TARGETS[task].values()])


# --- variants ---------------------------------------------------------------------------


def test_removed_and_present_layers():
    assert removed_layers("ES", "SER", True) == ("speaker2", "sp2_reverb")
    assert removed_layers("EB", "R", True) == ("scene", "event", "ev_reverb")
    assert removed_layers("ES", "R", True) == ("speaker2", "scene", "event", "sp2_reverb", "ev_reverb")
    assert removed_layers("SB", "SR", True) == ("event", "ev_reverb")
    assert removed_layers("EB", "ER", True) == ("scene",)
    assert removed_layers("ES", "S", False) == ("speaker2", "event")
    assert removed_layers("SB", "E", False) == ("scene",)
    assert removed_layers("EB", "SE", False) == ()
    assert present_layers("ES", "SER", True) == ("speaker1", "scene", "event", "sp1_reverb", "ev_reverb")
    assert present_layers("EB", "R", True) == ("speaker1", "speaker2", "sp1_reverb", "sp2_reverb")
    assert present_layers("ES", "E", False) == ("speaker1", "event")
    assert present_layers("SB", "SE", False) == ("speaker1", "speaker2", "scene", "event")
    assert set(VARIANTS) == set(INDOOR_VARIANTS) | set(OUTDOOR_VARIANTS) and TASKS == ("ES", "EB", "SB")
    for task in TASKS:  # a target is never subtracted
        for variant in VARIANTS:
            indoor = variant in INDOOR_VARIANTS
            targets = {n for layers in TARGETS[task].values() for n in layers}
            assert targets <= set(present_layers(task, variant, indoor))


@pytest.mark.parametrize("args, needles", [
    (("ES", "XY", True), ["'XY'", "SER"]),
    (("ES", "SE", True), ["'SE'", "outdoor"]),
    (("EB", "SER", False), ["'SER'", "indoor"]),
    (("ZZ", "SER", True), ["'ZZ'", "ES"]),
])
def test_bad_variant_or_task(args, needles):
    for fn in (removed_layers, present_layers):
        with pytest.raises(ConfigError) as e:
            fn(*args)
        assert "\n" not in str(e.value) and all(n in str(e.value) for n in needles), str(e.value)


# --- read_split ---------------------------------------------------------------------------


def test_read_split(corpus):
    root, truth = corpus
    utts = read_split(root / "val")
    assert [u.id for u in utts] == ["mix_1", "u3", "u3_2", "out_4"]
    assert [u.indoor for u in utts] == [True, True, False, False]
    assert all(u.frames == FRAMES and u.sample_rate == RATE for u in utts)
    assert utts[0].paths["mix"] == str((root / "val" / "mix" / "mix 1.wav").resolve())
    assert utts[0].paths["sp2_reverb"] == str((root / "val" / "sp2_reverb" / "mix 1_sp2_reverb.wav").resolve())
    assert set(utts[0].paths) == {"mix", *LAYERS}
    assert set(utts[2].paths) == {"mix", "speaker1", "speaker2", "scene", "event"}
    assert all(p in truth for p in (u.paths["mix"] for u in utts))


def _drop_column(root: Path, column: str) -> None:
    path = root / "val" / csv_name("val")
    rows, fields = read_csv(path)
    write_csv(path, rows, [f for f in fields if f != column])


def _set_cell(root: Path, row: int, column: str, value: str) -> None:
    path = root / "val" / csv_name("val")
    rows, fields = read_csv(path)
    rows[row][column] = value
    write_csv(path, rows, fields)


def _rewrite(path: Path, frames: int = FRAMES, rate: int = RATE, channels: int = 1) -> None:
    sf.write(str(path), np.zeros((frames, channels), np.float32), rate, subtype="FLOAT")


# each case breaks the copy and gives the texts the one error line must contain
BROKEN = {
    "missing folder": (lambda r: shutil.rmtree(r / "val" / "scene"), ["scene/", "sceneFile"]),
    "missing reverb folder": (lambda r: shutil.rmtree(r / "val" / "ev_reverb"), ["ev_reverb/"]),
    "missing csv": (lambda r: (r / "val" / csv_name("val")).unlink(), [csv_name("val"), "no such file"]),
    "missing column": (lambda r: _drop_column(r, "eventFile"), ["'eventFile'", csv_name("val")]),
    "empty cell": (lambda r: _set_cell(r, 1, "speaker1File", ""), ["'speaker1File'", "empty", f"{csv_name('val')}:3"]),
    "missing file": (lambda r: (r / "val" / "event" / "out_4_event.wav").unlink(), ["out_4_event.wav", "'eventFile'"]),
    "unreadable file": (lambda r: (r / "val" / "scene" / "u3_scene.wav").write_bytes(b"not audio at all"),
                        ["u3_scene.wav", "'sceneFile'", "cannot read audio header"]),
    "partial reverb": (lambda r: _set_cell(r, 0, "reverbForEvent", ""), ["reverbForEvent", "reverbForSpeaker1"]),
    "reverb for outdoor": (lambda r: _set_cell(r, 2, "reverbForSpeaker2", "mix 1_sp2_reverb.wav"),
                           ["reverbForSpeaker2", "reverbForEvent", f"{csv_name('val')}:4"]),
    "rate mismatch": (lambda r: _rewrite(r / "val" / "clean" / "u#3_speaker2.wav", rate=16000),
                      ["u#3_speaker2.wav", "16000 Hz", "8000 Hz"]),
    "length mismatch": (lambda r: _rewrite(r / "val" / "sp1_reverb" / "mix 1_sp1_reverb.wav", frames=FRAMES - 1),
                        ["mix 1_sp1_reverb.wav", str(FRAMES - 1), str(FRAMES)]),
    "stereo": (lambda r: _rewrite(r / "val" / "event" / "u3_event.wav", channels=2), ["u3_event.wav", "2 channels"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_split(copy, tmp_path, capsys, case):
    breaks, needles = BROKEN[case]
    breaks(copy)
    with pytest.raises(DataError) as e:
        read_split(copy / "val")
    message = str(e.value)
    assert "\n" not in message and all(n in message for n in needles), message
    with pytest.raises(DataError) as e2:
        MMIPCDataset(copy / "val", "ES", RATE)
    assert str(e2.value) == message
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "--root", copy, "--out", out, "--task", "EB", "--no-progress")
    assert rc == 2 and stdout == "" and len(err) == 1 and err[0] == f"{PROG}: error: {message}", err
    assert not out.exists()


def run(capsys, *args):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err.strip().splitlines()


# --- MMIPCDataset ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_dataset_every_variant(corpus, task):
    root, truth = corpus
    n_out = 2 if task == "SB" else 1
    for variant in VARIANTS:
        indoor = variant in INDOOR_VARIANTS
        ds = MMIPCDataset(root / "val", task, RATE, allowed_variants=[variant])
        assert len(ds) == 2 and all(u.indoor == indoor for u in ds.utterances)
        for i in range(len(ds)):
            item = ds[i]
            utt = ds.utterances[i]
            audio = truth[utt.paths["mix"]]
            assert item["variant"] == variant and item["id"] == utt.id and item["start"] == 0
            assert item["mixture"].dtype == torch.float32 and item["mixture"].shape == (1, FRAMES)
            assert item["target"].dtype == torch.float32 and item["target"].shape == (n_out, 1, FRAMES)
            want = expected_mixture(audio, task, variant, indoor)
            assert np.abs(item["mixture"].numpy()[0] - want).max() < 1e-6, (task, variant)
            assert np.abs(item["target"].numpy() - expected_target(audio, task)).max() < 1e-6
            # only the mixture, the subtracted layers and the targets were read, each once
            needed = ["mix", *removed_layers(task, variant, indoor), *[n for ls in TARGETS[task].values() for n in ls]]
            assert sorted(layer for layer, _ in ds.last_opened) == sorted(needed)
            assert all(path == utt.paths[layer] for layer, path in ds.last_opened)


def test_dataset_reads_only_the_chunk_of_the_needed_files(corpus, monkeypatch):
    root, truth = corpus
    ds = MMIPCDataset(root / "val", "ES", RATE, chunk_seconds=0.1, allowed_variants=["R", "S"], items_per_epoch=6)
    log = []

    class Recording(sf.SoundFile):
        def read(self, frames=-1, *args, **kwargs):
            log.append((self.name, self.tell(), frames))
            return super().read(frames, *args, **kwargs)

    monkeypatch.setattr(sf, "SoundFile", Recording)
    for i in range(len(ds)):
        log.clear()
        item = ds[i]
        utt = next(u for u in ds.utterances if u.id == item["id"])
        # R (indoor): scene, event, ev_reverb subtracted; S (outdoor): event; ES: speaker2 (and sp2_reverb)
        files = {"mix", "speaker1", "speaker2", "event"}
        files |= {"scene", "sp2_reverb", "ev_reverb"} if utt.indoor else set()
        assert sorted(name for name, _, _ in log) == sorted(utt.paths[n] for n in files)  # each file once
        assert all((start, frames) == (item["start"], 800) for _, start, frames in log)
        assert item["mixture"].shape == (1, 800) and item["target"].shape == (1, 1, 800)
        audio = truth[utt.paths["mix"]]
        window = slice(item["start"], item["start"] + 800)
        want = expected_mixture(audio, "ES", item["variant"], utt.indoor)[window]
        assert np.abs(item["mixture"].numpy()[0] - want).max() < 1e-6
        assert np.array_equal(item["target"].numpy()[0, 0], audio["speaker1"][window])


def test_allowed_variants(corpus):
    root, _ = corpus
    ds = MMIPCDataset(root / "val", "SB", RATE, allowed_variants=["SR", "S"], items_per_epoch=16)
    assert len(ds) == 16 and len(ds.utterances) == 4
    seen = {ds[i]["variant"] for i in range(16)}
    assert seen == {"SR", "S"}
    ds = MMIPCDataset(root / "val", "SB", RATE, allowed_variants=["ER", "R"], items_per_epoch=16)
    assert [u.id for u in ds.utterances] == ["mix_1", "u3"]
    assert {ds[i]["variant"] for i in range(16)} == {"ER", "R"}
    ds = MMIPCDataset(root / "val", "SB", RATE)
    assert len(ds) == 4 and {ds[i]["variant"] for i in range(4)} <= set(VARIANTS)
    with pytest.raises(ConfigError, match="'XY'"):
        MMIPCDataset(root / "val", "SB", RATE, allowed_variants=["SER", "XY"])
    with pytest.raises(DataError) as e:  # train is all outdoor
        MMIPCDataset(root / "train", "SB", RATE, allowed_variants=["SER", "R"])
    assert "no utterance fits the allowed variants SER, R" in str(e.value) and "\n" not in str(e.value)


def test_dataset_options(corpus):
    root, _ = corpus
    with pytest.raises(DataError) as e:
        MMIPCDataset(root / "val", "ES", 16000)
    assert "8000 Hz" in str(e.value) and "16000 Hz" in str(e.value) and "mix 1.wav" in str(e.value)
    with pytest.raises(ConfigError, match="'XX'"):
        MMIPCDataset(root / "val", "XX", RATE)
    with pytest.raises(ConfigError, match="chunk_seconds"):
        MMIPCDataset(root / "val", "ES", RATE, chunk_seconds=0)
    with pytest.raises(ConfigError, match="items_per_epoch"):
        MMIPCDataset(root / "val", "ES", RATE, items_per_epoch=0)
    # a chunk longer than the utterance is zero-padded
    ds = MMIPCDataset(root / "test", "EB", RATE, chunk_seconds=1.0)
    item = ds[0]
    assert item["mixture"].shape == (1, RATE) and not item["mixture"][0, FRAMES:].any()
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["mixture"].shape == (2, 1, RATE) and batch["target"].shape == (2, 1, 1, RATE)
    with pytest.raises(IndexError):
        ds[2]


def test_reproducible_per_seed_and_epoch(corpus):
    root, _ = corpus

    def items(seed=0, epoch=0):
        ds = MMIPCDataset(root / "val", "ES", RATE, chunk_seconds=0.1, items_per_epoch=8, seed=seed)
        ds.set_epoch(epoch)
        return [ds[i] for i in range(len(ds))]

    def key(batch):
        return [(it["id"], it["variant"], it["start"]) for it in batch]

    first = items()
    again = items()
    assert key(first) == key(again)
    assert all(torch.equal(a["mixture"], b["mixture"]) and torch.equal(a["target"], b["target"])
               for a, b in zip(first, again))
    assert key(items(epoch=1)) != key(first)
    assert key(items(seed=1)) != key(first)
    ds = MMIPCDataset(root / "val", "ES", RATE, chunk_seconds=0.1, items_per_epoch=8)
    ds.set_epoch(1)
    ds.set_epoch(0)  # resuming: back to epoch 0 gives epoch 0's items, in any order
    assert key([ds[i] for i in reversed(range(8))])[::-1] == key(first)


# --- prepare_polsess ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_prepare(corpus, tmp_path, task):
    root, truth = corpus
    out = tmp_path / "data"
    counts = prepare_polsess(root, out, task, progress=False)
    assert counts == {**{f"val_{v}": 2 for v in VARIANTS}, **{f"test_{v}": 1 for v in VARIANTS}}
    targets = sorted(TARGETS[task])
    for name in counts:
        d = out / name
        assert validate_data_dir(d, sample_rate=RATE) == []
        assert stem_names(d) == targets
        split, variant = name.split("_")
        indoor = variant in INDOOR_VARIANTS
        utts = {u.id: u for u in read_split(root / split)}
        mix = read_scp(d / "mix.scp")
        assert read_scp(d / "utt2num_samples") == {i: str(FRAMES) for i in mix}
        for uid, path in mix.items():
            utt = utts[uid]
            assert utt.indoor == indoor
            audio = truth[utt.paths["mix"]]
            if removed_layers(task, variant, indoor):
                assert Path(path) == (d / "wav" / "mix" / f"{uid}.wav").resolve()
                assert sf.info(path).subtype == "FLOAT"
            else:
                assert path == utt.paths["mix"]
            got = sf.read(path, dtype="float64")[0]
            assert np.abs(got - expected_mixture(audio, task, variant, indoor)).max() < 1e-6
            for target, layers in TARGETS[task].items():
                tpath = read_scp(d / f"{target}.scp")[uid]
                if len(layers) == 1:
                    assert tpath == utt.paths[layers[0]]
                else:
                    assert Path(tpath) == (d / "wav" / target / f"{uid}.wav").resolve()
                want = sum(audio[n].astype(np.float64) for n in layers)
                assert np.abs(sf.read(tpath, dtype="float64")[0] - want).max() < 1e-6
    assert sorted(p.name for p in out.iterdir()) == sorted(counts)


def test_prepare_cli(corpus, tmp_path, capsys):
    root, _ = corpus
    out = tmp_path / "data"
    rc, stdout, err = run(capsys, "--root", root, "--out", out, "--task", "SB", "--splits", "test,train",
                          "--variants", "R,SE", "--no-progress")
    assert rc == 0, err
    assert stdout.split() == ["train_SE=2", "test_R=1", "test_SE=1"]
    assert sorted(p.name for p in out.iterdir()) == ["test_R", "test_SE", "train_SE"]
    assert not (out / "test_SE" / "wav").exists()  # SB, SE: nothing subtracted, nothing written
    for d in out.iterdir():
        validate_data_dir(d)


@pytest.mark.parametrize("args, needles", [
    (["--task", "ES", "--variants", "SER,XY"], ["--variants", "XY"]),
    (["--task", "ES", "--splits", "dev"], ["--splits", "dev"]),
    (["--task", "XX"], ["--task", "XX"]),
    (["--task", "ES", "--splits", "train", "--variants", "SER,R"], ["no utterance of train fits the variants SER, R"]),
])
def test_prepare_cli_errors(corpus, tmp_path, capsys, args, needles):
    out = tmp_path / "data"
    rc, stdout, err = run(capsys, "--root", corpus[0], "--out", out, "--no-progress", *args)
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"{PROG}: error: "), err
    assert all(n in err[0] for n in needles), err
    assert not out.exists()


def test_prepare_missing_root_and_split(copy, tmp_path, capsys):
    out = tmp_path / "data"
    rc, _, err = run(capsys, "--root", tmp_path / "nope", "--out", out, "--task", "ES")
    assert rc == 2 and len(err) == 1 and "nope" in err[0] and "no such directory" in err[0], err
    shutil.rmtree(copy / "test")
    rc, _, err = run(capsys, "--root", copy, "--out", out, "--task", "ES")
    assert rc == 2 and len(err) == 1 and "no test/ folder" in err[0], err
    assert not out.exists()


def test_prepare_leaves_nothing_on_a_late_error(copy, tmp_path, capsys):
    """A NaN found only when the audio is read (the headers are fine): the files written so far are removed."""
    path = copy / "test" / "event" / "t_in_event.wav"
    audio = sf.read(str(path), dtype="float32")[0]
    audio[100] = np.nan
    sf.write(str(path), audio, RATE, subtype="FLOAT")
    out = tmp_path / "data"
    with pytest.raises(BandaError) as e:
        prepare_polsess(copy, out, "ES", progress=False)
    assert "t_in_event.wav" in str(e.value) and "NaN" in str(e.value)
    assert not out.exists()
    out.mkdir()  # an existing output folder stays, empty
    rc, _, err = run(capsys, "--root", copy, "--out", out, "--task", "EB", "--no-progress")
    assert rc == 2 and len(err) == 1 and "t_in_event.wav" in err[0], err
    assert list(out.iterdir()) == []
