"""banda.corpora.medleydb behind banda.bin.prepare_medleydb: instrument mapping, group sums,
splits, re-runs and errors on a tiny synthetic copy of MedleyDB's exact layout
(Audio/<Track>/<Track>_MIX.wav, _STEMS/, _RAW/, Metadata/<Track>_METADATA.yaml)."""
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import soundfile as sf
import yaml

from banda.bin.prepare_medleydb import main
from banda.corpora.medleydb import INSTRUMENT_GROUPS, STEMS, group_of, parse_map, prepare_medleydb, split_tracks
from banda.datadir import read_scp, validate_data_dir
from banda.errors import BandaError

from conftest import error_line

RATE = 44100
# track -> stems as (instrument label(s), channels); the artist is the part before "_"
TRACKS: Dict[str, List] = {
    "AlphaBand_NightDrive": [("male singer", 2), ("drum set", 2), ("electric bass", 2), ("distorted electric guitar", 2),
                             ("clean electric guitar", 1), ("synthesizer", 2), ("tambourine", 2)],
    "BetaTrio_Waltz": [("piano", 2), ("double bass", 2), ("violin", 2), ("kick drum", 2), ("snare drum", 2)],
    "GammaSinger_Lullaby": [("female singer", 2), ("vocalists", 2), (["male singer", "acoustic guitar"], 2),
                            ("electric piano", 2), ("fx/processed sound", 2)],
    "DeltaCombo_Shuffle": [("drum machine", 2), ("electric bass", 2), ("acoustic guitar", 2), ("tack piano", 2),
                           ("alto saxophone", 2), ("male rapper", 2)],
}
IN_TRACK_FOLDER = "GammaSinger_Lullaby"  # v1-style: its metadata lies in the track folder
BLEED = "BetaTrio_Waltz"
MIX_GAIN = 0.7  # MedleyDB's MIX is not the plain sum of the stems


