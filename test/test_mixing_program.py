"""banda.mixing.program: the instruction language (round trips through its canonical form, one
ProgramError naming the offending thing per mistake) and what a program does to stems (each
stem's chain in program order, unlabeled statements on every stem, mixdown)."""
import pytest
import torch

from banda.errors import BandaError
from banda.mixing import (Call, Program, ProgramError, Statement, ToolError, apply_program, get_tool, make_program,
                          mixdown, parse_program)

SR = 16000


def noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.3


# --------------------------------------------------------------------------- parsing, round trips
ROUND_TRIP = [
    "vocals: change_volume(db=-3.0) apply_eq(low_gain=2.0, mid_gain=-1.0, high_gain=1.5) apply_reverb()\n"
    "drums: apply_compressor(threshold_db=-18, ratio=3); bass: change_volume(db=2)",
    "change_volume(db=1e-2)",
    "change_volume(db=-3)",
    "apply_reverb()",
    "apply_reverb() apply_reverb(wet=0.5)",
    "  # only a comment\n vocals: apply_reverb() # a trailing comment\n\n; ;drums: change_pan(pan=-0.25);",
    "apply_eq(low_freq=1.5e2, mid_q=.5, high_freq=2E4, mid_freq=500.) change_volume(db=+6)",
    "vocals: change_volume(db=-3)\nchange_pan(pan=0.1)\nvocals: apply_reverb(decay_s=0.3)",
    "change_volume(db=0.1) change_pan(pan=0.3333333333333333) apply_compressor(attack_ms=0.1, ratio=20)",
    "vocals:",
    "vocals : change_volume ( db = 2 , ) ".replace(", )", ")"),
    "bass_2: change_volume(db=-60); lead.vox: change_volume(db=24)",
    "",
    ";;\n# nothing\n",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text):
    p = parse_program(text)
    s = str(p)
    assert parse_program(s) == p
    assert str(parse_program(s)) == s  # canonical
    assert "#" not in s and "\n" not in s


def test_parse_structure_and_canonical_form():
    p = parse_program("vocals: change_volume(db=-3) apply_reverb()  # wet\n"
                      "change_pan(pan=5e-1);drums:apply_eq(low_gain=2,mid_q=1);")
    assert p == Program((
        Statement("vocals", (Call("change_volume", (("db", -3.0),)), Call("apply_reverb"))),
        Statement(None, (Call("change_pan", (("pan", 0.5),)),)),
        Statement("drums", (Call("apply_eq", (("low_gain", 2.0), ("mid_q", 1.0))),)),
    ))
    assert str(p) == ("vocals: change_volume(db=-3.0) apply_reverb(); change_pan(pan=0.5); "
                      "drums: apply_eq(low_gain=2.0, mid_q=1.0)")
    assert p.stems == ["vocals", "drums"]
    assert [c.tool for c in p.chain("vocals")] == ["change_volume", "apply_reverb", "change_pan"]
    assert [c.tool for c in p.chain("drums")] == ["change_pan", "apply_eq"]
    assert [c.tool for c in p.chain(None)] == ["change_pan"]
    assert parse_program("change_volume(db=1e-2)").statements[0].calls[0].kwargs == {"db": 0.01}


def test_make_program_round_trip():
    p = make_program({
        "vocals": [("change_volume", {"db": -3}), ("apply_reverb", {}), ("change_pan", {"pan": 0.25})],
        "drums": [],
        "bass": [("apply_eq", {"low_gain": 2, "high_freq": 8000.0}), ("apply_compressor", {"ratio": 2.5})],
    })
    assert p.stems == ["vocals", "bass"]  # a stem with no calls is left out
    assert parse_program(str(p)) == p
    assert str(parse_program(str(p))) == str(p)
    assert p.chain("bass")[0].kwargs == {"low_gain": 2.0, "high_freq": 8000.0}


def test_make_program_checks_values():
    with pytest.raises(ProgramError) as e:
        make_program({"drums": [("change_volume", {"db": 99})]})
    for w in ("drums", "change_volume", "db", "[-60, 24]"):
        assert w in str(e.value)


