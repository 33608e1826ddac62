"""The expression language of issue 9: functions, lists, comprehensions, `**` and `require`.

Values are checked exactly (value and type), networks by their shapes and counts, and every
mistake by its file:line:col, caret, message and hint.
"""

import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_reported_at, run_cli
from resdsl.errors import ConstraintError, SpecError
from resdsl.spec import load_network
from resdsl.spec.analysis import summarize
from resdsl.spec.checker import check_network
from resdsl.spec.files import load_files
from resdsl.spec.limits import MAX_LIST_LENGTH, MAX_LIST_NESTING, MAX_LIST_WORK

NET = """network t {
  input 3x8x8
  classes 10
  stem { conv(4, 3); bn; relu }
  head { avgpool; fc(classes) }
}
"""


def value_of(expr: str, before: str = ""):
    """The value of `expr` as a let of a spec (after the lines in `before`)."""
    net = load_network(f"{before}\nlet value = {expr}\n{NET}")
    return net.lets["value"]


def error_of(text: str, overrides=None) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_network(text, overrides)
    return info.value


def reference_make_divisible(v, divisor=8, min_value=None):
    """The rule as MobileNetV2's reference code writes it (tensorflow/models, torchvision)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ---------------------------------------------------------------- values
VALUES = [
    # (expression, value, type)
    ("-2 ** 2", -4, int),
    ("2 ** -1", 0.5, float),
    ("2 ** 3 ** 2", 512, int),
    ("2 ** -1 ** 2", 0.5, float),  # 2 ** (-(1 ** 2))
    ("(-2) ** 3", -8, int),
    ("2.0 ** 10", 1024.0, float),
    ("2 * 3 ** 2 // 4", 4, int),
    ("min(3, 1.5, 2)", 1.5, float),
    ("max([4, 9, 2])", 9, int),
    ('max("a", "b")', "b", str),
    ("round(2.5)", 2, int),  # half to even
    ("round(3.5)", 4, int),
    ("round(-0.5)", 0, int),
    ("floor(-1.5)", -2, int),
    ("ceil(1.2)", 2, int),
    ("int(-2.7)", -2, int),
    ("int(7)", 7, int),
    ("float(3)", 3.0, float),
    ('str(3) + "x" + str(0.5) + str(true)', "3x0.5true", str),
    ('str([1, "a", [false]])', '[1, "a", [false]]', str),
    ("log(1)", 0.0, float),
    ("log(8, 2)", 3.0, float),
    ("log(1000, 10)", 3.0, float),  # exact, where log(1000) / log(10) is 2.9999999999999996
    ("log(81, base=3)", 4.0, float),
    ("exp(0)", 1.0, float),
    ("sqrt(16)", 4.0, float),
    ("abs(-3)", 3, int),
    ("abs(-2.5)", 2.5, float),
    ("pow(2, 10)", 1024, int),
    ("power(4, 0.5)", 2.0, float),
    ("len([1, 2, 3])", 3, int),
    ('len("abcd")', 4, int),
    ("sum([1, 2, 3.5])", 6.5, float),
    ("sum([])", 0, int),
    ("range(4)", (0, 1, 2, 3), tuple),
    ("range(2, 5)", (2, 3, 4), tuple),
    ("range(10, 0, -3)", (10, 7, 4, 1), tuple),
    ("range(0)", (), tuple),
    ("unique([3, 1, 3, 2, 1])", (3, 1, 2), tuple),
    ("count([1, 2, 1, 1], 1)", 3, int),
    ("make_divisible(37.5)", 40, int),
    ("make_divisible(10)", 16, int),  # 8 would be under 90% of 10
    ("make_divisible(3, min_value=4)", 4, int),
    ("make_divisible(30, divisor=4)", 32, int),
    ("[]", (), tuple),
    ("[1, 2,]", (1, 2), tuple),
    ("[1, 2] + [] + [3]", (1, 2, 3), tuple),
    ("[[1, 2], [3]][0][-1]", 2, int),
    ("[10, 20, 30][-3]", 10, int),
    ("[x * x for x in range(5)]", (0, 1, 4, 9, 16), tuple),
    ("[x for x in range(10) if x % 3 == 0]", (0, 3, 6, 9), tuple),
    ("2 in [1, 2]", True, bool),
    ("2 not in [1, 2]", False, bool),
    ("1.0 in [1]", True, bool),
    ('"b" in "abc"', True, bool),
    ("[1, 2] == [1, 2]", True, bool),
    ("[1, [2]] != [1, [3]]", True, bool),
    ("[x if x > 1 else -x for x in [0, 1, 2]]", (0, -1, 2), tuple),
]


@pytest.mark.parametrize("expr,value,kind", VALUES, ids=[v[0] for v in VALUES])
def test_expression_values(expr, value, kind):
    got = value_of(expr)
    assert got == value and isinstance(got, kind), (got, type(got))
    if kind is not bool:
        assert not isinstance(got, bool)


@pytest.mark.parametrize("v", [1, 3, 7.5, 10, 12, 16, 23.9, 24, 37.5, 96 * 0.75, 100, 1000, 0.5])
@pytest.mark.parametrize("divisor,min_value", [(8, None), (4, None), (16, 32), (3, 1)])
def test_make_divisible_is_the_mobilenet_rule(v, divisor, min_value):
    got = value_of(f"make_divisible({v}, divisor={divisor}"
                   + (f", min_value={min_value})" if min_value is not None else ")"))
    assert got == reference_make_divisible(v, divisor, min_value)


def test_names_in_comprehensions_are_their_own():
    before = "param x = 100\nlet xs = [1, 2]"
    assert value_of("[x + 1 for x in xs]", before) == (2, 3)
    assert value_of("x", before + "\nlet ys = [x for x in xs]") == 100
    # nested: the inner list sees the outer name
    assert value_of("[[i * 10 + j for j in range(i)] for i in range(3)]") == ((), (10,), (20, 21))


def test_zip_and_comprehensions_that_unpack_pairs():
    before = "let ws = [24, 56, 152]\nlet gs = [8, 16, 32]"
    assert value_of("zip(ws, gs)", before) == ((24, 8), (56, 16), (152, 32))
    assert value_of("zip(ws, [1])", before) == ((24, 1),)  # as long as the shortest list
    assert value_of("[w // g for w, g in zip(ws, gs)]", before) == (3, 3, 4)
    assert value_of("[a + b + c for a, b, c in [[1, 2, 3], [4, 5, 6]]]") == (6, 15)
    e = error_of(f"{before}\nlet bad = [w for w, g in ws]\n{NET}")
    assert (e.pos.line, e.pos.col) == (3, 26)  # at the list it unpacks
    assert e.message == "'for w, g in' unpacks each item into 2 values, got int 24"
    e = error_of(f"{before}\nlet bad = zip(ws, 3)\n{NET}")
    assert (e.pos.line, e.pos.col) == (3, 19)
    assert "needs a list, got int 3" in e.message


def test_lists_in_params_lets_and_block_arguments():
    spec = textwrap.dedent("""\
        param widths = [8, 16]
        let doubled = [2 * w for w in widths]
        block pair(cs, k=[3, 1]) {
          conv(cs[0], k[0]); bn; relu
          conv(cs[-1], k[1]); bn
        }
        network t {
          input 3x8x8
          classes 10
          stem { conv(widths[0], 3); bn; relu }
          stage s1: pair(doubled) x 1
          stage s2: pair([doubled[1], widths[1] + len(doubled)], k=[1, 1]) x 1
          head { avgpool; fc(classes) }
        }
        """)
    net = load_network(spec)
    assert net.params == {"widths": (8, 16)}
    assert net.lets["doubled"] == (16, 32)
    s1 = [(l.kind, l.attrs.get("out"), l.attrs.get("k")) for l in net.stages[0].blocks[0].layers()]
    s2 = [(l.kind, l.attrs.get("out"), l.attrs.get("k")) for l in net.stages[1].blocks[0].layers()]
    assert [x for x in s1 if x[0] == "conv"] == [("conv", 16, 3), ("conv", 32, 1)]
    assert [x for x in s2 if x[0] == "conv"] == [("conv", 32, 1), ("conv", 18, 1)]
    assert net.output_shape == (10, 1, 1)
    # stem 3*8*9 + 16, s1 8*16*9 + 32 + 16*32 + 64, s2 32*32 + 64 + 32*18 + 36, fc 18*10 + 10
    assert summarize(net).params == (216 + 16) + (1152 + 32 + 512 + 64) + (1024 + 64 + 576 + 36) + 190


def test_a_list_parameter_is_set_as_a_list():
    spec = "param widths = [8, 16]\n" + NET.replace("conv(4, 3)", "conv(widths[-1], 3)")
    assert load_network(spec, {"widths": "[4, 12]"}).stem.out_shape == (12, 8, 8)
    assert load_network(spec, {"widths": "4, 6"}).params["widths"] == (4, 6)
    assert load_network(spec, {"widths": [4, 10]}).stem.out_shape == (10, 8, 8)  # the Python API
    err = error_of(spec, {"widths": "[4, w]"})
    assert "--widths [4, w]: not a list of values (unknown name 'w')" in str(err)
    assert 'write the list as in a spec, e.g. --widths "[16, 32, 64]"' in str(err)
    assert "--widths: the item None is not a value" in str(error_of(spec, {"widths": [4, None]}))


def test_the_regnet_design_space_in_a_few_lines():
    """RegNetX-200MF (Radosavovic et al. 2020): per-block widths from (w_a, w_0, w_m, d), quantized,
    grouped into stages by unique and count; the same numbers as the paper's reference code, and
    torchvision's regnet_x_200mf parameter count. Checking it takes well under 50 ms."""
    net = load_network(REGNET)
    w_a, w_0, w_m, d, q = 36.44, 24, 2.49, 13, 8
    ks = np.round(np.log((np.arange(d) * w_a + w_0) / w_0) / np.log(w_m))
    ws = (np.round(w_0 * np.power(w_m, ks) / q).astype(int) * q)
    widths, depths = np.unique(ws, return_counts=True)
    assert net.lets["widths"] == tuple(widths) == (24, 56, 152, 368)
    assert net.lets["depths"] == tuple(depths) == (1, 1, 4, 7)
    assert [(s.count, s.out_shape) for s in net.stages] == [
        (1, (24, 56, 56)), (1, (56, 28, 28)), (4, (152, 14, 14)), (7, (368, 7, 7))]
    ns = summarize(net)
    assert ns.params == 2_684_792
    assert ns.flops == 199_039_872
    files, root = load_files(REGNET)
    best = min(_seconds(lambda: check_network(files, root, {})) for _ in range(5))
    assert best < 0.05, best
    # another point of the design space: 3 stages, refused by the spec's own require
    err = error_of(REGNET, {"d": "4"})
    assert isinstance(err, ConstraintError)
    assert err.message == "this net has 4 stages; w_a, w_0, w_m and d give 3"


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


