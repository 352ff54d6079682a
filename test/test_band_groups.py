"""The band split and mask decoders store their per-band parameters grouped (one tensor per band
width): checkpoints of the earlier per-band layout load, give the same outputs, and training
from the same seed gives the same weights (``test/data/band_checkpoints.pt``, written by
``test/data/make_band_checkpoints.py`` with the per-band code of commit 2a63e0e)."""
from pathlib import Path

import pytest
import torch

from banda.models import build_model, load_model

DATA = Path(__file__).parent / "data" / "band_checkpoints.pt"
FIXTURES = torch.load(DATA, weights_only=True)


def unflatten(stored):
    out, offset = {}, 0
    for key, shape in zip(stored["keys"], stored["shapes"]):
        n = int(torch.Size(shape).numel())
        out[key] = stored["flat"][offset:offset + n].reshape(shape).clone()
        offset += n
    return out


def per_band_state(model):
    """``model``'s state dict in the per-band layout (the inverse of the load-time conversion)."""
    state = {}
    for name, value in model.state_dict().items():
        if not name.startswith(("band_split.", "decoders.")):
            state[name] = value
    split = model.band_split
    for i in range(len(split.ranges)):
        p = split.band_params(i)
        for key, (m, n) in {"norm_weight": (0, "weight"), "norm_bias": (0, "bias"), "weight": (1, "weight"),
                            "bias": (1, "bias")}.items():
            state[f"band_split.layers.{i}.{m}.{n}"] = p[key]
    for stem, dec in model.decoders.items():
        for i in range(len(dec.ranges)):
            p = dec.band_params(i)
            for key, (m, n) in {"norm_weight": (0, "weight"), "norm_bias": (0, "bias"), "hidden_weight": (1, "weight"),
                                "hidden_bias": (1, "bias"), "out_weight": (3, "weight"), "out_bias": (3, "bias")}.items():
                state[f"decoders.{stem}.mlps.{i}.{m}.{n}"] = p[key]
    return state


def train_three_steps(model, fx):
    """The fixture's training (make_band_checkpoints.py): Adam 1e-2, L1, clipping at 5."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = (model(fx["mix"]) - fx["target"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
    return opt, losses


@pytest.mark.parametrize("key", sorted(FIXTURES))
def test_per_band_checkpoint_loads_with_same_output(key, tmp_path):
    fx = FIXTURES[key]
    archive = dict(fx["archive"], state_dict=unflatten(fx["archive"]["state_dict"]))
    assert any(".layers.0.1.weight" in k for k in archive["state_dict"])  # the old layout
    path = tmp_path / "old.pt"
    torch.save(archive, path)
    model = load_model(path)
    assert not any(".layers." in k or ".mlps." in k for k in model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(fx["mix"]), fx["output"], rtol=1e-5, atol=1e-6)
    # and back: the grouped parameters hold exactly the per-band ones
    back = per_band_state(model)
    assert set(back) == set(archive["state_dict"])
    for name, value in archive["state_dict"].items():
        assert torch.equal(back[name], value), name


@pytest.mark.parametrize("key", sorted(FIXTURES))
def test_same_seed_same_init_and_same_trained_weights(key):
    """Built from the same seed, the grouped model starts from the per-band model's weights and,
    trained three steps on the same data, ends at its weights."""
    fx = FIXTURES[key]
    params = fx["archive"]["model"]["params"]
    torch.manual_seed(0)
    model = build_model("bandit", params)
    init = unflatten(fx["archive"]["state_dict"])
    for name, value in per_band_state(model).items():
        assert torch.equal(value, init[name]), name
    opt, losses = train_three_steps(model, fx)
    torch.testing.assert_close(torch.tensor(losses), fx["losses"], rtol=1e-5, atol=1e-6)
    trained = unflatten(fx["trained"])
    for name, value in per_band_state(model).items():
        torch.testing.assert_close(value, trained[name], rtol=1e-4, atol=1e-5, msg=name)


def test_band_params_are_views_of_the_grouped_parameters():
    model = build_model("bandit", dict(stems=["a"], in_channels=2, dim=8, n_layers=1, hidden=8, mask_hidden=8,
                                       bands="v7"))
    with torch.no_grad():
        model.band_split.band_params(5)["bias"].fill_(3.0)
        model.decoders["a"].band_params(7)["out_bias"].fill_(-2.0)
    assert (model.band_split.band_params(5)["bias"] == 3.0).all()
    assert (model.decoders["a"].band_params(7)["out_bias"] == -2.0).all()
    n_tensors = sum(1 for _ in model.band_split.parameters())
    assert n_tensors == 4 * len(model.band_split.widths) < 4 * len(model.band_split.ranges)


@pytest.mark.parametrize("key", sorted(FIXTURES))
def test_per_band_adam_state_converts(key):
    """Adam's moments saved with a per-band model convert to the grouped layout: they equal those
    of the grouped model trained the same three steps (a run resumed across the change goes on)."""
    from banda.models import upgrade_optimizer_state

    fx = FIXTURES[key]
    params = fx["archive"]["model"]["params"]
    old_state = unflatten(fx["archive"]["state_dict"])
    moments = unflatten(fx["adam"])
    n_old = len({k.split(".")[0] for k in moments})
    saved = {"state": {i: {"step": torch.tensor(3.0), "exp_avg": moments[f"{i}.exp_avg"],
                           "exp_avg_sq": moments[f"{i}.exp_avg_sq"]} for i in range(n_old)},
             "param_groups": [{"lr": 1e-2, "params": list(range(n_old))}]}
    torch.manual_seed(0)
    model = build_model("bandit", params)
    converted = upgrade_optimizer_state(model, old_state, saved)
    opt, _ = train_three_steps(model, fx)
    ours = opt.state_dict()["state"]
    assert sorted(converted["state"]) == sorted(ours) and converted["param_groups"][0]["params"] == list(range(len(ours)))
    for i, name in enumerate(n for n, _ in model.named_parameters()):
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(converted["state"][i][moment], ours[i][moment], rtol=1e-3, atol=1e-6,
                                       msg=f"{name} {moment}")
    fresh = torch.optim.Adam(model.parameters(), lr=1e-2)
    fresh.load_state_dict(converted)  # fits the grouped model's optimizer
    # a grouped model's own optimizer state passes unchanged
    own = opt.state_dict()
    assert upgrade_optimizer_state(model, model.state_dict(), own) is own
