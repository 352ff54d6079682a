"""Writes ``band_checkpoints.pt``: small Bandit checkpoints in the per-band parameter layout of
commit 2a63e0e (``band_split.layers.<band>.*``, ``decoders.<stem>.mlps.<band>.*``), with each
model's output on a fixed input and its weights and Adam moments (``adam``: ``<index>.exp_avg``,
``<index>.exp_avg_sq`` in the optimizer's parameter order) after three training steps (each state dict
stored flat: ``keys``, ``shapes``, ``flat``), so that ``test/test_band_groups.py`` can check
that the grouped layout loads them and gives the same outputs and the same trained weights. Run from a checkout of that commit:

    PYTHONPATH=<checkout of 2a63e0e> python test/data/make_band_checkpoints.py test/data/band_checkpoints.pt
"""
import sys

import torch

from banda.models import build_model, make_archive, model_params

CONFIGS = {
    "v7_gru": dict(bands="v7", n_fft=256, hop_length=64, dim=8, tf_block="gru", n_layers=1, hidden=8, mask_hidden=8),
    "musical_transformer": dict(bands="musical", n_bands=12, n_fft=256, hop_length=64, dim=8, tf_block="transformer",
                                n_layers=1, heads=2, head_dim=4, mask_hidden=8, complex_mask=False),
}


def flat(state):
    """A state dict as one tensor and its keys and shapes (one file entry, not one per tensor)."""
    return {"keys": list(state), "shapes": [list(v.shape) for v in state.values()],
            "flat": torch.cat([v.detach().reshape(-1).float() for v in state.values()])}


def main(out):
    fixtures = {}
    for key, params in CONFIGS.items():
        full = model_params("bandit", params, ["a", "b"], 16000, 2)
        torch.manual_seed(0)
        model = build_model("bandit", full)
        archive = make_archive(model, "bandit", full)
        archive["state_dict"] = flat(archive["state_dict"])
        gen = torch.Generator().manual_seed(1)
        mix = torch.randn(1, 2, 1024, generator=gen)
        target = torch.randn(1, 2, 2, 1024, generator=gen)
        with torch.no_grad():
            output = model.eval()(mix)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(3):
            loss = (model(mix) - target).abs().mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
        optim = opt.state_dict()
        moments = {f"{i}.{name}": optim["state"][i][name] for i in optim["param_groups"][0]["params"]
                   for name in ("exp_avg", "exp_avg_sq")}
        fixtures[key] = {"archive": archive, "mix": mix, "target": target, "output": output,
                         "trained": flat(model.state_dict()), "adam": flat(moments),
                         "losses": torch.tensor(losses)}
    torch.save(fixtures, out)


if __name__ == "__main__":
    main(sys.argv[1])
