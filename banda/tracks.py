"""The inputs and outputs of the separation commands, resolved and checked before any work.

:func:`collect_inputs` turns files, folders, globs and scp files into ``(track, path)`` pairs;
:func:`output_paths` turns tracks and stems into output files from a ``--filename`` pattern.
Every output lies strictly inside the output folder, is never an input, and no two share a
path; track names are never empty, ``.`` or ``..``.
"""
import glob
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .audio import AUDIO_EXTENSIONS
from .errors import BandaError


def check_track_name(track: str, where) -> str:
    """A track name becomes a folder or file name: not empty, not ``.``/``..``, no separators."""
    if not track or track.strip() in ("", ".", "..") or any(c in track for c in "/\\\0"):
        raise BandaError(f"{where}: track name {track!r} cannot name an output (empty, '.', '..' or with a path separator)")
    return track


def collect_inputs(inputs: List[str], scp: Optional[str], out: Optional[Path] = None) -> List[Tuple[str, Path]]:
    """``(track, path)`` pairs from files, folders, globs or an scp file; duplicate track names are errors.

    A track is named after its file, or after its folder when the file is called ``mixture``.
    Files inside the output folder ``out`` are skipped when a folder is searched (the
    outputs of an earlier run are not inputs).
    """
    pairs: List[Tuple[str, Path]] = []
    out_resolved = Path(out).resolve() if out is not None else None
    if scp:
        from .datadir import read_scp

        pairs.extend((check_track_name(k, f"{scp}: id"), Path(v)) for k, v in read_scp(scp).items())
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if out_resolved is not None:
                files = [f for f in files if out_resolved not in f.resolve().parents]
            if not files:
                raise BandaError(f"{path}: folder contains no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            mixtures = [f for f in files if f.stem == "mixture"]
            if mixtures:  # MUSDB-style track folders: the stems beside a mixture are references, not inputs
                files = mixtures
        elif path.is_file():
            files = [path]
        else:
            files = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not files:
                raise BandaError(f"{item}: no such file, folder or matching glob")
        for f in files:
            track = f.resolve().parent.name if f.stem == "mixture" else f.stem
            pairs.append((check_track_name(track, f), f))
    if not pairs:
        raise BandaError("no inputs: give audio files, folders or globs, or --scp")
    seen: Dict[str, Path] = {}
    for track, f in pairs:
        if track in seen:
            raise BandaError(f"{f}: track name {track!r} also used by {seen[track]}; separate them in two calls or rename")
        seen[track] = f
    return pairs


def output_paths(pairs: List[Tuple[str, Path]], stems: List[str], out: Path, pattern: str, ext: str) -> List[Dict[str, Path]]:
    """Per track, stem -> output path from ``--filename``, all checked before any work: every
    path lies inside ``out``, is no input, and no two outputs share a path."""
    from .fileio import check_output_dir, output_under

    check_output_dir(out, "-o")
    inputs = [p for _, p in pairs]
    result: List[Dict[str, Path]] = []
    seen: Dict[Path, str] = {}
    for track, _ in pairs:
        outputs = {}
        for stem in stems:
            try:
                name = pattern.format(track=track, stem=stem, ext=ext)
            except (KeyError, IndexError, ValueError, AttributeError) as e:
                raise BandaError(f"--filename {pattern!r}: invalid pattern ({type(e).__name__}: {e}); "
                                 "use the fields {track}, {stem} and {ext}") from None
            path = output_under(out, name, inputs, what=f"--filename {pattern!r} ({track}/{stem})")
            if path in seen:
                raise BandaError(f"--filename {pattern!r}: {track}/{stem} and {seen[path]} would both be written to {path}")
            seen[path] = f"{track}/{stem}"
            outputs[stem] = path
        result.append(outputs)
    return result
