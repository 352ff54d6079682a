"""banda-automix: a learned mixer listens to a song's stems, prints the mixing program it
predicts, applies it and writes the mix.

    banda-automix -m exp/mix/model_pack.pth --stems-dir separated/song -o song_mix.wav
    banda-automix -m exp/mix --stems-dir "musdb/test/Some Track" --print-only
    banda-automix -m exp/mix --stems-dir stems/ --mix stems/mixture.wav --complement mixture -o fixed.wav

``--stems-dir DIR`` holds one ``<stem>.<ext>`` per stem (a ``mixture``/``mix`` file there is not
a stem); a stem of the mixer that is not there is silence to it (as a stem a song lacked was in
training), and stems the mixer does not know pass unchanged. The
program (printed on stdout, in the language of ``banda-remix --program``) is applied to the
stem files at their own rate, and the new mix written as ``banda-remix`` writes one: ``sum``
(default) rebuilds the mix from the processed stems, ``mixture`` (with ``--mix``) adds the
program's change to the given mixture; ``--clip`` keeps it inside [-1, 1]. ``--print-only``
prints the program and writes nothing (then ``-o`` is not needed); save it with
``> song.mix`` and apply or edit it later with ``banda-remix --program-file``.

Bad input is one line ``banda-automix: error: ...`` and exit code 2, with nothing written.
"""
import argparse
import logging
import math
import sys
from pathlib import Path
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..errors import BandaError

PROG = "banda-automix"
log = logging.getLogger("banda.automix")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", required=True, type=str, help="a learned mixer: experiment directory or archive (.pth)")
    p.add_argument("--stems-dir", required=True, type=str, help="folder of stem files <stem>.wav")
    p.add_argument("--mix", type=str, help="the mixture the stems came from (for --complement mixture)")
    p.add_argument("-o", "--out", type=str, help="output file (.wav, .flac or .mp3); not with --print-only")
    p.add_argument("--print-only", action="store_true", help="print the program and write nothing")
    p.add_argument("--tag", type=str, help="a text tag the mixer was trained with (e.g. brighter)")
    p.add_argument("--threshold", type=float, default=0.5, help="presence probability above which a tool is used (default 0.5)")
    p.add_argument("--complement", choices=["mixture", "sum"], help="sum (default without --mix) or mixture")
    p.add_argument("--clip", default="rescale", choices=["rescale", "limit", "none"],
                   help="keep the mix inside [-1, 1]: rescale (default), limit (soft clip) or none")
    p.add_argument("--bit-depth", type=int, default=16, choices=[16, 24, 32], help="16/24-bit integer or 32-bit float (wav)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]]) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from ..remix import check_stem_files, find_stem_files, program_files_job, write_remix

    if args.print_only and args.out:
        raise BandaError("--print-only writes nothing; leave out -o")
    if not args.print_only and not args.out:
        raise BandaError("give -o OUT (the new mix), or --print-only")
    if not 0 < args.threshold < 1:
        raise BandaError(f"--threshold must be in (0, 1), not {args.threshold}")
    out = Path(args.out) if args.out else None
    fmt = out.suffix.lstrip(".").lower() if out else "wav"
    if out is not None and fmt != "wav" and args.bit_depth == 32:
        raise BandaError(f"--bit-depth 32 (float) is only available for wav, not {fmt or 'no extension'}")
    mix = Path(args.mix) if args.mix else None
    files, found_mix = find_stem_files(Path(args.stems_dir))
    check_stem_files(files, mix)
    if out is not None:  # the output checked before the model runs
        from ..audio import check_output_format
        from ..fileio import check_output_file

        check_output_file(out, inputs=[*files.values(), mix, found_mix, args.model, args.config], option="-o")
        check_output_format(out, fmt, args.bit_depth, check_stem_files(files, mix)[0])
        if (args.complement or ("mixture" if mix else "sum")) == "mixture" and mix is None:
            raise BandaError("--complement mixture needs the mixture: give --mix FILE (or use --complement sum)")
    setup_logging()
    from ..mixing.automix import automix_program

    program = automix_program(args.model, files, tag=args.tag, threshold=args.threshold, device=args.device,
                              progress=not args.no_progress)
    print(program if program.statements else "# no change", flush=True)
    if args.print_only:
        return 0
    job = program_files_job(Path(args.stems_dir), mix, out, fmt, args.bit_depth, program, args.complement,
                            extra_inputs=[args.model, args.config], files=files, found_mix=found_mix)
    report = write_remix(job, out, fmt, args.bit_depth, args.clip)
    for note in job.notes:
        log.info("%s", note)
    log.info("%s: complement %s", out, job.complement)
    if report.scale != 1.0:
        log.info("--clip rescale: peak %.3f scaled to %.3f (%.2f dB)", report.peak, report.peak * report.scale,
                 20 * math.log10(report.scale))
    if report.limited:
        log.info("--clip limit: %d samples softly limited (peak was %.3f)", report.limited, report.peak)
    if report.over:
        log.warning("--clip none: %d samples are outside [-1, 1] (peak %.3f)", report.over, report.peak)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
