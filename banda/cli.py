"""Shared plumbing for the entry points in :mod:`banda.bin`: one error path for the whole CLI.

Every user-caused failure ends the same way: one line ``prog: error: ...`` on stderr and exit
code 2, no traceback (a :class:`~banda.errors.BandaError`, an argparse usage error, a full or
unwritable disk). SIGTERM (what ``timeout``, ``kill`` and ``scancel`` send) is handled like
Ctrl-C: the partial outputs are removed on the way out and the exit code is 143.
"""
import argparse
import errno
import logging
import signal
import sys
from typing import Callable, List, Optional

from .errors import BandaError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, force=True)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``prog: error: ...; see --help``) and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so every clean-up that Ctrl-C runs runs too."""


def _on_sigterm(signum, frame):
    raise Terminated()


# errno values of OSErrors that are the user's to fix (a full disk, a read-only or missing folder, ...)
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
               errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EFBIG}


def run_main(fn: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None, prog: str = "banda") -> int:
    """Run an entry point; a :class:`BandaError` (or an OSError such as a full disk) becomes
    one stderr line and exit code 2; SIGINT exits 130 and SIGTERM 143, after clean-up."""
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread)
        pass
    try:
        return fn(argv) or 0
    except BandaError as e:
        _flush_logs()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in USER_ERRNOS:
            raise
        _flush_logs()
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except (ValueError, OSError):  # a stream closed under us (e.g. a test's captured stderr)
            pass


def parse_args_with_config(parser, argv: Optional[List[str]] = None, tree: Optional[Callable[[dict], dict]] = None,
                           complete: Optional[Callable[[dict], dict]] = None):
    """The one config mechanism of every entry point: argparse plus ``--config x.yaml`` and
    ``--print_config``.

    Precedence: defaults < YAML < command line. A YAML key is an option's name (``bit-depth``
    or ``bit_depth``); an unknown key is a :class:`~banda.errors.ConfigError` naming it and the
    file. With ``--print_config`` the resolved options are printed as YAML (which ``--config``
    reads back) and the program exits 0.

    ``tree`` adds a nested config (banda-train's task config): a function from the raw nested
    values (YAML updated by the command line, e.g. to read ``task``) to their defaults. YAML keys
    that are no option, and command-line options ``--section.key value`` (values parsed as
    YAML), are merged strictly into those defaults (:func:`banda.config.merge_strict`), passed
    through ``complete`` and returned as ``args.cfg``.
    """
    from .config import dump_yaml, load_yaml, merge_strict, parse_overrides, to_plain
    from .errors import ConfigError

    parser.add_argument("--config", help="YAML file of option values (keys as in --print_config)")
    parser.add_argument("--print_config", action="store_true", help="print the resolved options as YAML and exit")
    pre = ArgumentParser(prog=parser.prog, add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    nested_yaml: dict = {}
    if known.config:
        dests = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "print_config")}
        for key, value in load_yaml(known.config).items():
            dest = str(key).replace("-", "_")
            if dest not in dests:
                if tree is not None:
                    nested_yaml[key] = value
                    continue
                raise ConfigError(f"{known.config}: unknown config key '{key}' (known: {', '.join(sorted(dests))})")
            parser.set_defaults(**{dest: _option_value(dests[dest], key, value, known.config)})
    if "--print_config" in (sys.argv[1:] if argv is None else argv):
        for action in parser._actions:  # show the options even before the required ones are given
            action.required = False
    if tree is None:
        args = parser.parse_args(argv)
    else:
        args, extra = parser.parse_known_args(argv)
        nested_cli = parse_overrides(extra)
        cfg = tree({**nested_yaml, **nested_cli})
        cfg = merge_strict(cfg, nested_yaml, str(known.config))
        cfg = to_plain(merge_strict(cfg, nested_cli, "command line"))
        args.cfg = complete(cfg) if complete else cfg
    if args.print_config:
        shown = {k: v for k, v in vars(args).items() if k not in ("config", "print_config", "cfg")}
        shown.update(getattr(args, "cfg", {}))
        sys.stdout.write(dump_yaml(shown))
        raise SystemExit(0)
    return args


def _option_value(action, key, value, source):
    """A YAML value for an argparse option, checked and converted as the command line would be."""
    from .errors import ConfigError

    if action.nargs in (None, "?") and isinstance(value, (list, dict)):
        raise ConfigError(f"{source}: '{key}' takes one value, got {value!r}")
    if action.nargs in ("*", "+") and isinstance(value, (str, int, float)):
        value = [value]
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or action.type is true_false:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
    elif value is not None:
        # as on the command line: each value goes through the option's type (text by default)
        convert = action.type or str
        try:
            value = [convert(v) for v in value] if isinstance(value, list) else convert(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            raise ConfigError(f"{source}: invalid value for '{key}': {value!r}") from None
    if action.choices is not None and value is not None and value not in action.choices:
        raise ConfigError(f"{source}: invalid value for '{key}': {value!r} "
                          f"(choose from {', '.join(map(str, action.choices))})")
    if action.required:
        action.required = False
    return value


def true_false(value: str) -> bool:
    """argparse type of a ``--flag true|false`` option (a YAML ``true``/``false`` for it in ``--config``)."""
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError("expected true or false")
    return value == "true"


# ------------------------------------------------------------------ options shared by entry points
def add_separator_options(p: argparse.ArgumentParser, note: str = "") -> None:
    """The options of a :class:`~banda.inference.Separator` (also used by banda-remix)."""
    p.add_argument("--model-config", type=str, default=None, metavar="YAML",
                   help=f"{note}-m is a community BS-/Mel-Band-RoFormer checkpoint (.ckpt) and this its "
                        "Music-Source-Separation-Training YAML config")
    p.add_argument("--segment", type=float, default=None,
                   help=f"{note}segment length in seconds (default: the model's own, e.g. an MSST config's "
                        "chunk_size, else 6)")
    p.add_argument("--overlap", type=float, default=None,
                   help=f"{note}overlap between segments, fraction in [0, 1) (default: the model's own, e.g. "
                        "1 - 1/num_overlap of an MSST config, else 0.25)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"{note}segments per forward pass (default: 8 on CUDA, 1 on CPU, where "
                        "larger batches only cost memory)")
    p.add_argument("-d", "--device", default=None, help=f"{note}cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"],
                   help=f"{note}mixed precision for the model on CUDA (default off; STFTs stay float32)")


def separator_from_args(args, queries=None):
    """A :class:`~banda.inference.Separator` for ``args.model`` from the options of
    :func:`add_separator_options` (checked before the model is loaded); ``queries``
    (:class:`~banda.inference.QuerySpecs`) for a query model."""
    from .inference import build_separator

    return build_separator(args.model, device=args.device, segment=args.segment, overlap=args.overlap,
                           batch_size=args.batch_size, amp=args.amp, progress=not args.no_progress, queries=queries,
                           model_config=args.model_config)
