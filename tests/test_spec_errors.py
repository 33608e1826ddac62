"""Every bad spec gets one clear SpecError at file:line:col, and the CLI exits 2 without a traceback."""

import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resdsl.errors import SpecError
from resdsl.spec import load_network

from conftest import REPO, SPECS, assert_reported_at, assert_source_shown

GOOD = textwrap.dedent("""\
    param n = 2 in 1..50
    param shortcut = "A" in ["none", "A", "B", "C"]
    block basic(c, stride=1, shortcut="A") {
      conv(c, 3, stride=stride); bn; relu
      conv(c, 3); bn
      add(shortcut)
      relu
    }
    network tiny {
      input 3x32x32
      classes 10
      stem { conv(16, 3); bn; relu }
      stage s1: basic(16, shortcut=shortcut) x n
      stage s2: basic(32, shortcut=shortcut) x n stride 2
      head { avgpool; fc(classes) }
    }
    """)


def write(tmp_path, text, name="bad.net"):
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path, text, overrides=None) -> SpecError:
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_network(p, overrides)
    return info.value


def test_good_spec_checks(tmp_path):
    net = load_network(write(tmp_path, GOOD))
    assert net.output_shape == (10, 1, 1)
    assert [s.out_shape for s in net.stages] == [(16, 32, 32), (32, 16, 16)]


# (description, replace this, with that, expected line, expected col, words the message must hold)
CASES = [
    ("syntax", "stage s1: basic", "stage s1 basic", 13, 12, ["unexpected 'basic'", "expected ':'"]),
    ("unknown block", "stage s2: basic", "stage s2: basik", 14, 13, ["'basik' is not a known block",
                                                                   "did you mean 'basic'?"]),
    ("unknown primitive", "conv(c, 3); bn\n", "conv(c, 3); bm\n", 5, 15, ["unknown primitive or block 'bm'",
                                                                       "did you mean 'bn'?"]),
    ("unknown name", "x n stride 2", "x nn stride 2", 14, 44, ["unknown name 'nn'", "did you mean 'n'?"]),
    ("unknown keyword", "conv(c, 3, stride=stride)", "conv(c, 3, strid=stride)", 4, 14,
     ["'conv' has no parameter 'strid'", "did you mean 'stride'?"]),
    ("too many args", "conv(c, 3); bn\n", "conv(c, 3, 1, 1); bn\n", 5, 14, ["takes at most 2 positional"]),
    ("wrong type", "conv(16, 3); bn; relu }", "conv(16 / 2, 3); bn; relu }", 12, 15,
     ["must be an integer, got float 8.0", "use // for integer division"]),
    ("string as channels", "conv(16, 3); bn; relu }", "conv(\"16\", 3); bn; relu }", 12, 15,
     ["must be an integer, got string"]),
    ("missing arg", "stage s1: basic(16,", "stage s1: basic(", 13, 13, ["needs its 'c' argument"]),
    ("repeat < 1", "x n\n", "x 0\n", 13, 44, ["at least once, got x 0"]),
    ("mismatch at add", "add(shortcut)", "add", 6, 3,
     ["shapes differ: the block computes 32x16x16 from an input of 16x32x32"]),
    ("shrinks below 1x1", "bn; relu }", "bn; relu; maxpool(33) }", 12, 33,
     ["maxpool shrinks the 32x32 map below 1x1 (to 0x0)"]),
    ("unknown option", "add(shortcut)", "add(\"D\")", 6, 7, ["unknown shortcut option 'D'"]),
]