REGNET = """\
param w_a = 36.44 in 8.0..256.0
param w_0 = 24 in 8..256 step 8
param w_m = 2.49 in 1.5..3.0
param d = 13 in 4..40
param group_w = 8 in [8, 16, 24]
param q = 8

let ks = [round(log((w_0 + w_a * j) / w_0, w_m)) for j in range(d)]
let block_widths = [round(w_0 * w_m ** k / q) * q for k in ks]
let widths = unique(block_widths)
let depths = [count(block_widths, w) for w in widths]
require len(widths) == 4, "this net has 4 stages; w_a, w_0, w_m and d give " + str(len(widths))

block x_block(c, stride=1, g=8) {
  require c % g == 0, "the group width " + str(g) + " must divide the width " + str(c)
  conv(c, 1); bn; relu
  conv(c, 3, stride=stride, groups=c // g); bn; relu
  conv(c, 1); bn
  add("B")
  relu
}

network regnetx {
  input 3x224x224
  classes 1000
  stem { conv(32, 3, stride=2); bn; relu }
  stage s1: x_block(widths[0], g=min(group_w, widths[0])) x depths[0] stride 2
  stage s2: x_block(widths[1], g=group_w) x depths[1] stride 2
  stage s3: x_block(widths[2], g=group_w) x depths[2] stride 2
  stage s4: x_block(widths[3], g=group_w) x depths[3] stride 2
  head { avgpool; fc(classes) }
}
"""


