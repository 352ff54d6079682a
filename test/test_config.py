"""Strict YAML + CLI configuration (banda.config) and banda-train's config handling."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from banda.config import OPEN, check_params, merge_strict, parse_overrides, resolve
from banda.errors import ConfigError

from conftest import REPO, subprocess_env

DEFAULTS = {
    "name": "x",
    "data": {"chunk": 3.0, "stems": ["a", "b"], "shuffle": True, "nested": {"deep": 1}},
    "model": {"name": "m", "params": OPEN()},
}


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_precedence_defaults_yaml_cli(tmp_path):
    cfg_file = write(tmp_path, "name: from_yaml\ndata: {chunk: 4.5, shuffle: false}\n")
    only_defaults = resolve(DEFAULTS, None, [])
    assert only_defaults["data"]["chunk"] == 3.0 and only_defaults["name"] == "x"
    from_yaml = resolve(DEFAULTS, str(cfg_file), [])
    assert from_yaml["name"] == "from_yaml"
    assert from_yaml["data"] == {"chunk": 4.5, "stems": ["a", "b"], "shuffle": False, "nested": {"deep": 1}}
    from_cli = resolve(DEFAULTS, str(cfg_file), ["--data.chunk", "6", "--name=cli"])
    assert from_cli["data"]["chunk"] == 6 and from_cli["name"] == "cli"
    assert from_cli["data"]["shuffle"] is False  # the YAML value survives untouched keys
    # defaults are not modified
    assert DEFAULTS["data"]["chunk"] == 3.0 and DEFAULTS["name"] == "x"


def test_unknown_yaml_key_names_dotted_key_and_file(tmp_path):
    cfg_file = write(tmp_path, "data:\n  nested:\n    deeep: 2\n", "bad.yaml")
    with pytest.raises(ConfigError) as e:
        resolve(DEFAULTS, str(cfg_file), [])
    assert "'data.nested.deeep'" in str(e.value) and str(cfg_file) in str(e.value)
    with pytest.raises(ConfigError, match="'nmae'"):
        resolve(DEFAULTS, str(write(tmp_path, "nmae: y\n")), [])


def test_unknown_cli_key():
    with pytest.raises(ConfigError) as e:
        resolve(DEFAULTS, None, ["--data.chunck", "3"])
    assert "'data.chunck'" in str(e.value) and "command line" in str(e.value)


def test_scalar_for_mapping_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="'data' must be a mapping"):
        resolve(DEFAULTS, None, ["--data", "3"])
    with pytest.raises(ConfigError, match="not found"):
        resolve(DEFAULTS, str(tmp_path / "missing.yaml"), [])
    with pytest.raises(ConfigError, match="invalid YAML"):
        resolve(DEFAULTS, str(write(tmp_path, "data: [\n")), [])
    with pytest.raises(ConfigError, match="mapping"):
        resolve(DEFAULTS, str(write(tmp_path, "- a\n- b\n")), [])


def test_override_forms_and_yaml_values():
    eq = parse_overrides(["--a.b=3"])
    space = parse_overrides(["--a.b", "3"])
    assert eq == space == {"a": {"b": 3}}
    parsed = parse_overrides([
        "--n", "1e-3", "--f=2.5", "--i", "-4", "--l", "[1, 2, x]", "--t", "true", "--off=false",
        "--s", "hello", "--none", "null", "--m", "{k: 1}", "--dash-key", "7", "--empty=",
    ])
    assert parsed["n"] == pytest.approx(1e-3) and isinstance(parsed["n"], float)
    assert parsed["f"] == 2.5 and parsed["i"] == -4
    assert parsed["l"] == [1, 2, "x"]
    assert parsed["t"] is True and parsed["off"] is False
    assert parsed["s"] == "hello" and parsed["none"] is None and parsed["m"] == {"k": 1}
    assert parsed["dash_key"] == 7 and parsed["empty"] == ""
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(["--a.b"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse_overrides(["a.b", "3"])


def test_scientific_notation_is_a_float(tmp_path):
    """PyYAML alone reads 1e-3 as a string; config values must not."""
    assert parse_overrides(["--lr", "1e-3", "--big=5E4"]) == {"lr": 0.001, "big": 50000.0}
    cfg = resolve({"optim": {"lr": 0.1}}, str(write(tmp_path, "optim: {lr: 3e-4}\n")), [])
    assert cfg["optim"]["lr"] == pytest.approx(3e-4) and isinstance(cfg["optim"]["lr"], float)


@pytest.mark.parametrize("override,needle", [
    ("--data.chunk=abc", "'data.chunk' must be a number"),
    ("--data.shuffle=1", "'data.shuffle' must be true or false"),
    ("--data.stems=a", "'data.stems' must be a list"),
    ("--data.nested.deep=1.5", "'data.nested.deep' must be an integer"),
    ("--name=[1]", "'name' must be a string"),
])
def test_values_must_match_default_types(override, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        resolve(DEFAULTS, None, [override])
    # what is allowed: an int for a float, null for anything
    cfg = resolve(DEFAULTS, None, ["--data.chunk=2", "--name=null", "--data.nested.deep=-3"])
    assert cfg["data"]["chunk"] == 2 and cfg["name"] is None and cfg["data"]["nested"]["deep"] == -3


def test_open_sections_take_any_key_and_check_params():
    cfg = resolve(DEFAULTS, None, ["--model.params.anything", "5", "--model.params.other=[1]"])
    assert cfg["model"]["params"] == {"anything": 5, "other": [1]}

    class Comp:
        def __init__(self, size: int = 3, mode: str = "a", *args, **kwargs):
            pass

    assert check_params(Comp, {"size": 4}, "comp.params") == {"size": 4, "mode": "a"}
    with pytest.raises(ConfigError, match=r"'comp\.params\.sise'"):
        check_params(Comp, {"sise": 4}, "comp.params")

    class Needs:
        def __init__(self, required, optional=1):
            pass

    with pytest.raises(ConfigError, match=r"missing config key 'x\.required'"):
        check_params(Needs, {}, "x")


def test_merge_strict_keeps_open_marker():
    merged = merge_strict(DEFAULTS, {"model": {"params": {"a": 1}}}, "t")
    merged = merge_strict(merged, {"model": {"params": {"b": 2}}}, "t")
    assert merged["model"]["params"] == {"a": 1, "b": 2}


# ---------------------------------------------------------------------- banda-train
def run_train(*args):
    return subprocess.run([sys.executable, "-m", "banda.bin.train", *map(str, args)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)


def test_train_print_config_completes_model_params(tmp_path):
    cfg_file = write(tmp_path, "stems: [vocals, bass]\nmodel: {name: bandit, params: {dim: 16}}\ntrain: {max_epochs: 3}\n")
    proc = run_train("--config", cfg_file, "--print_config", "--optim.lr", "0.01", "--model.params.hidden=32")
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    params = cfg["model"]["params"]
    assert params["dim"] == 16 and params["hidden"] == 32  # YAML and CLI
    assert params["n_layers"] == 8 and params["bands"] == "v7" and params["mask_combine"] == "weighted"  # defaults
    assert "stems" not in params and "in_channels" not in params  # top-level keys stay top-level
    assert cfg["stems"] == ["vocals", "bass"] and cfg["train"]["max_epochs"] == 3
    assert cfg["optim"]["lr"] == 0.01 and cfg["train"]["keep_best"] == 3


@pytest.mark.parametrize("args,needle", [
    (["--model.params.dimm", "8"], "model.params.dimm"),
    (["--train.max_epoch", "8"], "train.max_epoch"),
    (["--loss", "[{name: l3}]"], "'l3'"),
    (["--optim.name", "adagrad"], "optim.name"),
    (["--optim.lr", "fast"], "'optim.lr' must be a number"),
    ([], "--exp_dir"),
])
def test_train_bad_config_exit_2_one_line(tmp_path, capsys, args, needle):
    """In-process, through the same entry point as the command (banda.bin.train.main)."""
    from banda.bin import train as train_cli

    cfg_file = write(tmp_path, "model: {name: bandit, params: {dim: 8}}\n")
    code = train_cli.main(["--config", str(cfg_file), *args])
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("banda-train: error:") and needle in lines[0]
    assert out == ""


def test_train_unknown_yaml_key_names_file(tmp_path):
    cfg_file = write(tmp_path, "data: {chunk_secs: 3}\n", "typo.yaml")
    proc = run_train("--config", cfg_file, "--print_config")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "'data.chunk_secs'" in proc.stderr and "typo.yaml" in proc.stderr


def test_train_config_round_trips_and_takes_its_options_from_yaml(tmp_path, capsys):
    """banda-train uses the one config mechanism of every entry point: what --print_config shows
    (its own options and the task's config) reads back through --config unchanged."""
    from banda.bin import train as train_cli

    def shown(*args):
        with pytest.raises(SystemExit) as done:
            train_cli.main(list(map(str, args)))
        assert done.value.code == 0
        return capsys.readouterr().out

    first = shown("--print_config", "--exp_dir", tmp_path / "exp", "--resume", "false", "--train.max_epochs", "2")
    cfg = yaml.safe_load(first)
    assert cfg["exp_dir"] == str(tmp_path / "exp") and cfg["resume"] is False and cfg["train"]["max_epochs"] == 2
    saved = write(tmp_path, first, "printed.yaml")
    assert shown("--config", saved, "--print_config") == first
    bad = write(tmp_path, "resume: maybe\n", "bad.yaml")
    assert train_cli.main(["--config", str(bad)]) == 2
    assert "'resume' must be true or false" in capsys.readouterr().err


def test_every_entry_point_uses_the_one_config_mechanism():
    import importlib
    import pkgutil

    import banda.bin

    for info in pkgutil.iter_modules(banda.bin.__path__):
        if info.name == "data_dir":  # the utils/*_data_dir.sh helper: positional arguments, no options to configure
            continue
        source = Path(importlib.import_module(f"banda.bin.{info.name}").__file__).read_text()
        assert "parse_args_with_config(" in source, info.name
        assert "parse_known_args" not in source and "resolve_train_config" not in source, info.name
