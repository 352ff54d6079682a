"""The learned mixer's library: the distortion spec and its repair (exact inverses), the target
layout, the self-supervised dataset (determinism, reference levels, silent stems), the model's
shapes, tags and the programs it prints, the ``mix`` task's config checks, and repair scoring."""
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from banda.datadir import write_data_dir
from banda.errors import ConfigError
from banda.mixing.data import DISTORTABLE, PAN_LIMIT, DistortionDataset, DistortionSpec, repair_of, target_arrays
from banda.mixing.program import Call, Program, apply_calls, make_program, parse_program
from banda.mixing.repair import level_db, repair_scores
from banda.models.mixer import LearnedMixer, chains_from_outputs

RATE = 44100
STEMS = ["vocals", "drums", "bass", "other"]
ENCODER = {"name": "melstats", "params": {"n_fft": 512, "hop_length": 512, "n_mels": 16, "hidden": 32}}
DISTORT = {
    "change_volume": {"prob": 0.5, "db": [4.0, 12.0]},
    "change_pan": {"prob": 0.3, "pan": [0.2, 0.6]},
    "apply_eq": {"prob": 0.5, "low_gain": [3.0, 9.0], "mid_gain": [3.0, 9.0], "high_gain": [3.0, 9.0]},
}


# --------------------------------------------------------------------------- shared helpers
def stem_audio(stem: str, frames: int, seed: int, rate: int = RATE) -> np.ndarray:
    """``(2, frames)`` float32: a stem-like signal (a tone and some noise), different per stem and seed."""
    rng = np.random.default_rng([seed, STEMS.index(stem) if stem in STEMS else 99])
    t = np.arange(frames) / rate
    f0 = {"vocals": 440.0, "drums": 180.0, "bass": 60.0, "other": 1200.0}.get(stem, 300.0)
    amp = 0.1 + 0.1 * rng.random()
    chans = [amp * np.sin(2 * np.pi * f0 * (1 + 0.01 * c) * t + rng.uniform(0, 6)) + 0.03 * rng.standard_normal(frames)
             for c in range(2)]
    return np.stack(chans).astype(np.float32)


def make_data_dir(root: Path, tracks: int = 2, seconds: float = 2.0, stems=STEMS, silent=(), subtype="FLOAT") -> Path:
    """A data dir of ``tracks`` tracks (``t0``, ...), every stem stereo at 44.1 kHz; the stems
    named in ``silent`` are all zeros."""
    frames = int(round(seconds * RATE))
    rows = {}
    for i in range(tracks):
        tid = f"t{i}"
        folder = root / "audio" / tid
        folder.mkdir(parents=True, exist_ok=True)
        paths, mix = {}, np.zeros((2, frames), dtype=np.float32)
        for s in stems:
            x = np.zeros((2, frames), dtype=np.float32) if s in silent else stem_audio(s, frames, seed=i)
            sf.write(str(folder / f"{s}.wav"), x.T, RATE, subtype=subtype)
            paths[s] = str(folder / f"{s}.wav")
            mix += x
        sf.write(str(folder / "mixture.wav"), mix.T, RATE, subtype=subtype)
        paths["mix"] = str(folder / "mixture.wav")
        rows[tid] = (paths, frames)
    write_data_dir(root / "data", rows, list(stems))
    return root / "data"


def tiny_mixer(stems=STEMS, distort=DISTORT, tags=(), seed=0):
    """``(model, constructor params)`` of a tiny untrained mixer whose tools the spec sets."""
    torch.manual_seed(seed)
    params = dict(stems=list(stems), sample_rate=RATE, in_channels=2, tools=DistortionSpec(distort).target_tools(),
                  encoder=ENCODER, dim=16, layers=1, heads=2, tags=list(tags))
    return LearnedMixer(**params).eval(), params