def test_a_param_default_needs_brackets_around_in():
    # `in` after a default starts the search space
    assert load_network("param b = (2 in [1, 2])\n" + NET).params["b"] is True
    net = load_network("param n = 2 in [x for x in range(1, 4)]\n" + NET.replace("conv(4, 3)", "conv(4 * n, 3)"))
    assert net.spaces["n"].choices == (1, 2, 3)
    err = error_of("param n = 2 in [1, 2.5]\n" + NET)
    assert "a choice of 'n' must be an integer, got float 2.5" in str(err) and err.pos.col == 20


def test_reads_in_a_comprehension_that_never_runs_still_count():
    """A parameter read only by the element of an empty comprehension is still one the network
    uses (another value of the list's length runs it), as in an 'if' branch not taken."""
    spec = ("param n = 0\nparam scale = 2\nlet extra = sum([scale * i for i in range(n)])\n"
            + NET.replace("conv(4, 3)", "conv(4 + extra, 3)"))
    assert load_network(spec, {"scale": "3"}).stem.out_shape == (4, 8, 8)
    assert load_network(spec, {"scale": "3", "n": "3"}).stem.out_shape == (13, 8, 8)
    # a parameter a require reads is used: setting it decides whether the design is admissible
    spec = "param max_width = 8\n" + NET.replace("stem", 'require 4 <= max_width, "too narrow"\n  stem')
    assert load_network(spec, {"max_width": "16"}).params["max_width"] == 16


