"""The :class:`Task` interface and the task registry (see :mod:`banda.tasks`)."""
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from ..registry import Registry

TASKS = Registry("task")
DEFAULT_TASK = "separation"  #: the task of a config without ``task``


class Task:
    """Base class of a task; see the module docstring.

    Args:
        cfg: the completed config (:meth:`complete_config` has run).
        device: where the trainer runs the models.
    """

    #: the task's config sections with their defaults (beside the trainer's ``optim``,
    #: ``scheduler`` and ``train``; a ``train`` or ``optim`` entry here overrides the trainer's default)
    defaults: Dict[str, Any] = {}
    #: optimizer names; a task with the single name ``model`` uses plain ``optim`` and
    #: ``scheduler`` sections, others one sub-section per name (``optim.generator.lr``)
    optimizers: Tuple[str, ...] = ("model",)
    #: validation metrics that ``train.best_metric`` may name, and which way is better
    best_metrics: Dict[str, str] = {"loss": "min"}
    #: dotted config keys (of the task's sections) that may change when a run is resumed
    resume_safe_keys: Tuple[str, ...] = ()
    #: the model that ``--init_param`` initialises and that archives hold
    main_model: str = "model"

    def __init__(self, cfg: Dict[str, Any], device: torch.device):
        self.cfg = cfg
        self.device = device

    @classmethod
    def complete_config(cls, cfg: Dict[str, Any]) -> Dict[str, Any]:
        """Check the task's sections (a :class:`~banda.errors.ConfigError` naming the key) and
        complete them (e.g. a model's params with its defaults); returns the config."""
        return cfg

    # --------------------------------------------------------------- data
    batch_size: int = 1        #: global batch size (all processes together)
    items_per_epoch: int = 1   #: training items per epoch
    num_workers: int = 0       #: data loader worker processes

    def check_data(self) -> None:
        """Check the training data before the first step (files there, readable, long enough)."""

    def train_dataset(self) -> torch.utils.data.Dataset:
        """Map-style dataset of training items (dicts of tensors); ``set_epoch(epoch)`` is
        called before each epoch when it has one."""
        raise NotImplementedError

    def valid_dataset(self) -> Optional[torch.utils.data.Dataset]:
        """Validation items, or None for no validation."""
        return None

    # --------------------------------------------------------------- models and training
    def build_models(self) -> Dict[str, torch.nn.Module]:
        """The task's models by name (the trainer moves them to the device)."""
        raise NotImplementedError

    def parameters(self, optimizer: str, models: Dict[str, torch.nn.Module]):
        """The parameters that optimizer ``optimizer`` steps (default: the model of that name)."""
        return models[optimizer].parameters()

    def find_unused_parameters(self, name: str, model: torch.nn.Module) -> bool:
        """Whether model ``name`` leaves parameters without gradient in some steps (data parallelism must know)."""
        return False

    def model_spec(self) -> Dict[str, Any]:
        """What must match for a checkpoint to be resumed (the models' names and params)."""
        return {}

    def loss_scale(self, optimizer: str) -> float:
        """The factor by which the trainer scales optimizer ``optimizer``'s loss before its
        backward pass (the fp16 grad scaler's scale; 1.0 without one). A task that takes
        gradients itself (``torch.autograd.grad``) under fp16 scales its losses by it too, so
        that small gradients do not underflow. The trainer sets it after building the models."""
        return 1.0

    def state_dict(self) -> Dict[str, Any]:
        """The task's own training state (e.g. running statistics of its losses), saved in the
        checkpoint beside the models and optimizers and restored on resume."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def train_step(self, nets: Dict[str, torch.nn.Module], batch: Dict[str, torch.Tensor], step: int,
                   autocast) -> Iterator[Tuple[str, torch.Tensor, Dict[str, torch.Tensor]]]:
        """Yield ``(optimizer, loss, terms)`` for each optimizer to step on this batch, in order.

        ``nets`` are the models as the trainer runs them (wrapped for data parallelism or
        compiled); ``autocast()`` is the trainer's mixed-precision context.
        """
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, models: Dict[str, torch.nn.Module], loader, autocast) -> Tuple[Dict[str, float], List[Any]]:
        """Validation metrics (including ``loss``) and a few examples for :meth:`log_examples`."""
        raise NotImplementedError

    def log_examples(self, writer, examples: List[Any], epoch: int) -> None:
        """Write validation examples (audio, images) to TensorBoard."""

    def archive(self, models: Dict[str, torch.nn.Module], **meta) -> Optional[Dict[str, Any]]:
        """The self-describing archive of the model used at inference (None: no archives)."""
        return None
