"""Tasks: what the one :class:`~banda.train.Trainer` trains.

A task owns everything that is particular to it: its config sections and their checks, its
batch (a dict), its models, its losses and which optimizer each loss steps, its validation
metrics and what it saves for inference. The Trainer owns the rest: devices, mixed
precision, optimizers, schedulers and grad scalers (one per name in :attr:`Task.optimizers`),
clipping and non-finite skipping per optimizer, checkpoints and resume, k-best averaging,
TensorBoard, tqdm and data parallelism. It knows nothing of stems or mixtures.

Adding a task: subclass :class:`Task`, register it with ``@TASKS.register("name")`` in a
module imported below, and select it with ``task: name`` in the training config;
``banda-train --task name --print_config`` shows its defaults.

The training step is a generator, so a task steps several optimizers in one batch in the
order it needs (a discriminator, then the generator against the updated discriminator)::

    def train_step(self, nets, batch, step):
        fake = nets["generator"](batch["audio"])
        if step % 2 == 0:   # the discriminator every second step
            yield "discriminator", d_loss(nets["discriminator"], fake.detach(), batch["audio"]), {}
        yield "generator", g_loss(nets["discriminator"], fake), {}

Each yielded ``(optimizer name, loss, {term: tensor})`` is back-propagated and stepped by the
trainer before the generator resumes.
"""
from .base import DEFAULT_TASK, TASKS, Task  # noqa: F401

from . import separation, enhancement, codec, query, mixer  # noqa: E402,F401  (registers the tasks)