# ---------------------------------------------------------------- mistakes
# (id, lines before the network (or the whole spec), line, col, words of the message and hint)
MISTAKES = [
    ("unknown function", "let a = mx(1, 2)", 1, 9, ["unknown function 'mx'", "did you mean 'max'?"]),
    ("function as a name", "let a = max", 1, 9, ["unknown name 'max'", "'max' is a function: call it"]),
    ("log of 0", "let a = log(0)", 1, 13, ["'log' needs a number > 0, got 0",
                                            "the logarithm of 0 or less is not defined"]),
    ("log base 1", "let a = log(8, 1)", 1, 16, ["'log' needs a base > 0 other than 1, got 1"]),
    ("sqrt of a negative", "let a = 2 + sqrt(-1)", 1, 18, ["'sqrt' needs a number >= 0, got -1",
                                                          "abs(x) is the magnitude of x"]),
    ("too many arguments", "let a = range(1, 2, 3, 4)", 1, 24,
     ["'range' takes at most 3 arguments, got 4",
      "usage: range(stop), range(start, stop) or range(start, stop, step)"]),
    ("exactly one argument", "let a = floor(2.5, 1)", 1, 20, ["'floor' takes 1 argument, got 2"]),
    ("too few arguments", "let a = count([1])", 1, 9, ["'count' needs its 'value' argument",
                                                        "usage: count(list, value)"]),
    ("no arguments", "let a = min()", 1, 9, ["'min' needs at least 1 argument"]),
    ("wrong type", 'let a = sqrt("4")', 1, 14, ['\'sqrt\' needs a number, got string "4"']),
    ("float for an int", "let a = range(2.0)", 1, 15, ["'range' needs an integer, got float 2.0",
                                                         "round(x), floor(x), ceil(x) or int(x) make an integer"]),
    ("unknown keyword", "let a = make_divisible(10, divisr=3)", 1, 28,
     ["'make_divisible' has no parameter 'divisr'", "did you mean 'divisor'?"]),
    ("keyword where none", "let a = sqrt(x=4)", 1, 14, ["'sqrt' takes no keyword arguments"]),
    ("empty min", "let a = min([])", 1, 13, ["'min' needs at least one value, got an empty list"]),
    ("mixed max", 'let a = max(1, "a")', 1, 16, ['\'max\' needs numbers or strings (not both), got string "a"']),
    ("step 0", "let a = range(0, 10, 0)", 1, 22, ["'range' needs a step other than 0"]),
    ("index out of range", "let xs = [1, 2, 3]\nlet a = xs[1] + xs[3]", 2, 20,
     ["index 3 is out of range for a list of 3 items", "indices run 0..2, or -3..-1 from the end"]),
    ("negative index out of range", "let a = [1][-2]", 1, 13, ["index -2 is out of range for a list of 1 items"]),
    ("index of an empty list", "let a = [][0]", 1, 12, ["index 0 is out of range for a list of 0 items",
                                                       "the list is empty"]),
    ("float index", "let a = [1, 2][2 / 2]", 1, 16, ["an index must be an integer, got float 1.0",
                                                     "use // for integer division"]),
    ("index of a number", "let a = 3[0]", 1, 11, ["only a list has items to index, not int 3"]),
    ("comprehension over a number", "let a = [x for x in 3]", 1, 21, ["'for x in' needs a list, got int 3",
                                                                     "range(n) is the list [0, 1, ..., n - 1]"]),
    ("comprehension condition", "let a = [x for x in [1] if x]", 1, 28,
     ["the condition of 'if' must be true or false, got int"]),
    ("in a number", "let a = 3 in 4", 1, 14,
     ["'in' needs a list on its right (or strings on both sides), got int 4"]),
    ("list plus number", "let a = [1] + 2", 1, 13,
     ["'+' needs two numbers, two strings or two lists, got list and int"]),
    ("compare lists", "let a = [1] < [2]", 1, 13, ["cannot compare list with list"]),
    ("list as channels", NET.replace("conv(4, 3)", "conv([4], 3)"), 4, 15,
     ["conv's 'out' must be an integer, got list [4]"]),
    ("power overflow", "let a = 3 * 2 ** 64", 1, 15, ["'**' gives an integer beyond the limit of 63 bits"]),
    ("huge power refused before it is computed", "let a = 2 ** 1000000000000", 1, 11,
     ["'**' gives an integer beyond the limit of 63 bits"]),
    ("float power overflow", "let a = 10.0 ** 400", 1, 14, ["'**' gives a number that is not finite"]),
    ("fractional power of a negative", "let a = (-8) ** 0.5", 1, 14,
     ["'**' of a negative number to a fractional power has no real value ((-8) ** 0.5)"]),
    ("zero to a negative power", "let a = pow(0, -1)", 1, 9, ["'pow' of 0 to a negative power divides by zero"]),
    ("exp overflow", "let a = exp(1000)", 1, 9, ["'exp' gives a number that is not finite"]),
    ("round past the int limit", "let a = round(1e300)", 1, 9, ["'round' gives an integer beyond the limit"]),
    ("list parameter with a space", "param ws = [1] in [[1]]", 1, 16,
     ["'ws' is a list: a list parameter has no search space", "let widths = [w, 2 * w]"]),
    ("empty choice", "param n = 1 in []", 1, 13, ["the search space of 'n' is an empty choice"]),
    ("long range", f"let a = range({MAX_LIST_LENGTH + 1})", 1, 9,
     [f"'range' gives a list of {MAX_LIST_LENGTH + 1} items, over the limit of {MAX_LIST_LENGTH}"]),
    ("long concatenation", f"let a = range({MAX_LIST_LENGTH}) + [1]", 1, 23,
     [f"'+' gives a list of {MAX_LIST_LENGTH + 1} items, over the limit of {MAX_LIST_LENGTH}"]),
    ("list work", "let a = [[x for x in range(100000)] for y in range(100)]", 1, 10,
     [f"the spec builds or walks more than {MAX_LIST_WORK:,} list items"]),
    ("nesting", "let a0 = [1]\n" + "".join(f"let a{i + 1} = [a{i}]\n" for i in range(MAX_LIST_NESTING)),
     MAX_LIST_NESTING + 1, len(f"let a{MAX_LIST_NESTING} = ") + 1,
     [f"the list gives lists nested more than {MAX_LIST_NESTING} deep"]),
    ("require condition", 'require 1, "m"', 1, 9, ["the condition of 'require' must be true or false, got int 1"]),
    ("require message", "require true, 3", 1, 15, ["the message of 'require' must be a string, got int 3",
                                                    'str(x) makes a string']),
]