@pytest.mark.parametrize("what,old,new,line,col,words", CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_at_its_place(tmp_path, what, old, new, line, col, words):
    assert old in GOOD
    err = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert (err.pos.line, err.pos.col) == (line, col), str(err)
    assert_reported_at(err, tmp_path / "bad.net", GOOD.replace(old, new, 1), line, col, words)


def test_mismatch_names_both_shapes_with_a_branch(tmp_path):
    bad = GOOD.replace("add(shortcut)", "add { conv(c, 1); bn }")
    err = error_of(tmp_path, bad)
    assert "the block computes 32x16x16 but its shortcut branch gives 32x32x32" in str(err)


def test_overrides_are_checked_against_type_and_space(tmp_path):
    p = write(tmp_path, GOOD)
    with pytest.raises(SpecError, match=r"--n 2\.5: 'n' takes an integer"):
        load_network(p, {"n": "2.5"})
    with pytest.raises(SpecError, match=r"--n 51 is outside the declared space 1\.\.50 step 1"):
        load_network(p, {"n": "51"})
    with pytest.raises(SpecError, match=r'--shortcut "D" is outside the declared space \["none", "A", "B", "C"\]'):
        load_network(p, {"shortcut": "D"})
    with pytest.raises(SpecError, match="unknown parameter 'm'"):
        load_network(p, {"m": "3"})
    assert load_network(p, {"n": "3"}).params["n"] == 3


def test_default_outside_space_is_an_error(tmp_path):
    err = error_of(tmp_path, GOOD.replace("param n = 2 in 1..50", "param n = 0 in 1..50"))
    assert "the default 0 of 'n' is outside its space 1..50 step 1" in str(err)


def test_import_cycle(tmp_path):
    (tmp_path / "a.net").write_text('import "b"\n')
    (tmp_path / "b.net").write_text('import "a"\n')
    main = write(tmp_path, 'import "a"\n' + GOOD, "main.net")
    with pytest.raises(SpecError, match=r"import cycle: a\.net -> b\.net -> a\.net") as info:
        load_network(main)
    assert info.value.pos.path.endswith("b.net") and info.value.pos.line == 1


def test_missing_import(tmp_path):
    err = error_of(tmp_path, 'import "nowhere"\n' + GOOD)
    assert 'cannot import "nowhere"' in str(err) and err.pos.line == 1


def test_recursive_block(tmp_path):
    bad = GOOD.replace("relu\n}", "relu\n  basic(c)\n}", 1)
    err = error_of(tmp_path, bad)
    assert "block 'basic' calls itself (basic -> basic)" in str(err)


def test_error_inside_block_names_the_call_chain(tmp_path):
    err = error_of(tmp_path, GOOD.replace("conv(c, 3); bn\n", "conv(c, 3, pad=-1); bn\n"))
    assert "pad' must be >= 0" in str(err)
    assert "in block 'basic' called at" in str(err) and "in stage 's1'" in str(err)


def test_cli_reports_bad_spec_with_exit_2_and_no_traceback(tmp_path):
    p = write(tmp_path, GOOD.replace("stage s2: basic", "stage s2: basik"))
    r = subprocess.run([sys.executable, "-m", "resdsl", "build", str(p)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{p}:14:13: error: 'basik' is not a known block" in r.stderr
    assert "did you mean 'basic'?" in r.stderr


def test_cli_bad_override_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "resdsl", "build", str(SPECS / "cifar_6n2.net"), "--n", "abc"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--n abc: 'n' takes an integer" in r.stderr


def test_a_long_line_is_shown_around_the_column(tmp_path):
    """A generated spec with a 400-character line: the error shows 100 characters of it around
    the mistake, cut with an ellipsis on both sides, the caret under the mistake."""
    widths = [str(8 * i) for i in range(1, 100)]
    text = GOOD.replace("network", f"let widths = [{', '.join(widths[:60])}, oops, "
                                   f"{', '.join(widths[60:])}]\nnetwork", 1)
    (tmp_path / "long.net").write_text(text)
    with pytest.raises(SpecError) as e:
        load_network(str(tmp_path / "long.net"))
    lines = str(e.value).splitlines()
    line_no = text.splitlines().index(next(l for l in text.splitlines() if "oops" in l)) + 1
    col = text.splitlines()[line_no - 1].index("oops") + 1
    assert lines[0].startswith(f"{tmp_path / 'long.net'}:{line_no}:{col}: error: ")
    assert "oops" in lines[0]
    assert col > 300 and len(text.splitlines()[line_no - 1]) > 400
    assert all(len(l) < 120 for l in lines[1:])
    shown = lines[1].split(" | ", 1)[1]
    assert shown.startswith("…") and shown.endswith("…") and len(shown) == 102
    assert_source_shown(str(e.value), text.splitlines()[line_no - 1], col)
    caret = lines[2].index("^") - lines[2].index("|") - 2
    assert shown[caret:caret + 4] == "oops"


# ---- property: mutated specs give a checked network or a SpecError, never anything else ----
_TOKENS = ["(", ")", "{", "}", ",", ";", "=", "x", "stride", "add", "bn", "conv", "0", "-1", "1.5", '"A"',
           "n", "..", "in", "[", "]", "//", "/", "if", "else", "\n", "999999", "block", "stage", "import", "#",
           # the language after 2015 (docs/language.md)
           "for", "require", "save", "from", "mul", "cat", "first", "**", "%", "==", "!=", "range(",
           "len(", "zip(", "[i for i in range(3)]", "block_index", "in_channels", "stage s[i + 1]:"]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from([GOOD, (SPECS / "cifar_6n2.net").read_text().replace('import "prelude"', "")
                                 + (SPECS / "prelude.net").read_text(),
                                 *((SPECS / name).read_text() for name in
                                   ("regnet.net", "se_resnet50.net", "mobilenetv2.net"))]))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "replace"]))
        j = min(len(text), i + draw(st.integers(1, 8)))
        piece = draw(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=3)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[j:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_only_raise_spec_errors(text):
    try:
        load_network(text)
    except SpecError as e:
        assert str(e).strip()
