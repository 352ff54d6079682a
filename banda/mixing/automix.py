"""The learned mixer at work on a song's stems: the library behind ``banda-automix``.

The model listens to the stems in windows of its training chunk length
(``data.segment_seconds`` of its training config, 3 s if unknown), one hop per window; its
outputs (tool logits and parameter values) are averaged over the windows where some stem is
above -60 dBFS, and the average becomes one program for the whole song
(:func:`banda.models.mixer.chains_from_outputs`: values rounded to 0.1, kept in range), which
``banda-remix``'s program path applies to the stem files at their own rate.
"""
import logging
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from tqdm import tqdm

from ..errors import BandaError
from .program import Program, make_program

SILENT_DB = -60.0


@torch.no_grad()
def predict_program(model, stems: Dict[str, np.ndarray], window_seconds: float, tag: Optional[str] = None,
                    threshold: float = 0.5, device: Optional[torch.device] = None, progress: bool = False) -> Program:
    """``{stem: (channels, time)}`` at the model's rate and channel count (every stem of the
    model) -> the program (module doc)."""
    from ..models.mixer import chains_from_outputs

    device = device or torch.device("cpu")
    audio = torch.stack([torch.from_numpy(np.ascontiguousarray(stems[s], dtype=np.float32)) for s in model.stems])
    n = audio.shape[-1]
    win = max(1, int(round(window_seconds * model.sample_rate)))
    starts = list(range(0, max(1, n - win + 1), win))
    if n > win and starts[-1] + win < n:
        starts.append(n - win)  # the last window ends with the song
    row = torch.tensor([model.tag_index(tag)], device=device)
    logits, values, used = 0.0, 0.0, 0
    for start in tqdm(starts, desc="listening", unit="window", disable=not progress, dynamic_ncols=True):
        chunk = audio[..., start:start + win]
        if chunk.shape[-1] < win:
            chunk = torch.nn.functional.pad(chunk, (0, win - chunk.shape[-1]))
        level = 10 * torch.log10(chunk.double().pow(2).mean() + 1e-20)
        if level < SILENT_DB and (used or start != starts[-1]):
            continue
        lo, va = model(chunk[None].to(device), row)
        logits, values, used = logits + lo[0].float().cpu(), values + va[0].float().cpu(), used + 1
    chains = chains_from_outputs(model.stems, model.tools, logits / used, values / used, threshold)
    return make_program(chains)


def automix_program(model_path, files: Dict[str, Path], tag: Optional[str] = None, threshold: float = 0.5,
                    device: Optional[str] = None, progress: bool = True) -> Program:
    """Load the mixer, read the stem files its stems name (resampled to its rate) and predict
    the program. A stem of the model that is not among ``files`` is silence to it (as a stem a
    track lacks was in training: MedleyDB songs without a piano); none of them is an error."""
    from ..audio import read_audio
    from ..device import resolve_device
    from .repair import load_mixer

    model, cfg, path = load_mixer(model_path)
    if not any(s in files for s in model.stems):
        raise BandaError(f"{path}: the mixer listens to {', '.join(model.stems)}; none of them is among the stem "
                         f"files ({', '.join(files)})")
    if tag is not None:
        model.tag_index(tag)
    dev = resolve_device(device)
    model.to(dev).eval()
    stems = {s: read_audio(files[s], sample_rate=model.sample_rate, channels=model.in_channels)[0]
             for s in model.stems if s in files}
    length = next(iter(stems.values())).shape[1]
    missing = [s for s in model.stems if s not in stems]
    if missing:
        logging.getLogger("banda.automix").info("no file for %s: silence to the mixer", ", ".join(missing))
    for s in missing:
        stems[s] = np.zeros((model.in_channels, length), dtype=np.float32)
    window = float((cfg.get("data") or {}).get("segment_seconds") or 3.0)
    program = predict_program(model, stems, window, tag, threshold, dev, progress)
    return Program(tuple(st for st in program.statements if st.stem in files))  # nothing for a stem not there
