"""Device and mixed-precision choices, in one place for training and inference."""
from typing import Optional

import torch

from .errors import BandaError

#: ``--amp`` / ``train.amp`` names -> autocast dtypes (``off``: float32)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(want: Optional[str], option: str = "--device") -> torch.device:
    """``None``/``auto`` -> CUDA when available, else the CPU; ``cpu``, ``cuda`` or ``cuda:N``
    are checked (a device that is not there is a :class:`BandaError` naming ``option``)."""
    if want in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(want)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise BandaError(f"{option} {want!r}: not a device banda runs on (cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BandaError(f"{option} {want}: asked for, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BandaError(f"{option} {want}: there are {torch.cuda.device_count()} CUDA devices")
    return device


def auto_amp(device: torch.device) -> str:
    """The default mixed precision: bf16 on a CUDA device that supports it, else off."""
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of ``mode`` (``off``, ``bf16``, ``fp16``) on ``device``; None (float32)
    on the CPU, where banda runs in full precision."""
    if mode != "off" and mode not in AMP_DTYPES:
        raise BandaError(f"amp must be off, {' or '.join(AMP_DTYPES)}, not {mode!r}")
    return AMP_DTYPES.get(mode) if device.type == "cuda" else None
