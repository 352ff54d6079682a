"""The query task (banda.tasks.query) through the one Trainer: audio and label Banquet models
train, validate per asked-for stem, resume, and refuse bad configs."""
import json

import numpy as np
import pytest
import torch

from banda.errors import ConfigError
from banda.models import load_model
from banda.train import Trainer, complete_config, resolve_train_config

from test_query_data import RATE, make_dir
from banda.query_data import write_query_offsets

TINY = json.dumps(dict(n_fft=256, hop_length=64, bands="musical", n_bands=8, dim=16, n_layers=2, hidden=16,
                       mask_hidden=32, query_dim=12,
                       query_encoder={"name": "melconv", "params": {"n_fft": 256, "hop_length": 128, "n_mels": 16,
                                                                    "channels": [4, 8]}}))
TINY_LABEL = json.dumps(dict(n_fft=256, hop_length=64, bands="musical", n_bands=8, dim=16, n_layers=2, hidden=16,
                             mask_hidden=32, query_dim=12, query="label", film="middle"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("query")
    (root / "tr").mkdir()
    (root / "va").mkdir()
    train, valid = make_dir(root / "tr"), make_dir(root / "va")
    write_query_offsets(train, seconds=1.0)
    return {"train": train, "valid": valid}


def config(data, model=TINY, *overrides):
    base = ["--task", "query", "--sample_rate", str(RATE), "--channels", "2", "--stems", '["bass", "drums", "vocals"]',
            "--model.params", model, "--data.train_dir", str(data["train"]), "--data.valid_dir", str(data["valid"]),
            "--data.chunk_seconds", "0.5", "--data.query_seconds", "1.0", "--data.valid_chunk_seconds", "0.5",
            "--data.items_per_epoch", "4", "--data.batch_size", "2", "--data.num_workers", "0",
            "--data.absent_prob", "0.25", "--train.max_epochs", "2", "--train.audio_examples", "1",
            "--train.log_every", "1"]
    return complete_config(resolve_train_config(None, base + list(overrides)))


@pytest.mark.parametrize("model", [TINY, TINY_LABEL], ids=["audio", "label"])
def test_trains_validates_and_archives(data, tmp_path, model):
    exp = tmp_path / "exp"
    Trainer(config(data, model), exp).fit()
    ckpt = torch.load(exp / "checkpoint.pth", weights_only=True)
    assert set(ckpt["models"]) == {"model"}
    assert (exp / "best.pth").is_file()  # chosen by validation SI-SDR
    net = load_model(exp / "averaged.pth")
    assert net.query == json.loads(model).get("query", "audio")
    if net.query == "label":
        assert net.labels == ["bass", "drums", "vocals"]
    mix = torch.randn(1, 2, RATE)
    query = torch.randn(1, 2, RATE) if net.query == "audio" else net.label_index(["drums"])
    assert net(mix, query).shape == (1, 1, 2, RATE)


def test_validation_metrics_per_stem(data):
    from banda.tasks import TASKS

    cfg = config(data)
    task = TASKS.get("query")(cfg, torch.device("cpu"))
    models = task.build_models()
    loader = torch.utils.data.DataLoader(task.valid_dataset(), batch_size=2)
    metrics, examples = task.validate(models, loader, lambda: torch.autocast("cpu", enabled=False))
    for stem in ("bass", "drums", "vocals"):
        assert np.isfinite(metrics[f"si_sdr/{stem}"]) and np.isfinite(metrics[f"si_sdri/{stem}"])
        assert metrics[f"collapsed/{stem}"] >= 0
    assert np.isfinite(metrics["si_sdr"]) and np.isfinite(metrics["loss"])
    assert len(examples) == 1 and examples[0][3] == "bass"


@pytest.mark.parametrize("args,match", [
    (["--model.params", json.dumps(dict(query="embedding"))], "'embedding' models cannot be trained"),
    (["--model.params", json.dumps(dict(query="label", labels=["bass", "drums"]))], "no label for the stem 'vocals'"),
    (["--data.absent_prob", "2"], "data.absent_prob must be a probability"),
    (["--data.bogus", "1"], "bogus"),
])
def test_config_errors(data, args, match):
    with pytest.raises(ConfigError, match=match):
        config(data, TINY, *args)


def test_query_class_loss(data, tmp_path):
    cfg = config(data, TINY, "--query_class_weight", "0.5")
    assert cfg["model"]["params"]["query_classes"] == 3
    exp = tmp_path / "exp"
    Trainer(cfg, exp).fit()
    net = load_model(exp / "averaged.pth")
    with torch.no_grad():
        est, logits = net(torch.randn(2, 2, RATE), torch.randn(2, 2, RATE), None, True)
    assert est.shape == (2, 1, 2, RATE) and logits.shape == (2, 3)
    with pytest.raises(ConfigError, match="only for audio queries"):
        config(data, TINY_LABEL, "--query_class_weight", "1")


def test_pretrained_query_encoder_from_a_local_file(data, tmp_path):
    from banda.errors import BandaError
    from banda.tasks import TASKS

    donor = TASKS.get("query")(config(data), torch.device("cpu"))
    donor.build_models()
    torch.manual_seed(7)
    for p in donor.model.query_encoder.parameters():
        torch.nn.init.normal_(p)
    torch.save(donor.model.query_encoder.state_dict(), tmp_path / "tagger.pt")
    cfg = config(data, TINY, "--query_encoder_init", str(tmp_path / "tagger.pt"),
                 "--model.params.freeze_query_encoder", "true")
    task = TASKS.get("query")(cfg, torch.device("cpu"))
    task.build_models()
    for (k, a), b in zip(task.model.query_encoder.state_dict().items(), donor.model.query_encoder.state_dict().values()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in task.model.query_encoder.parameters())
    bad = dict(donor.model.query_encoder.state_dict())
    bad.pop(next(iter(bad)))
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(BandaError, match="bad.pt: these weights do not fit"):
        TASKS.get("query")(config(data, TINY, "--query_encoder_init", str(tmp_path / "bad.pt")),
                           torch.device("cpu")).build_models()

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"weight": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(BandaError, match="refused"):
        TASKS.get("query")(config(data, TINY, "--query_encoder_init", str(tmp_path / "evil.pt")),
                           torch.device("cpu")).build_models()