# --------------------------------------------------------------------------- parse errors
PARSE_ERRORS = [
    ("vocals: compress(ratio=2)", ["unknown tool 'compress'", "vocals", "column 9"]),
    ("change_volume(gain=3)", ["change_volume", "unknown parameter 'gain'"]),
    ("change_volume(db=1, db=2)", ["change_volume", "parameter 'db' given twice"]),
    ("drums: change_volume(db=30)", ["drums", "change_volume", "db=30", "out of range", "[-60, 24]"]),
    ("apply_reverb(wet=-0.5)", ["apply_reverb", "wet", "[0, 1]"]),
    ("change_volume(db=1e999)", ["change_volume", "db", "not a finite number"]),
    ("change_volume(db=3", ["expected ')'", "change_volume", "found the end"]),
    ("change_volume(db=3 apply_reverb()", ["expected ')'", "change_volume", "'apply_reverb'"]),
    ("change_volume(db 3)", ["expected '='", "change_volume(db", "'3'"]),
    ("change_volume db=3)", ["expected '('", "change_volume"]),
    ("change_volume(db=loud)", ["change_volume(db=...)", "expected a number", "'loud'"]),
    ("change_volume(db=)", ["change_volume(db=...)", "expected a number"]),
    ("change_volume(db=$3)", ["column 18", "'$'"]),
    ("vocals: apply_reverb() $", ["column 24", "'$'"]),
    ("change_volume(3)", ["expected a parameter name", "change_volume"]),
    ("vocals: change_volume(db=3) )", ["column 29", "')'"]),
    ("change_volume(db=1) vocals: apply_reverb()", ["unknown tool 'vocals'"]),
]