def stem_audio(seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.08 * np.sin(2 * np.pi * rng.uniform(80, 800) * t)
    x = [tone + 0.02 * rng.standard_normal(t.size) for _ in range(channels)]
    return np.stack(x).astype(np.float32)


def make_medleydb(root: Path, seconds: float = 0.5, tracks: Optional[Dict[str, List]] = None) -> Path:
    """Write a tiny MedleyDB-layout corpus under ``root``; returns ``root``."""
    tracks = TRACKS if tracks is None else tracks
    seed = 0
    for track, stems in tracks.items():
        folder = root / "Audio" / track
        (folder / f"{track}_STEMS").mkdir(parents=True)
        (folder / f"{track}_RAW").mkdir()
        meta = {"album": "Test", "artist": track.split("_")[0], "composer": ["Nobody"], "excerpt": "no",
                "genre": "Singer/Songwriter", "has_bleed": "yes" if track == BLEED else "no", "instrumental": "no",
                "mix_filename": f"{track}_MIX.wav", "origin": "Test", "producer": ["Nobody"],
                "raw_dir": f"{track}_RAW", "stem_dir": f"{track}_STEMS", "stems": {}, "title": track.split("_")[1],
                "website": []}
        mix = 0
        for i, (label, channels) in enumerate(stems, 1):
            name = f"{track}_STEM_{i:02d}.wav"
            x = stem_audio(seconds, channels, seed)
            seed += 1
            sf.write(str(folder / f"{track}_STEMS" / name), x.T, RATE, subtype="PCM_16")
            sf.write(str(folder / f"{track}_RAW" / f"{track}_RAW_{i:02d}_01.wav"), x[0], RATE, subtype="PCM_16")
            x16 = sf.read(str(folder / f"{track}_STEMS" / name), dtype="float32", always_2d=True)[0].T
            mix = mix + (np.repeat(x16, 2, axis=0) if channels == 1 else x16)
            first = label[0] if isinstance(label, list) else label
            meta["stems"][f"S{i:02d}"] = {"component": "melody" if "singer" in first else "", "filename": name,
                                          "instrument": label,
                                          "raw": {"R01": {"filename": f"{track}_RAW_{i:02d}_01.wav", "instrument": first}}}
        sf.write(str(folder / f"{track}_MIX.wav"), (MIX_GAIN * mix).T, RATE, subtype="PCM_16")
        meta_path = (folder if track == IN_TRACK_FOLDER else root / "Metadata") / f"{track}_METADATA.yaml"
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(yaml.safe_dump(meta, sort_keys=True))
    return root


def read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


def expected_groups(root: Path, track: str, coefficients: Optional[Dict[int, float]] = None) -> Dict[str, np.ndarray]:
    folder = root / "Audio" / track
    out = {g: 0 for g in STEMS}
    for i, (label, _) in enumerate(TRACKS[track], 1):
        x = read(folder / f"{track}_STEMS" / f"{track}_STEM_{i:02d}.wav")
        x = np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x
        c = (coefficients or {}).get(i, 1.0)
        out[group_of([label] if isinstance(label, str) else label, STEMS)] += c * x
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_medleydb(tmp_path_factory.mktemp("medleydb") / "MedleyDB")


def test_instrument_mapping():
    expect = {
        "male singer": "vocals", "female singer": "vocals", "vocalists": "vocals", "choir": "vocals",
        "male rapper": "vocals", "drum set": "drums", "kick drum": "drums", "snare drum": "drums", "toms": "drums",
        "auxiliary percussion": "drums", "tambourine": "drums", "drum machine": "drums", "electric bass": "bass",
        "double bass": "bass", "distorted electric guitar": "guitar", "clean electric guitar": "guitar",
        "acoustic guitar": "guitar", "piano": "piano", "electric piano": "piano", "tack piano": "piano",
        "synthesizer": "other", "violin": "other", "vibraphone": "other", "electronic organ": "other",
        "fx/processed sound": "other", "Main System": "other", "never heard of it": "other",
    }
    for label, group in expect.items():
        assert group_of([label], STEMS) == group, label
    assert group_of(["  Male  Singer "], STEMS) == "vocals"  # case and spaces do not matter
    assert group_of(["male singer", "acoustic guitar"], STEMS) == "vocals"  # a list goes by its first label
    assert group_of(["piano"], ["vocals", "drums", "bass", "other"]) == "other"  # no piano group: other
    assert set(INSTRUMENT_GROUPS.values()) <= set(STEMS)
    overrides = parse_map("electric piano=other; theremin = vocals", STEMS)
    assert overrides == {"electric piano": "other", "theremin": "vocals"}
    assert group_of(["electric piano"], STEMS, overrides) == "other"
    with pytest.raises(BandaError, match="strings"):
        parse_map("violin=strings", STEMS)
    with pytest.raises(BandaError):
        parse_map("violin", STEMS)


def test_split_is_by_artist_and_seeded():
    tracks = [f"Artist{a}_Song{s}" for a in range(10) for s in range(a % 3 + 1)]
    sets = split_tracks(tracks, valid_fraction=0.1, test_fraction=0.2, seed=3)
    assert sorted(sets["train"] + sets["valid"] + sets["test"]) == sorted(tracks)
    artists = {name: {t.split("_")[0] for t in sets[name]} for name in sets}
    assert not (artists["train"] & artists["valid"]) and not (artists["train"] & artists["test"])
    assert not (artists["valid"] & artists["test"])
    assert sets["test"] and sets["valid"]
    assert split_tracks(tracks, seed=3) == split_tracks(tracks, seed=3)
    assert split_tracks(tracks, seed=3) != split_tracks(tracks, seed=4)


def test_prepare_sums_groups_and_writes_data_dirs(tmp_path, corpus):
    test_list = tmp_path / "test.txt"
    test_list.write_text("DeltaCombo_Shuffle\n")
    counts = prepare_medleydb(corpus, tmp_path / "data", tmp_path / "dump", test_tracks=str(test_list),
                              valid_fraction=0.25, seed=0, progress=False)
    assert counts == {"train": 2, "valid": 1, "test": 1}
    all_ids = []
    for name in ("train", "valid", "test"):
        d = tmp_path / "data" / name
        assert sorted(p.name for p in d.iterdir()) == sorted([f"{s}.scp" for s in STEMS] + ["mix.scp", "utt2num_samples"])
        assert validate_data_dir(d) == []
        all_ids += list(read_scp(d / "mix.scp"))
    assert sorted(all_ids) == sorted(TRACKS)
    assert list(read_scp(tmp_path / "data" / "test" / "mix.scp")) == ["DeltaCombo_Shuffle"]
    mix_scp = read_scp(tmp_path / "data" / "test" / "mix.scp")
    assert mix_scp["DeltaCombo_Shuffle"] == str((corpus / "Audio" / "DeltaCombo_Shuffle" / "DeltaCombo_Shuffle_MIX.wav").resolve())
    for track in TRACKS:
        expect = expected_groups(corpus, track)
        frames = sf.info(str(corpus / "Audio" / track / f"{track}_MIX.wav")).frames
        for g in STEMS:
            path = tmp_path / "dump" / track / f"{g}.wav"
            info = sf.info(str(path))
            assert (info.frames, info.channels, info.samplerate, info.subtype) == (frames, 2, RATE, "PCM_16")
            y = read(path)
            if isinstance(expect[g], int):  # a group the track lacks: silence
                assert not y.any(), (track, g)
            else:
                np.testing.assert_allclose(y, expect[g], atol=1 / 2 ** 15, rtol=0, err_msg=f"{track} {g}")
    table = (tmp_path / "dump" / "stem_groups.tsv").read_text().splitlines()
    assert table[0] == "track\tstem\tfile\tinstrument\tgroup\tcoefficient"
    assert "GammaSinger_Lullaby\tS03\tGammaSinger_Lullaby_STEM_03.wav\tmale singer|acoustic guitar\tvocals\t1" in table
    assert len(table) == 1 + sum(len(s) for s in TRACKS.values())

    # a second run writes no audio again; --overwrite does
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "dump").rglob("*.wav")}
    prepare_medleydb(corpus, tmp_path / "data", tmp_path / "dump", test_tracks=str(test_list), valid_fraction=0.25,
                     progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "dump").rglob("*.wav")} == stamp


