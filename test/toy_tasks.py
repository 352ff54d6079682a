"""A tiny two-optimizer task for the trainer's tests: a 1-D generator against a small
discriminator (hinge losses), the discriminator stepped every ``data.d_every`` steps."""
import os
from pathlib import Path

import torch
from torch import nn

from banda.tasks import TASKS, Task


class ToyWaves(torch.utils.data.Dataset):
    """``{"noise": (1, length), "real": (1, length)}``: noise and a sine of random frequency and
    phase, drawn from (seed, epoch, index) only, never from the global RNG."""

    def __init__(self, items: int, length: int, seed: int):
        self.items, self.length, self.seed, self.epoch = items, length, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return self.items

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + i)
        t = torch.arange(self.length) / self.length
        f, phase = 2 + 6 * torch.rand(1, generator=g), 6.28 * torch.rand(1, generator=g)
        return {"noise": torch.randn(1, self.length, generator=g), "real": torch.sin(6.28 * f * t + phase)[None]}


@TASKS.register("toy_gan_test")
class ToyGan(Task):
    defaults = {"data": {"items_per_epoch": 16, "batch_size": 4, "length": 64, "d_every": 2}}
    optimizers = ("generator", "discriminator")
    main_model = "generator"

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        d = cfg["data"]
        self.batch_size, self.items_per_epoch, self.num_workers = d["batch_size"], d["items_per_epoch"], 0

    def build_models(self):
        generator = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.Tanh(), nn.Conv1d(8, 1, 5, padding=2))
        discriminator = nn.Sequential(nn.Conv1d(1, 8, 5, stride=2), nn.LeakyReLU(0.2), nn.Conv1d(8, 1, 3))
        return {"generator": generator, "discriminator": discriminator}

    def train_dataset(self):
        return ToyWaves(self.items_per_epoch, self.cfg["data"]["length"], self.cfg["train"]["seed"])

    def train_step(self, nets, batch, step, autocast):
        if os.environ.get("TOY_STEP_FILE"):  # lets a test kill the run mid-training
            step_file = Path(os.environ["TOY_STEP_FILE"])
            tmp = step_file.with_name(step_file.name + ".tmp")
            tmp.write_text(str(step))
            tmp.replace(step_file)  # atomic: a reader never sees the file empty
            if os.environ.get("TOY_STEP_SLEEP"):
                import time

                time.sleep(float(os.environ["TOY_STEP_SLEEP"]))
        noise, real = batch["noise"].to(self.device), batch["real"].to(self.device)
        fake = nets["generator"](noise)
        d = nets["discriminator"]
        if step % self.cfg["data"]["d_every"] == 0:
            d_loss = torch.relu(1 - d(real)).mean() + torch.relu(1 + d(fake.detach())).mean()
            yield "discriminator", d_loss, {"hinge": d_loss}
        g_adv = -d(fake).mean()
        g_l1 = (fake - real).abs().mean()
        yield "generator", g_adv + g_l1, {"adv": g_adv, "l1": g_l1}