@pytest.mark.parametrize("text, words", PARSE_ERRORS)
def test_parse_errors(text, words):
    with pytest.raises(ProgramError) as e:
        parse_program(text)
    msg = str(e.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "\n" not in msg  # one line


def test_parse_rejects_non_text():
    with pytest.raises(ProgramError, match="text"):
        parse_program(None)


# --------------------------------------------------------------------------- applying
def stems3():
    return {"vocals": noise(1, 4000, seed=1), "drums": noise(2, 4000, seed=2), "bass": noise(2, 4000, seed=3)}


def tool(name, audio, **params):
    return get_tool(name)(audio, SR, **params)


def test_apply_program_chains_in_program_order():
    program = parse_program(
        "change_volume(db=-6)\n"
        "vocals: apply_compressor(threshold_db=-30, ratio=4) change_pan(pan=0.5); drums: apply_eq(low_gain=3)\n"
        "vocals: apply_reverb(wet=0.2, decay_s=0.3)")
    stems = stems3()
    out = apply_program(program, stems, SR)
    assert set(out) == set(stems)
    v = tool("change_volume", stems["vocals"], db=-6)
    v = tool("apply_compressor", v, threshold_db=-30, ratio=4)
    v = tool("change_pan", v, pan=0.5)
    v = tool("apply_reverb", v, wet=0.2, decay_s=0.3)
    assert out["vocals"].shape == (2, 4000)
    assert torch.allclose(out["vocals"], v, rtol=1e-12, atol=1e-12)
    d = tool("apply_eq", tool("change_volume", stems["drums"], db=-6), low_gain=3)
    assert torch.allclose(out["drums"], d, rtol=1e-12, atol=1e-12)
    assert torch.allclose(out["bass"], tool("change_volume", stems["bass"], db=-6), rtol=1e-12, atol=0)
    # the order matters (the compressor does not commute with the volume): the check above can fail
    swapped = tool("change_volume", tool("apply_compressor", stems["vocals"], threshold_db=-30, ratio=4), db=-6)
    unswapped = tool("apply_compressor", tool("change_volume", stems["vocals"], db=-6), threshold_db=-30, ratio=4)
    assert not torch.allclose(swapped, unswapped, atol=1e-6)


def test_stems_without_calls_are_unchanged():
    stems = stems3()
    before = {k: v.clone() for k, v in stems.items()}
    out = apply_program(parse_program("vocals: change_volume(db=3)"), stems, SR)
    assert torch.equal(out["drums"], before["drums"]) and torch.equal(out["bass"], before["bass"])
    assert torch.allclose(out["vocals"], before["vocals"] * 10 ** (3 / 20), rtol=1e-12, atol=0)
    for k in stems:  # the inputs are not modified
        assert torch.equal(stems[k], before[k])
    out = apply_program(parse_program(""), stems, SR)
    assert all(torch.equal(out[k], before[k]) for k in stems)


def test_unlabeled_program_on_a_single_stem():
    x = noise(3, 2, 4000)  # with a batch dim
    out = apply_program(parse_program("apply_eq(mid_gain=-6) change_volume(db=2)"), x, SR)
    assert out.shape == x.shape
    want = tool("change_volume", tool("apply_eq", x, mid_gain=-6), db=2)
    assert torch.allclose(out, want, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, x, atol=1e-3)


def test_unknown_stem_names_it_and_the_available_ones():
    program = parse_program("vocals: change_volume(db=1); guitar: apply_reverb()")
    with pytest.raises(ProgramError) as e:
        apply_program(program, {"vocals": noise(2, 100), "drums": noise(2, 100)}, SR)
    msg = str(e.value)
    assert "unknown stem 'guitar'" in msg
    assert "vocals" in msg.split("guitar")[-1] and "drums" in msg


def test_labeled_program_on_a_single_tensor_raises():
    with pytest.raises(ProgramError) as e:
        apply_program(parse_program("vocals: change_volume(db=1); drums: apply_reverb()"), noise(2, 100), SR)
    assert "vocals, drums" in str(e.value) and "single stem" in str(e.value)


def test_apply_errors_name_the_stem():
    # the Nyquist check needs the sample rate, so it happens when the program is applied
    program = parse_program("drums: apply_eq(high_gain=3, high_freq=9000)")
    with pytest.raises(ProgramError) as e:
        apply_program(program, {"drums": noise(2, 100)}, SR)
    assert "drums" in str(e.value) and "high_freq" in str(e.value) and "Nyquist" in str(e.value)
    apply_program(program, {"drums": noise(2, 100)}, 44100)  # fine at 44.1 kHz
    with pytest.raises(ProgramError, match="bass.*change_pan"):
        apply_program(parse_program("bass: change_pan(pan=0.5)"), {"bass": noise(3, 100)}, SR)


# --------------------------------------------------------------------------- mixdown
def test_mixdown_sums_and_spreads_mono():
    stems = {"a": noise(1, 500, seed=1), "b": noise(2, 500, seed=2), "c": noise(2, 500, seed=3)}
    before = {k: v.clone() for k, v in stems.items()}
    mix = mixdown(stems)
    assert mix.shape == (2, 500)
    want = torch.cat([stems["a"], stems["a"]]) + stems["b"] + stems["c"]
    assert torch.allclose(mix, want, rtol=1e-12, atol=1e-15)
    for k in stems:
        assert torch.equal(stems[k], before[k])
    # a single stem: a copy, not the stem itself
    alone = mixdown({"b": stems["b"]})
    alone += 1
    assert torch.equal(stems["b"], before["b"])
    # batch dims
    batched = mixdown({"a": noise(4, 1, 100, seed=4), "b": noise(4, 2, 100, seed=5)})
    assert torch.allclose(batched, noise(4, 1, 100, seed=4) + noise(4, 2, 100, seed=5))


def test_mixdown_errors():
    with pytest.raises(ProgramError, match="no stems"):
        mixdown({})
    with pytest.raises(ProgramError, match="2 and 3"):
        mixdown({"a": noise(3, 100), "b": noise(2, 100)})


def test_full_pipeline_levels():
    # one stem 6 dB down, the other removed by -60 dB: the mix is (nearly) the first at half amplitude
    stems = {"vocals": noise(2, 4000, seed=1), "drums": noise(2, 4000, seed=2)}
    out = apply_program(parse_program("vocals: change_volume(db=-6.020599913279624); drums: change_volume(db=-60)"),
                        stems, SR)
    mix = mixdown(out)
    assert torch.allclose(mix, 0.5 * stems["vocals"] + 1e-3 * stems["drums"], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- error classes
def test_errors_are_banda_errors():
    assert issubclass(ProgramError, BandaError) and issubclass(ToolError, BandaError)
    for bad in (lambda: parse_program("nope()"), lambda: parse_program("change_volume(db=99)"),
                lambda: apply_program(parse_program("x: apply_reverb()"), noise(2, 10), SR),
                lambda: get_tool("nope"), lambda: get_tool("change_volume")(noise(2, 10), SR, db=99)):
        with pytest.raises(BandaError):
            bad()


def test_line_break_inside_a_call_is_whitespace():
    p = parse_program("vocals: apply_eq(low_gain=2,\n    mid_gain=-1)\ndrums: change_volume(db=1)")
    assert str(p) == "vocals: apply_eq(low_gain=2.0, mid_gain=-1.0); drums: change_volume(db=1.0)"