def test_mixture_sum_coefficients_and_bleed(tmp_path, corpus):
    coefs = {t: {"audio": {i: 0.5 + 0.1 * i for i in range(1, len(s) + 1)}, "stft": {i: 1.0 for i in range(1, len(s) + 1)}}
             for t, s in TRACKS.items()}
    (tmp_path / "coefs.yaml").write_text(yaml.safe_dump(coefs))
    counts = prepare_medleydb(corpus, tmp_path / "data", tmp_path / "dump", valid_fraction=0.2, test_fraction=0.2,
                              exclude_bleed=True, mixture="sum", mixing_coefficients=str(tmp_path / "coefs.yaml"),
                              bit_depth=32, progress=False)
    assert sum(counts.values()) == len(TRACKS) - 1
    ids = [i for name in ("train", "valid", "test") for i in read_scp(tmp_path / "data" / name / "mix.scp")]
    assert BLEED not in ids
    track = "AlphaBand_NightDrive"
    expect = expected_groups(corpus, track, coefs[track]["audio"])
    groups = {g: read(tmp_path / "dump" / track / f"{g}.wav") for g in STEMS}
    for g in STEMS:
        np.testing.assert_allclose(groups[g], expect[g], atol=1e-6)
    np.testing.assert_allclose(read(tmp_path / "dump" / track / "mixture.wav"), sum(groups.values()), atol=1e-6)
    for name in ("train", "valid", "test"):
        scp = read_scp(tmp_path / "data" / name / "mix.scp")
        assert all(p.endswith("/mixture.wav") for p in scp.values())
        validate_data_dir(tmp_path / "data" / name)


def run(root, tmp_path, *extra) -> int:
    return main(["--root", str(root), "--out", str(tmp_path / "data"), "--audio-out", str(tmp_path / "dump"),
                 "--no-progress", *map(str, extra)])


def test_errors_name_the_problem(tmp_path, capsys):
    one = {"Solo_Song": [("male singer", 2), ("drum set", 2)], "Other_Song": [("piano", 2)], "Third_Song": [("violin", 2)]}

    def fresh(name: str) -> Path:
        return make_medleydb(tmp_path / name / "MedleyDB", seconds=0.1, tracks=one)

    assert run(tmp_path / "nowhere", tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "nowhere")
    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "no Audio/ folder")

    root = fresh("nometa")
    (root / "Metadata" / "Solo_Song_METADATA.yaml").unlink()
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "'Solo_Song': no metadata file")

    root = fresh("badyaml")
    (root / "Metadata" / "Solo_Song_METADATA.yaml").write_text("- just\n- a list\n")
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "unknown metadata structure")
    (root / "Metadata" / "Solo_Song_METADATA.yaml").write_text("stems:\n  S01: {filename: Solo_Song_STEM_01.wav}\n")
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "'instrument'")
    (root / "Metadata" / "Solo_Song_METADATA.yaml").write_text("stems: {S01: {filename: x.wav, instrument: [1, 2]}\n")
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "Solo_Song_METADATA.yaml")

    root = fresh("nostem")
    (root / "Audio" / "Solo_Song" / "Solo_Song_STEMS" / "Solo_Song_STEM_02.wav").unlink()
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "Solo_Song_STEM_02.wav", "stems.S02")

    root = fresh("nomix")
    (root / "Audio" / "Other_Song" / "Other_Song_MIX.wav").unlink()
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "Other_Song_MIX.wav")

    root = fresh("rate")
    path = root / "Audio" / "Other_Song" / "Other_Song_STEMS" / "Other_Song_STEM_01.wav"
    sf.write(str(path), np.zeros((100, 2), np.float32), 22050)
    assert run(root, tmp_path) == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "22050")

    root = fresh("ok")
    (tmp_path / "list.txt").write_text("Solo_Song\nNo_Such_Song\n")
    assert run(root, tmp_path, "--test-tracks", tmp_path / "list.txt") == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "No_Such_Song")
    assert run(root, tmp_path, "--stems", "vocals,drums") == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "other")
    assert run(root, tmp_path, "--map", "violin=strings") == 2
    error_line(capsys.readouterr().err, "banda-prepare-medleydb", "strings")
    assert not (tmp_path / "data").exists() and not (tmp_path / "dump").exists()  # nothing written on errors
    assert run(root, tmp_path, "--valid-fraction", "0.3", "--test-fraction", "0.3") == 0
