"""Mixing programs: a small instruction language over the tools of :mod:`banda.mixing.tools`.

::

    vocals: change_volume(db=-3.0) apply_eq(low_gain=2.0, mid_gain=-1.0, high_gain=1.5) apply_reverb()
    drums: apply_compressor(threshold_db=-18, ratio=3); bass: change_volume(db=2)

Grammar (whitespace is free, and so are line breaks inside a call's parentheses; ``#`` starts a
comment to the end of the line)::

    program   := statement ((";" | newline) statement)*
    statement := [stem ":"] call*              (an empty statement is allowed)
    call      := tool "(" [param "=" number ("," param "=" number)*] ")"

A statement with a stem label applies its calls, left to right, to that stem; one without a
label applies to every stem (and is the program of a single stem). A stem's chain is every
statement that applies to it, in program order. Numbers are decimal (``-3``, ``2.5``,
``1e-2``). Parameters left out take the tool's default.

:func:`parse_program` checks everything it can without audio: the syntax, the tools, their
parameters (no repeats) and every value's range. :func:`apply_program` checks the stem labels
against the stems given. Each mistake is one :class:`ProgramError` naming the place (column, and line in a longer text), the
stem, the tool and the parameter. ``str(program)`` prints the canonical form, and
``parse_program(str(p)) == p`` (values printed with ``repr``, which round-trips floats).
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from .tools import TOOLS, ToolError, check_call, get_tool
from ..errors import BandaError


class ProgramError(BandaError):
    """A program that does not parse, names an unknown tool, parameter or stem, or a value out of range."""


@dataclass(frozen=True)
class Call:
    """One tool call: ``tool(name=value, ...)``, parameters in the order given."""
    tool: str
    params: Tuple[Tuple[str, float], ...] = ()

    @property
    def kwargs(self) -> Dict[str, float]:
        return dict(self.params)

    def __str__(self) -> str:
        return f"{self.tool}({', '.join(f'{k}={_number(v)}' for k, v in self.params)})"


@dataclass(frozen=True)
class Statement:
    stem: Optional[str]
    calls: Tuple[Call, ...]

    def __str__(self) -> str:
        body = " ".join(str(c) for c in self.calls)
        return f"{self.stem}: {body}".rstrip() if self.stem is not None else body


@dataclass(frozen=True)
class Program:
    statements: Tuple[Statement, ...] = ()

    def __str__(self) -> str:
        return "; ".join(str(s) for s in self.statements)

    @property
    def stems(self) -> List[str]:
        """The stem labels, in order of first appearance."""
        return list(dict.fromkeys(s.stem for s in self.statements if s.stem is not None))

    def chain(self, stem: Optional[str]) -> List[Call]:
        """The calls that apply to ``stem`` (None: the unlabeled ones only), in program order."""
        return [c for s in self.statements if s.stem is None or s.stem == stem for c in s.calls]

    def check_stems(self, available: Sequence[str], where: str = "") -> None:
        """A :class:`ProgramError` for a stem label that is not one of ``available``."""
        for stem in self.stems:
            if stem not in available:
                raise ProgramError(f"{where}program: unknown stem {stem!r} (stems: {', '.join(available) or 'none'})")


def _number(v: float) -> str:
    return repr(float(v))


_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+|\#[^\n]*)
  | (?P<sep>[;\n])
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
  | (?P<punct>[():,=])
""", re.VERBOSE)