@pytest.mark.parametrize("before,line,col,words", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_reported_at_its_place(tmp_path, before, line, col, words):
    text = before if "network" in before else before + "\n" + NET
    p = tmp_path / "bad.net"
    p.write_text(text)
    with pytest.raises(SpecError) as info:
        load_network(p)
    assert not isinstance(info.value, ConstraintError)
    assert_reported_at(info.value, p, text, line, col, words)


# ---------------------------------------------------------------- require
REQ = textwrap.dedent("""\
    import "limits"
    param width = 16 in [8, 16, 32, 64]
    param n = 1 in 1..3
    require width % 8 == 0, "width must be a multiple of 8"
    block plain(c, stride=1) {
      require c <= cap, "a block of " + str(c) + " channels is over the cap of " + str(cap)
      conv(c, 3, stride=stride); bn; relu
    }
    network t {
      input 3x16x16
      classes 10
      require classes <= 100, "at most 100 classes"
      stem { conv(width, 3); bn; relu }
      stage s1: plain(width) x n
      stage s2: plain(2 * width) x n stride 2
      head { avgpool; fc(classes) }
    }
    """)
LIMITS = 'param cap = 64\nrequire cap >= 16, "the cap is under 16"\n'


@pytest.fixture
def req_spec(tmp_path):
    (tmp_path / "limits.net").write_text(LIMITS)
    p = tmp_path / "req.net"
    p.write_text(REQ)
    return p


def constraint_of(path, overrides) -> ConstraintError:
    with pytest.raises(ConstraintError) as info:
        load_network(path, overrides)
    return info.value


def test_requires_hold_for_an_admissible_design(req_spec):
    net = load_network(req_spec, {"width": "32", "n": "2"})
    assert [s.out_shape for s in net.stages] == [(32, 16, 16), (64, 8, 8)]


def test_a_top_level_require_that_fails(req_spec):
    err = constraint_of(req_spec, {"cap": "8"})  # the import's require comes first
    assert err.message == "the cap is under 16"
    assert (err.pos.path, err.pos.line, err.pos.col) == (str(req_spec.parent / "limits.net"), 2, 1)
    req_spec.write_text(REQ.replace("param width = 16 in [8, 16, 32, 64]", "param width = 12"))
    err = constraint_of(req_spec, {})
    assert err.message == "width must be a multiple of 8" and (err.pos.line, err.pos.col) == (4, 1)
    assert constraint_of(req_spec, {"cap": "8"}).message == "the cap is under 16"  # imports first


def test_a_block_require_is_checked_for_each_call_with_its_names(req_spec):
    # width 64: stage s1's blocks have 64 channels (at the cap), s2's 128
    err = constraint_of(req_spec, {"width": "64", "n": "2"})
    assert err.message == "a block of 128 channels is over the cap of 64"
    text = str(err)
    assert text.startswith(f"{req_spec}:6:3: error: a block of 128 channels is over the cap of 64\n"
                           "    6 |   require c <= cap,")
    assert text.splitlines()[2] == "      |   ^"
    assert f"in block 'plain' called at {req_spec}:15:13" in text and "in stage 's2'" in text


def test_a_network_require(req_spec):
    req_spec.write_text(REQ.replace("classes 10", "classes 1000"))
    err = constraint_of(req_spec, {})
    assert err.message == "at most 100 classes" and (err.pos.line, err.pos.col) == (12, 3)


def test_requires_need_not_hold_when_asked(req_spec):
    """A sweep plans from designs whose requires it does not enforce (requires=False)."""
    net = load_network(req_spec, {"width": "64", "n": "2"}, requires=False)
    assert net.stages[1].out_shape == (128, 8, 8)
    req_spec.write_text(REQ.replace("c <= cap", "c"))
    with pytest.raises(SpecError, match="the condition of 'require' must be true or false, got int 16"):
        load_network(req_spec, requires=False)


def test_cli_build_reports_a_failed_require_with_exit_2(req_spec, capsys):
    code, _, err = run_cli(["build", req_spec, "--width", "64", "--n", "2"], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{req_spec}:6:3: error: a block of 128 channels is over the cap of 64\n"
                          "    6 |   require c <= cap,"), err




# ---------------------------------------------------------------- hostile and mutated text
_TOKENS = ["(", ")", "[", "]", ",", "**", "for", "in", "not", "if", "else", "require", "range(", "max(",
           "unique(", "log(", "0", "-1", "1.5", '"m"', "xs", "x", "+", "//", "10**18", "\n", "[[", "]]"]
MUTATE = textwrap.dedent("""\
    param n = 2 in [1, 2, 3]
    param widths = [8, 16]
    let xs = [widths[0] * 2 ** i for i in range(n)]
    let ys = unique([make_divisible(x * 1.5) for x in xs if x not in [0]])
    require len(ys) >= 1, "at least one width, got " + str(ys)
    block b(c, ks=[3]) { require c > 0, "c"; conv(c, ks[-1]); bn; relu }
    network t {
      input 3x8x8
      classes 10
      stem { conv(max(ys), 3); bn; relu }
      stage s: b(widths[0], ks=[1, int(log(8, 2))]) x n
      head { avgpool; fc(classes) }
    }
    """)


@st.composite
def mutated(draw):
    text = MUTATE
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(1, 8)))
        piece = draw(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=3)))
        text = {"delete": text[:i] + text[j:], "insert": text[:i] + piece + text[i:],
                "replace": text[:i] + piece + text[j:]}[draw(st.sampled_from(["delete", "insert", "replace"]))]
    return text


def test_the_mutation_base_checks():
    net = load_network(MUTATE)
    assert net.lets["ys"] == (16, 24) and net.stem.out_shape == (24, 8, 8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_expressions_only_raise_spec_errors(text):
    try:
        load_network(text)
    except SpecError as e:
        assert str(e).strip()
