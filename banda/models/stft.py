"""STFT / iSTFT in float32, safe under autocast: the one place banda calls ``torch.stft``."""
import torch
from torch import nn


class STFT(nn.Module):
    """Complex STFT of ``(..., time)`` -> ``(..., freq, frames)`` and its inverse.

    Always runs in float32 with autocast disabled: half-precision FFTs lose the
    small bins that masks multiply.
    """

    def __init__(self, n_fft: int = 2048, hop_length: int = 512, win_length: int = None, center: bool = True):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length or n_fft
        self.center = center
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        shape = audio.shape
        with torch.autocast(device_type=audio.device.type, enabled=False):
            spec = torch.stft(
                audio.reshape(-1, shape[-1]).float(),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=self.center,
                return_complex=True,
            )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        shape = spec.shape
        with torch.autocast(device_type=spec.device.type, enabled=False):
            audio = torch.istft(
                spec.reshape(-1, *shape[-2:]).to(torch.complex64),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=self.center,
                length=length,
            )
        return audio.reshape(*shape[:-2], audio.shape[-1])


def stft(audio: torch.Tensor, n_fft: int, hop_length: int, center: bool = True) -> torch.Tensor:
    """Complex STFT with a Hann window, ``(..., time)`` -> ``(..., freq, frames)``, as :class:`STFT`
    computes it (float32, autocast off); for losses and logging, which have no module to hold it."""
    return STFT(n_fft, hop_length, center=center).to(audio.device)(audio)
