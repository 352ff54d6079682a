"""Banquet (banda.models.banquet): FiLM and its placement, the three query kinds, several
queries in one pass, initialising from (and freezing) a fixed-stem Bandit."""
import pytest
import torch

from banda.errors import ConfigError
from banda.models import build_model
from banda.models.banquet import FiLM

SMALL = dict(in_channels=2, sample_rate=16000, n_fft=256, hop_length=64, bands="musical", n_bands=8, dim=16,
             n_layers=2, hidden=16, mask_hidden=32, query_dim=12)
ENCODER = {"name": "melconv", "params": {"n_fft": 256, "hop_length": 128, "n_mels": 16, "channels": [4, 8]}}


def banquet(**kw):
    torch.manual_seed(0)
    params = dict(SMALL, **kw)
    if params.get("query", "audio") == "audio":
        params.setdefault("query_encoder", ENCODER)
    return build_model("banquet", params).eval()


def test_film_is_groupnorm_then_affine_from_the_query():
    torch.manual_seed(1)
    film = FiLM(dim=8, query_dim=5, hidden=7, groups=2)
    x, q = torch.randn(3, 4, 6, 8), torch.randn(3, 5)
    h = x.reshape(3, 24, 2, 4)  # (batch, bands*frames, groups, dim per group)
    mean = h.mean(dim=(1, 3), keepdim=True)
    var = h.var(dim=(1, 3), unbiased=False, keepdim=True)
    norm = ((h - mean) / torch.sqrt(var + film.norm.eps)).reshape(3, 4, 6, 8) * film.norm.weight + film.norm.bias
    expected = film.gamma(q)[:, None, None] * norm + film.beta(q)[:, None, None]
    torch.testing.assert_close(film(x, q), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="film_groups"):
        FiLM(dim=8, query_dim=5, hidden=7, groups=3)


@pytest.mark.parametrize("place,order", [
    ("after", ["time0", "band0", "time1", "band1", "film", "decoder"]),
    ("middle", ["time0", "band0", "film", "time1", "band1", "decoder"]),
])
def test_film_placement(place, order):
    model = banquet(film=place)
    calls = []
    for i in range(2):
        model.tf_model.time_passes[i].register_forward_hook(lambda *a, i=i: calls.append(f"time{i}"))
        model.tf_model.band_passes[i].register_forward_hook(lambda *a, i=i: calls.append(f"band{i}"))
    model.film.register_forward_hook(lambda *a: calls.append("film"))
    model.decoder.register_forward_hook(lambda *a: calls.append("decoder"))
    model(torch.randn(1, 2, 4000), torch.randn(1, 2, 3000))
    assert calls == order


@pytest.mark.parametrize("place", ["after", "middle"])
@pytest.mark.parametrize("stereo", ["joint", "per_channel"])
def test_several_queries_in_one_pass_equal_one_by_one(place, stereo):
    model = banquet(film=place, stereo=stereo)
    mix, clips = torch.randn(2, 2, 5000), [torch.randn(2, 2, 4000), torch.randn(2, 1, 4000).expand(2, 2, 4000)]
    with torch.no_grad():
        many = model.separate_many(mix, [model.embed_query(c) for c in clips])
        single = [model(mix, c) for c in clips]
    assert many.shape == (2, 2, 2, 5000)
    for k, s in enumerate(single):
        torch.testing.assert_close(many[:, k:k + 1], s, rtol=1e-5, atol=1e-6)
    assert (single[0] - single[1]).abs().max() > 1e-4  # the query changes the estimate


def test_audio_and_embedding_queries():
    model = banquet()
    mix, clip = torch.randn(2, 2, 5000), torch.randn(2, 2, 4000)
    with torch.no_grad():
        emb = model.embed_query(clip)
        assert emb.shape == (2, 12)
        torch.testing.assert_close(model(mix, clip), model(mix, emb, "embedding"))
    with pytest.raises(ValueError, match="embedding query is"):
        model(mix, torch.randn(2, 5), "embedding")
    with pytest.raises(ValueError, match="not labels"):
        model(mix, torch.tensor([0, 1]), "label")
    plain = banquet(query="embedding")
    assert not hasattr(plain, "query_encoder")
    with pytest.raises(ValueError, match="not audio"):
        plain(mix, clip, "audio")
    assert plain(mix, emb).shape == (2, 1, 2, 5000)