def _position(text: str, pos: int) -> str:
    """``column C`` of a one-line program, ``line L, column C`` of a longer one (1-based)."""
    if "\n" not in text:
        return f"column {pos + 1}"
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _tokens(text: str) -> List[Tuple[str, str, str]]:
    out, pos, depth = [], 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ProgramError(f"program: {_position(text, pos)}: unexpected {text[pos]!r}")
        kind = m.lastgroup
        if m.group() in "()":
            depth = max(0, depth + (1 if m.group() == "(" else -1))
        if kind == "sep" and m.group() == "\n" and depth:
            kind = "space"  # a line break inside a call's parentheses is whitespace
        if kind != "space":
            out.append((kind, m.group(), _position(text, pos)))
        pos = m.end()
    out.append(("end", "", _position(text, len(text))))
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0) -> Tuple[str, str, str]:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> Tuple[str, str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, value: str, after: str) -> None:
        kind, text, col = self.take()
        if text != value or kind not in ("punct",):
            found = "the end" if kind == "end" else ("a line break" if text == "\n" else repr(text))
            raise ProgramError(f"program: {col}: expected {value!r} {after}, found {found}")

    def program(self) -> Program:
        statements = []
        while True:
            st = self.statement()
            if st is not None:
                statements.append(st)
            kind, text, col = self.take()
            if kind == "end":
                return Program(tuple(statements))
            if kind != "sep":
                raise ProgramError(f"program: {col}: expected a tool call, ';' or the end, found {text!r}")

    def statement(self) -> Optional[Statement]:
        stem = None
        if self.peek()[0] == "name" and self.peek(1)[1] == ":":
            stem = self.take()[1]
            self.take()
        calls = []
        while self.peek()[0] == "name":
            calls.append(self.call(stem))
        if stem is None and not calls:
            return None
        return Statement(stem, tuple(calls))

    def call(self, stem: Optional[str]) -> Call:
        _, tool, col = self.take()
        where = f"program: {col}: " + (f"{stem}: " if stem else "")
        if tool not in TOOLS:
            raise ProgramError(f"{where}unknown tool {tool!r} (tools: {', '.join(TOOLS)})")
        self.expect("(", f"after {tool!r}")
        params: List[Tuple[str, float]] = []
        if self.peek()[1] != ")":
            while True:
                kind, name, pcol = self.take()
                if kind != "name":
                    raise ProgramError(f"program: {pcol}: expected a parameter name in {tool}(...), found {name!r}")
                self.expect("=", f"after {tool}({name}")
                kind, value, vcol = self.take()
                if kind != "number":
                    raise ProgramError(f"program: {vcol}: {tool}({name}=...): expected a number, found {value!r}")
                if name in dict(params):
                    raise ProgramError(f"{where}{tool}: parameter {name!r} given twice")
                params.append((name, float(value)))
                if self.peek()[1] != ",":
                    break
                self.take()
        self.expect(")", f"to close {tool}(")
        try:
            check_call(tool, dict(params))
        except ToolError as e:
            raise ProgramError(f"{where}{e}") from None
        return Call(tool, tuple(params))


def parse_program(text: str) -> Program:
    """Parse and check a program (see the module doc); a :class:`ProgramError` on any mistake."""
    if not isinstance(text, str):
        raise ProgramError(f"program: expected text, not {type(text).__name__}")
    return _Parser(text).program()


def make_program(chains: Mapping[str, Sequence[Tuple[str, Mapping[str, float]]]]) -> Program:
    """``{stem: [(tool, params), ...]}`` -> a checked :class:`Program` (a stem with no calls is left out)."""
    statements = []
    for stem, calls in chains.items():
        built = []
        for tool, params in calls:
            try:
                check_call(tool, dict(params))
            except ToolError as e:
                raise ProgramError(f"{stem}: {e}") from None
            built.append(Call(tool, tuple((k, float(v)) for k, v in params.items())))
        if built:
            statements.append(Statement(stem, tuple(built)))
    return Program(tuple(statements))


def apply_calls(audio: torch.Tensor, sample_rate: int, calls: Sequence[Call], stem: Optional[str] = None) -> torch.Tensor:
    """``calls`` applied in order to ``audio (..., channels, time)``."""
    for call in calls:
        try:
            audio = get_tool(call.tool)(audio, sample_rate, **call.kwargs)
        except ToolError as e:
            raise ProgramError(f"{stem + ': ' if stem else ''}{e}") from None
    return audio


def apply_program(program: Program, stems: Union[torch.Tensor, Mapping[str, torch.Tensor]], sample_rate: int,
                  where: str = "") -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
    """Apply ``program`` to one stem ``(..., channels, time)`` (only unlabeled statements then)
    or to ``{stem: audio}`` (each stem its chain; stems without calls pass unchanged)."""
    if isinstance(stems, torch.Tensor):
        if program.stems:
            raise ProgramError(f"{where}program: names stems ({', '.join(program.stems)}) but is applied to a single stem")
        return apply_calls(stems, sample_rate, program.chain(None))
    program.check_stems(list(stems), where)
    return {name: apply_calls(audio, sample_rate, program.chain(name), name) for name, audio in stems.items()}


def mixdown(stems: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The sum of stems ``(..., channels, time)``; mono stems are spread over stereo ones."""
    items = list(stems.values())
    if not items:
        raise ProgramError("mixdown: no stems")
    channels = max(a.shape[-2] for a in items)
    total = None
    for a in items:
        if a.shape[-2] != channels:
            if a.shape[-2] != 1:
                raise ProgramError(f"mixdown: stems of {a.shape[-2]} and {channels} channels")
            a = a.expand(*a.shape[:-2], channels, a.shape[-1])
        total = a.clone() if total is None else total + a
    return total
