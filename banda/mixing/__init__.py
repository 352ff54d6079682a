"""Mixing: tools acting on stems (:mod:`.tools`), an instruction language over them
(:mod:`.program`), and the learned mixer's data (:mod:`.data`) and use (:mod:`.automix`).

    from banda.mixing import parse_program, apply_program, mixdown
    program = parse_program("vocals: change_volume(db=-3) apply_reverb(wet=0.2); drums: apply_eq(low_gain=2)")
    mix = mixdown(apply_program(program, {"vocals": v, "drums": d}, 44100))
"""
from .program import Call, Program, ProgramError, Statement, apply_calls, apply_program, make_program, mixdown, parse_program  # noqa: F401
from .tools import TOOLS, Param, Tool, ToolError, check_call, get_tool, inverse_calls  # noqa: F401