def test_label_queries():
    model = banquet(query="label", labels=["bass", "drums", "vocals"])
    mix = torch.randn(2, 2, 5000)
    idx = model.label_index(["vocals", "bass"])
    assert idx.tolist() == [2, 0]
    with torch.no_grad():
        by_label = model(mix, idx)
        torch.testing.assert_close(by_label, model(mix, model.label_table.weight[[2, 0]], "embedding"))
        assert (by_label - model(mix, model.label_index(["drums", "drums"]))).abs().max() > 1e-4
    with pytest.raises(ValueError, match="unknown query label 'piano'.*bass, drums, vocals"):
        model.label_index(["piano"])
    with pytest.raises(ValueError, match="not audio"):
        model(mix, torch.randn(2, 2, 4000), "audio")


@pytest.mark.parametrize("kw,match", [
    (dict(film="before"), "film must be"),
    (dict(film="middle", n_layers=1), "n_layers >= 2"),
    (dict(query="text"), "query must be"),
    (dict(query="label"), "distinct class names"),
    (dict(query="label", labels=["a", "a"]), "distinct class names"),
    (dict(labels=["a"]), "only for query 'label'"),
    (dict(query="embedding", query_encoder=ENCODER), "only for query 'audio'"),
    (dict(query_encoder={"name": "melconv", "params": {"bogus": 1}}), "bogus"),
    (dict(query_encoder={"name": "passt"}), "passt"),
])
def test_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        banquet(**kw)


def test_initialised_from_a_bandit_and_frozen():
    """Banquet's "pre"/"prefz": a fixed-stem Bandit's band split and TF stack (same names), frozen on request."""
    core = {k: SMALL[k] for k in SMALL if k != "query_dim"}
    torch.manual_seed(3)
    bandit = build_model("bandit", dict(core, stems=["vocals", "other"]))
    model = banquet(freeze_core=True, freeze_query_encoder=True)
    missing, unexpected = model.load_state_dict(bandit.state_dict(), strict=False)
    assert not [k for k in missing if k.startswith(("band_split.", "tf_model."))]
    assert all(k.startswith("decoders.") for k in unexpected)
    for name, p in model.named_parameters():
        frozen = name.startswith(("band_split.", "tf_model.", "query_encoder."))
        assert p.requires_grad is not frozen, name
    torch.testing.assert_close(model.band_split.groups[0].proj.weight, bandit.band_split.groups[0].proj.weight)
    model.train()
    model(torch.randn(1, 2, 4000), torch.randn(1, 2, 3000)).square().mean().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    assert model.decoder.hidden.weight.grad is not None and model.film.gamma[0].weight.grad is not None


def test_melstats_encoder_tells_timbres_apart_and_film_starts_near_identity():
    model = banquet(query_encoder={"name": "melstats", "params": {"n_fft": 256, "hop_length": 128, "n_mels": 16,
                                                                   "hidden": 8}})
    t = torch.arange(8000) / 16000
    low = torch.sin(2 * torch.pi * 80 * t).expand(1, 2, -1)
    high = torch.sin(2 * torch.pi * 3000 * t).expand(1, 2, -1)
    with torch.no_grad():
        a, b = model.embed_query(low), model.embed_query(high)
        assert a.shape == (1, 12) and (a - b).abs().max() > 1e-3
        assert torch.allclose(model.embed_query(low.mean(1, keepdim=True).expand(1, 2, -1)), a)
    film = FiLM(dim=8, query_dim=5, hidden=7, groups=1)
    torch.nn.init.zeros_(film.gamma[-1].weight)
    torch.nn.init.zeros_(film.beta[-1].weight)
    torch.nn.init.zeros_(film.beta[-1].bias)
    x = torch.randn(2, 3, 4, 8)
    torch.testing.assert_close(film(x, torch.randn(2, 5)), film.norm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