def write_mixer_archive(path: Path, stems=STEMS, distort=DISTORT, segment_seconds=1.0, stem_level_db=None,
                        tags=None) -> Path:
    from banda.models import make_archive

    model, params = tiny_mixer(stems, distort, tags=list(tags or {}))
    cfg = {"task": "mix", "stems": list(stems), "sample_rate": RATE, "channels": 2, "distort": distort,
           "data": {"segment_seconds": segment_seconds, "stem_level_db": stem_level_db, "tag_prob": 0.5},
           "tags": dict(tags or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(make_archive(model, "mixer", params, config=cfg), path)
    return path


def calls_of(chain):
    """``[(tool, {param: v})]`` -> ``[Call]``."""
    return [Call(t, tuple(p.items())) for t, p in chain]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("mixdata"))


# --------------------------------------------------------------------------- DistortionSpec
@pytest.mark.parametrize("spec,needles", [
    ({"foo": {"prob": 0.5, "db": [1, 2]}}, ["distort.foo"]),
    ({"apply_reverb": {"prob": 0.5, "wet": [0.1, 0.2]}}, ["distort.apply_reverb", "cannot distort"]),
    ({"apply_compressor": {"prob": 0.5, "ratio": [2, 4]}}, ["distort.apply_compressor", "cannot distort"]),
    ({"change_volume": {"prob": 0.5, "gain": [1, 2]}}, ["distort.change_volume.gain", "unknown parameter", "db"]),
    ({"change_volume": {"prob": 0.5, "db": [6, 3]}}, ["distort.change_volume.db"]),
    ({"change_volume": {"prob": 0.5, "db": [-3, 6]}}, ["distort.change_volume.db"]),
    ({"change_volume": {"prob": 0.5, "db": [3, 30]}}, ["distort.change_volume.db", "24"]),
    ({"change_pan": {"prob": 0.5, "pan": [0.2, 0.95]}}, ["distort.change_pan.pan", "0.9"]),
    ({"apply_eq": {"prob": 0.5, "low_gain": [-1, 3]}}, ["distort.apply_eq.low_gain"]),
    ({"apply_eq": {"prob": 0.5, "low_freq": [10, 100]}}, ["distort.apply_eq.low_freq", "[20, 1000]"]),
    ({"change_volume": {"prob": 1.5, "db": [1, 2]}}, ["distort.change_volume.prob", "[0, 1]"]),
    ({"change_volume": {"prob": -0.1, "db": [1, 2]}}, ["distort.change_volume.prob"]),
    ({"change_volume": {"prob": True, "db": [1, 2]}}, ["distort.change_volume.prob"]),
    ({"change_volume": {"prob": 0.5}}, ["distort.change_volume", "at least one parameter"]),
    ({"change_volume": {"prob": 0.5, "db": [1, 2, 3]}}, ["distort.change_volume.db"]),
    ({"change_volume": [1, 2]}, ["distort.change_volume", "mapping"]),
    ({}, ["distort", "at least one tool"]),
])
def test_distortion_spec_errors_name_the_key(spec, needles):
    with pytest.raises(ConfigError) as err:
        DistortionSpec(spec)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_distortion_spec_accepts_the_edges():
    spec = DistortionSpec({"change_pan": {"prob": 1, "pan": [0, PAN_LIMIT]}, "change_volume": {"prob": 0, "db": [0, 24]}})
    assert spec.tools["change_pan"] == (1.0, {"pan": (0.0, PAN_LIMIT)})


def test_target_tools_adds_volume_for_pan_in_canonical_order():
    spec = DistortionSpec({"apply_eq": {"prob": 0.5, "high_gain": [1, 2], "low_gain": [1, 2]},
                           "change_pan": {"prob": 0.5, "pan": [0.1, 0.2]}})
    assert list(spec.tools) == ["change_pan", "apply_eq"]  # canonical, whatever the config's order
    tools = spec.target_tools()
    assert tools == {"change_volume": ["db"], "change_pan": ["pan"], "apply_eq": ["high_gain", "low_gain"]}
    assert list(tools) == ["change_volume", "change_pan", "apply_eq"]
    # with change_volume given too, its db is not repeated
    spec = DistortionSpec({"change_pan": {"pan": [0.1, 0.2]}, "change_volume": {"db": [1, 2]}})
    assert spec.target_tools() == {"change_volume": ["db"], "change_pan": ["pan"]}
    assert DistortionSpec({"apply_eq": {"mid_gain": [1, 2]}}).target_tools() == {"apply_eq": ["mid_gain"]}
    assert DistortionSpec(DISTORT).target_tools() == {"change_volume": ["db"], "change_pan": ["pan"],
                                                       "apply_eq": ["low_gain", "mid_gain", "high_gain"]}


def test_draw_follows_the_ranges_and_skips_pan_on_mono():
    spec = DistortionSpec({"change_volume": {"prob": 1, "db": [4, 12]}, "change_pan": {"prob": 1, "pan": [0.2, 0.6]}})
    rng = np.random.default_rng(0)
    signs = set()
    for _ in range(200):
        calls = dict(spec.draw(rng, 2))
        assert set(calls) == {"change_volume", "change_pan"}
        assert 4 <= abs(calls["change_volume"]["db"]) <= 12 and 0.2 <= abs(calls["change_pan"]["pan"]) <= 0.6
        signs.add(calls["change_volume"]["db"] > 0)
        assert [t for t, _ in spec.draw(rng, 1)] == ["change_volume"]  # no pan of a mono stem
    assert signs == {True, False}  # both signs drawn
    never = DistortionSpec({"change_volume": {"prob": 0, "db": [4, 12]}})
    assert all(never.draw(rng, 2) == [] for _ in range(50))


# --------------------------------------------------------------------------- repair_of
WIDE = {
    "change_volume": {"prob": 0.6, "db": [0.0, 7.0]},
    "change_pan": {"prob": 0.6, "pan": [0.0, PAN_LIMIT]},
    "apply_eq": {"prob": 0.6, "low_gain": [0.0, 18.0], "mid_gain": [0.0, 18.0], "high_gain": [0.0, 18.0],
                 "low_freq": [40.0, 800.0], "mid_freq": [200.0, 8000.0], "mid_q": [0.3, 4.0],
                 "high_freq": [1500.0, 16000.0]},
}


@pytest.mark.parametrize("dtype,tol,distort", [(torch.float64, 1e-6, WIDE), (torch.float32, 1e-3, DISTORT)])
def test_repair_undoes_every_distortion(dtype, tol, distort):
    """float64: exact to rounding, whatever the frequencies; float32 (the training data's), with
    the gains a training spec draws: the biquads' rounding stays ~1e-4 of a 0.3-RMS signal."""
    spec = DistortionSpec(distort)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(0.3 * rng.standard_normal((2, 4000))).to(dtype)
    seen = set()
    for _ in range(60):
        distortion = spec.draw(rng, 2)
        seen.update(t for t, _ in distortion)
        y = apply_calls(x, RATE, calls_of(distortion))
        repair = repair_of(distortion)
        assert set(repair) >= {t for t, _ in distortion}
        back = apply_calls(y, RATE, calls_of(list(repair.items())))
        assert back.shape == x.shape
        err = float((back - x).abs().max())
        assert err < tol, (distortion, repair, err)
    assert seen == set(DISTORTABLE)


def test_repair_merges_the_volume_of_a_pan():
    pan = 0.5
    loss = -20 * math.log10(math.cos(pan * math.pi / 2))
    assert repair_of([("change_pan", {"pan": pan})]) == {"change_pan": {"pan": -pan},
                                                        "change_volume": {"db": pytest.approx(loss, abs=1e-12)}}
    both = repair_of([("change_volume", {"db": -6.0}), ("change_pan", {"pan": -pan})])
    assert both["change_pan"] == {"pan": pan}
    assert both["change_volume"]["db"] == pytest.approx(6.0 + loss, abs=1e-12)  # one volume, the sum
    assert repair_of([]) == {}
    eq = repair_of([("apply_eq", {"low_gain": 3.0, "high_gain": -2.0})])["apply_eq"]
    assert eq["low_gain"] == -3.0 and eq["high_gain"] == 2.0 and eq["mid_gain"] == 0.0 and eq["low_freq"] == 150.0
    with pytest.raises(ConfigError, match="apply_reverb"):
        repair_of([("apply_reverb", {"wet": 0.2})])


def test_every_repair_a_spec_allows_is_a_valid_program():
    """A spec DistortionSpec accepts must only draw distortions whose repair the tools can
    express: a stem turned down 20 dB and panned to 0.9 needs +20 + 16 dB of change_volume,
    beyond the tool's +24 dB."""
    distort = {"change_volume": {"prob": 1.0, "db": [20.0, 24.0]}, "change_pan": {"prob": 1.0, "pan": [0.85, 0.9]}}
    try:
        spec = DistortionSpec(distort)
    except ConfigError:
        return  # refusing such a spec is a fine answer too
    rng = np.random.default_rng(0)
    for _ in range(20):
        distortion = spec.draw(rng, 2)
        make_program({"vocals": list(repair_of(distortion).items())})  # no ProgramError


# --------------------------------------------------------------------------- target_arrays
def test_target_arrays_layout():
    tools = {"change_volume": ["db"], "change_pan": ["pan"], "apply_eq": ["low_gain", "high_gain"]}
    repair = {"change_volume": {"db": 3.5}, "apply_eq": {"low_gain": -2.0, "mid_gain": 0.0, "high_gain": 4.0,
                                                         "low_freq": 150.0}}
    presence, values, mask = target_arrays(repair, tools)
    np.testing.assert_array_equal(presence, [1, 0, 1])
    np.testing.assert_array_equal(values, [3.5, 0.0, -2.0, 4.0])
    np.testing.assert_array_equal(mask, [1, 0, 1, 1])
    assert presence.dtype == values.dtype == mask.dtype == np.float32
    p, v, m = target_arrays({}, tools)
    assert not p.any() and not v.any() and not m.any() and v.shape == (4,)


# --------------------------------------------------------------------------- DistortionDataset
def dataset(data_dir, **kw):
    args = dict(stems=STEMS, sample_rate=RATE, channels=2, seconds=1.0, items=6, spec=DistortionSpec(DISTORT),
                tools=DistortionSpec(DISTORT).target_tools(), seed=3)
    args.update(kw)
    return DistortionDataset(data_dir, **args)


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_dataset_items_are_deterministic_per_epoch(data_dir):
    data = dataset(data_dir)
    item = data[2]
    assert item["distorted"].shape == item["original"].shape == (4, 2, RATE)
    assert item["presence"].shape == (4, 3) and item["values"].shape == item["mask"].shape == (4, 5)
    assert all(v.dtype == torch.float32 for k, v in item.items() if k != "tag") and item["tag"].dtype == torch.long
    assert same(item, data[2])  # a pure function of (seed, epoch, index)
    assert same(item, dataset(data_dir)[2])
    data.set_epoch(1)
    assert not same(item, data[2])  # another epoch: other items
    other = dataset(data_dir)
    other.set_epoch(1)
    assert same(data[2], other[2])
    assert not same(dataset(data_dir)[2], dataset(data_dir, seed=4)[2])


def test_fixed_dataset_is_the_same_every_epoch(data_dir):
    data = dataset(data_dir, fixed=True)
    first = [data[i] for i in range(4)]
    data.set_epoch(5)
    assert all(same(a, data[i]) for i, a in enumerate(first))
    assert [data.draw(i)[0] for i in range(4)] == ["t0", "t1", "t0", "t1"]  # track i % tracks


def test_original_is_the_clean_audio_and_undistorted_stems_pass(data_dir):
    data = dataset(data_dir, fixed=True, items=8)
    n_undistorted = n_distorted = 0
    for i in range(8):
        tid, start, audio, calls = data.draw(i)
        item = data[i]
        for j, s in enumerate(STEMS):
            clean, _ = sf.read(str(data.table.paths[s][tid]), start=start, frames=RATE, dtype="float32", always_2d=True)
            np.testing.assert_array_equal(item["original"][j].numpy(), clean.T)
            if not calls[s]:
                n_undistorted += 1
                assert torch.equal(item["distorted"][j], item["original"][j])
                assert not item["presence"][j].any() and not item["mask"][j].any()
            else:
                n_distorted += 1
                assert not torch.equal(item["distorted"][j], item["original"][j])
                expected = apply_calls(item["original"][j], RATE, calls_of(calls[s]))
                torch.testing.assert_close(item["distorted"][j], expected, rtol=0, atol=1e-6)
                pr, va, ma = target_arrays(repair_of(calls[s]), data.tools)
                np.testing.assert_array_equal(item["presence"][j].numpy(), pr)
                np.testing.assert_allclose(item["values"][j].numpy(), va, rtol=1e-6)
                np.testing.assert_array_equal(item["mask"][j].numpy(), ma)
    assert n_undistorted and n_distorted


def test_stem_level_db_sets_every_original_stem_level(data_dir):
    data = dataset(data_dir, stem_level_db=-20.0, items=4)
    for i in range(4):
        item = data[i]
        for j in range(len(STEMS)):
            assert level_db(item["original"][j]) == pytest.approx(-20.0, abs=0.01)
    levels = {"vocals": -14.0, "drums": -18.0, "bass": -22.0, "other": -30.0}
    item = dataset(data_dir, stem_level_db=levels)[0]
    for j, s in enumerate(STEMS):
        assert level_db(item["original"][j]) == pytest.approx(levels[s], abs=0.01)


def test_silent_stem_is_never_distorted(tmp_path):
    d = make_data_dir(tmp_path, silent=("bass",))
    always = {"change_volume": {"prob": 1.0, "db": [4, 12]}, "apply_eq": {"prob": 1.0, "low_gain": [3, 6]}}
    spec = DistortionSpec(always)
    data = dataset(d, spec=spec, tools=spec.target_tools(), stem_level_db=-20.0, items=5, min_distorted=4)
    b = STEMS.index("bass")
    for i in range(5):
        item = data[i]
        assert not item["presence"][b].any() and not item["mask"][b].any() and not item["values"][b].any()
        assert not item["original"][b].any() and not item["distorted"][b].any()
        for j in range(len(STEMS)):
            if j != b:
                assert item["presence"][j].all()  # prob 1: every loud stem is distorted


def test_min_distorted_gives_a_distorted_stem_per_item(data_dir):
    rare = {"change_volume": {"prob": 0.05, "db": [4, 12]}}
    spec = DistortionSpec(rare)
    plain = dataset(data_dir, spec=spec, tools=spec.target_tools(), items=30, fixed=True)
    assert any(not plain[i]["presence"].any() for i in range(30))  # without it, items with no distortion
    data = dataset(data_dir, spec=spec, tools=spec.target_tools(), items=30, fixed=True, min_distorted=1)
    for i in range(30):
        assert data[i]["presence"].any(), i


# --------------------------------------------------------------------------- LearnedMixer
def test_mixer_shapes_and_stem_count():
    model, _ = tiny_mixer()
    x = 0.1 * torch.randn(3, 4, 2, 8000)
    with torch.no_grad():
        logits, values = model(x)
    assert logits.shape == (3, 4, 3) and values.shape == (3, 4, 5)
    assert torch.isfinite(logits).all() and torch.isfinite(values).all()
    assert model.tools == {"change_volume": ["db"], "change_pan": ["pan"], "apply_eq": ["low_gain", "mid_gain", "high_gain"]}
    with pytest.raises(ValueError, match="expected 4 stems"):
        model(x[:, :3])
    chains = model.predict_chains(x[0])
    assert list(chains) == STEMS
    make_program(chains)  # a valid program


def test_mixer_attends_across_stems():
    """A stem's outputs depend on the other stems (attention over the stems)."""
    model, _ = tiny_mixer()
    x = 0.1 * torch.randn(1, 4, 2, 8000)
    y = x.clone()
    y[:, 3] *= 4
    with torch.no_grad():
        a, b = model(x)[0], model(y)[0]
    assert not torch.allclose(a[0, 0], b[0, 0])


def test_mixer_rejects_bad_params():
    with pytest.raises(ConfigError, match="heads"):
        LearnedMixer(STEMS, RATE, 2, {"change_volume": ["db"]}, encoder=ENCODER, dim=15, heads=2)
    with pytest.raises(ConfigError, match="model.params.tools"):
        LearnedMixer(STEMS, RATE, 2, {}, encoder=ENCODER, dim=16, heads=2)


def test_mixer_tags():
    model, _ = tiny_mixer(tags=["brighter", "warmer"])
    assert model.tag_index(None) == 0 and model.tag_index("brighter") == 1 and model.tag_index("warmer") == 2
    with pytest.raises(ConfigError) as err:
        model.tag_index("darker")
    assert "'darker'" in str(err.value) and "brighter, warmer" in str(err.value)
    x = 0.1 * torch.randn(1, 4, 2, 8000)
    with torch.no_grad():
        none = model(x, torch.tensor([0]))[0]
        warm = model(x, torch.tensor([2]))[0]
    assert not torch.allclose(none, warm)
    untagged, _ = tiny_mixer()
    assert untagged.tag_index(None) == 0
    with pytest.raises(ConfigError, match="no tags"):
        untagged.tag_index("brighter")


def test_chains_from_outputs_threshold_rounding_and_range():
    tools = {"change_volume": ["db"], "change_pan": ["pan"], "apply_eq": ["low_gain", "high_gain"]}
    stems = ["a", "b", "c"]
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    logits = torch.tensor([[logit(0.9), logit(0.2), logit(0.6)],
                           [logit(0.55), logit(0.7), logit(0.1)],
                           [logit(0.3), logit(0.3), logit(0.3)]])
    values = torch.tensor([[-3.14159, 0.5, 30.0, -7.26],
                           [40.0, -1.7, 0.0, 0.0],
                           [1.0, 1.0, 1.0, 1.0]])
    chains = chains_from_outputs(stems, tools, logits, values)
    assert chains["a"] == [("change_volume", {"db": -3.1}), ("apply_eq", {"low_gain": 24.0, "high_gain": -7.3})]
    assert chains["b"] == [("change_volume", {"db": 24.0}), ("change_pan", {"pan": -1.0})]
    assert chains["c"] == []
    high = chains_from_outputs(stems, tools, logits, values, threshold=0.65)
    assert [t for t, _ in high["a"]] == ["change_volume"] and [t for t, _ in high["b"]] == ["change_pan"]
    low = chains_from_outputs(stems, tools, logits, values, threshold=0.25)
    assert [t for t, _ in low["c"]] == ["change_volume", "change_pan", "apply_eq"]
    # -0.04 rounds to -0.0: printed as 0.0
    neg = chains_from_outputs(["a"], {"change_volume": ["db"]}, torch.tensor([[5.0]]), torch.tensor([[-0.04]]))
    db = neg["a"][0][1]["db"]
    assert db == 0.0 and math.copysign(1.0, db) == 1.0
    program = make_program(neg)
    assert "-0.0" not in str(program) and parse_program(str(program)) == program
    two = chains_from_outputs(["a"], {"change_volume": ["db"]}, torch.tensor([[5.0]]), torch.tensor([[-1.23456]]), decimals=2)
    assert two["a"][0][1]["db"] == -1.23


# --------------------------------------------------------------------------- the mix task's config
def test_print_config_of_the_mix_task(capsys):
    from banda.bin.train import main

    with pytest.raises(SystemExit) as done:
        main(["--task", "mix", "--print_config"])
    assert done.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["task"] == "mix"
    assert set(cfg["distort"]) == {"change_volume", "change_pan", "apply_eq"}
    assert "stem_level_db" in cfg["data"] and cfg["data"]["stem_level_db"] is None
    assert cfg["model"]["name"] == "mixer"
    assert cfg["model"]["params"]["tools"] == DistortionSpec(cfg["distort"]).target_tools()
    assert "stems" not in cfg["model"]["params"]


def write_cfg(tmp_path, text: str) -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text("task: mix\n" + text)
    return path


def test_distort_section_sets_the_tools(tmp_path, capsys):
    """A distort section lists the tools to distort with: only those are drawn and predicted."""
    from banda.bin.train import main

    path = write_cfg(tmp_path, "distort:\n  change_volume: {prob: 1.0, db: [3.0, 6.0]}\n")
    with pytest.raises(SystemExit) as done:
        main(["--config", str(path), "--print_config"])
    assert done.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["distort"] == {"change_volume": {"prob": 1.0, "db": [3.0, 6.0]}}
    assert cfg["model"]["params"]["tools"] == {"change_volume": ["db"]}


@pytest.mark.parametrize("text,needles", [
    ("model: {params: {tools: {change_volume: [db]}}}\n", ["model.params.tools", "distort"]),
    ("data: {stem_level_db: {vocals: -20, drums: -20, bass: -20, guitar: -20}}\n", ["data.stem_level_db", "'guitar'"]),
    ("data: {stem_level_db: {vocals: -20, drums: -20}}\n", ["data.stem_level_db", "'bass'"]),
    ("data: {stem_level_db: 3}\n", ["data.stem_level_db", "<= 0"]),
    ("distort: {change_pan: {prob: 0.3, pan: [0.2, 0.95]}}\n", ["distort.change_pan.pan"]),
    ("distort: {apply_reverb: {prob: 0.3, wet: [0.1, 0.2]}}\n", ["distort.apply_reverb"]),
    ("data: {segment_seconds: 0.1}\n", ["data.segment_seconds"]),
])
def test_bad_mix_config_is_one_line_before_training(tmp_path, capsys, text, needles):
    from banda.bin.train import main

    path = write_cfg(tmp_path, text)
    exp = tmp_path / "exp"
    assert main(["--config", str(path), "--exp_dir", str(exp)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("banda-train: error:")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not exp.exists() and out == ""


# --------------------------------------------------------------------------- repair scoring
def distorted_clip(seed=0, frames=RATE):
    spec = DistortionSpec({"change_volume": {"prob": 1.0, "db": [4, 10]}, "change_pan": {"prob": 0.7, "pan": [0.2, 0.6]},
                           "apply_eq": {"prob": 0.7, "low_gain": [3, 9], "high_gain": [3, 9]}})
    rng = np.random.default_rng(seed)
    originals = {s: torch.from_numpy(stem_audio(s, frames, seed)) for s in STEMS}
    chains = {s: spec.draw(rng, 2) for s in STEMS}
    distorted = {s: apply_calls(originals[s], RATE, calls_of(chains[s])) for s in STEMS}
    return originals, distorted, chains


def test_exact_repair_scores_zero():
    originals, distorted, chains = distorted_clip()
    program = make_program({s: list(repair_of(c).items()) for s, c in chains.items()})
    assert program.statements
    sc = repair_scores(program, originals, distorted, RATE)
    assert sc["stft_distance"] < 1e-3 and sc["input_stft_distance"] > 0.1
    assert sc["stft_distance"] / sc["input_stft_distance"] < 1e-3
    assert set(sc["volume_error_db"]) == set(STEMS)
    assert max(sc["volume_error_db"].values()) < 0.01  # float32 biquads: a few thousandths of a dB
    assert max(sc["input_volume_error_db"].values()) > 3.0  # every stem changed at least 4 dB
    assert sc["loudness_diff_lu"] < 1e-3 and sc["input_loudness_diff_lu"] > 0
    for key in ("original_mix", "distorted_mix", "repaired_mix"):
        assert sc[key].shape == (2, RATE)
    torch.testing.assert_close(sc["repaired_mix"], sc["original_mix"], rtol=0, atol=1e-3)  # float32 biquads


def test_empty_program_scores_the_input():
    originals, distorted, _ = distorted_clip(seed=1)
    sc = repair_scores(Program(), originals, distorted, RATE)
    assert sc["stft_distance"] == sc["input_stft_distance"] > 0
    assert sc["volume_error_db"] == sc["input_volume_error_db"]
    assert sc["loudness_diff_lu"] == sc["input_loudness_diff_lu"]
    torch.testing.assert_close(sc["repaired_mix"], sc["distorted_mix"], rtol=0, atol=0)


def test_silent_stems_are_left_out_of_the_volume_error():
    originals, distorted, _ = distorted_clip(seed=2)
    originals["bass"] = torch.zeros_like(originals["bass"])
    distorted["bass"] = torch.zeros_like(distorted["bass"])
    sc = repair_scores(Program(), originals, distorted, RATE)
    assert "bass" not in sc["volume_error_db"] and set(sc["volume_error_db"]) == {"vocals", "drums", "other"}


# --------------------------------------------------------------------------- text tags
TAGS = {"brighter": {"apply_eq": {"high_gain": 4.0}}, "louder": {"change_volume": {"db": 3.0}}}


def test_tagged_items_ask_for_the_tagged_original(data_dir):
    from banda.mixing.data import tagged

    data = dataset(data_dir, items=24, tags=TAGS, tag_prob=0.7, stem_level_db=-20.0)
    plain = dataset(data_dir, items=24, stem_level_db=-20.0)
    rows = [data.tag_of(i) for i in range(24)]
    assert set(rows) == {0, 1, 2}  # none, brighter, louder
    tools = DistortionSpec(DISTORT).target_tools()
    keys = [(t, p) for t in tools for p in tools[t]]
    for i in range(24):
        item, base = data[i], plain[i]
        assert int(item["tag"]) == rows[i]
        assert torch.equal(item["distorted"], base["distorted"])  # the tag changes the target, not the input
        _, _, _, calls = data.draw(i)
        if rows[i] == 0:
            assert same(item, base)
            continue
        name, change = list(TAGS.items())[rows[i] - 1]
        for j, stem in enumerate(STEMS):
            want = tagged(repair_of(calls[stem]), change)
            assert [bool(v) for v in item["presence"][j]] == [t in want for t in tools]
            for k, (t, p) in enumerate(keys):
                if t in want:
                    assert float(item["values"][j, k]) == pytest.approx(want[t][p], abs=1e-5)
            tool, params = next(iter(change.items()))
            expect = apply_calls(base["original"][j], RATE, calls_of([(tool, params)]))
            assert torch.allclose(item["original"][j], expect, atol=1e-6)


@pytest.mark.parametrize("tags,needle", [
    ({"brighter": {"apply_reverb": {"wet": 0.2}}}, "tags.brighter.apply_reverb"),
    ({"brighter": {"apply_eq": {"mid_q": 1.0}}}, "tags.brighter.apply_eq.mid_q"),
    ({"brighter": {"apply_eq": {"high_gain": 30.0}}}, "tags.brighter.apply_eq.high_gain"),
    ({"brighter": {}}, "tags.brighter"),
    ({" x": {"change_volume": {"db": 1.0}}}, "plain name"),
])
def test_check_tags_errors_name_the_key(tags, needle):
    from banda.mixing.data import check_tags

    with pytest.raises(ConfigError, match=None) as e:
        check_tags(tags, DistortionSpec(DISTORT).target_tools())
    assert needle in str(e.value)


def test_tags_section_sets_the_model_tags(tmp_path, capsys):
    from banda.bin.train import main

    path = write_cfg(tmp_path, "tags: {brighter: {apply_eq: {high_gain: 3}}, darker: {apply_eq: {high_gain: -3}}}\n")
    with pytest.raises(SystemExit) as done:
        main(["--config", str(path), "--print_config"])
    assert done.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["params"]["tags"] == ["brighter", "darker"]
