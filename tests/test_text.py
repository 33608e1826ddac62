"""The shared small rules: counts, typed values from strings, choices, the Pareto front; and that
the spec layer, the sweep grid and the report filters read values by the one rule."""

import math

import pytest

import resdsl
from resdsl.errors import SpecError, SweepError
from resdsl.pareto import pareto_front
from resdsl.sweep.space import build_space
from resdsl.text import choose, format_count, parse_value

from conftest import SPECS


def test_format_count():
    assert [format_count(n) for n in (269_722, 40_551_306, 1_727_962, 252_900_000, 3_857_973_248)] == [
        "270K", "40.6M", "1.73M", "253M", "3.86G"]
    assert format_count(999_700_000) == "1000M"        # not 1e+03M
    assert format_count(512) == "512" and format_count(0) == "0"
    assert format_count(3_857_973_248, decimals=3) == "3.858 G"  # Table 1's style
    assert format_count(40_551_306, decimals=3) == "40.551 M"
    assert format_count(None) == "" and format_count(math.nan) == ""


def test_parse_value_one_rule():
    assert [parse_value(t, bool) for t in ("true", "Yes", "on", "1", "false", "NO", "off", "0")] == [
        True, True, True, True, False, False, False, False]
    assert [parse_value(t, int) for t in ("18", " 18 ", "18.0", "1e3", "-2")] == [18, 18, 18, 1000, -2]
    assert parse_value("0.1", float) == 0.1 and parse_value("1e-4", float) == 1e-4
    assert [parse_value(t, str) for t in ('"A"', "'B'", " none ", '"')] == ["A", "B", "none", '"']
    assert parse_value(3, float) == 3.0 and isinstance(parse_value(3, float), float)
    for raw, ptype, words in (("2.5", int, "whole number"), ("abc", int, "whole number"),
                              ("nan", float, "finite"), ("inf", float, "finite"),
                              ("x", float, "not a number"), ("maybe", bool, "true or false"),
                              (True, int, "whole number"), (2.0, int, "whole number")):
        with pytest.raises(ValueError, match=words):
            parse_value(raw, ptype)


def test_spec_overrides_and_sweep_grid_read_values_alike():
    spec = SPECS / "cifar_6n2.net"
    net = resdsl.load_network(spec, {"n": "2.0", "shortcut": "'B'"})
    assert net.params["n"] == 2 and net.params["shortcut"] == "B"
    with pytest.raises(SpecError, match=r"--n 2\.5: 'n' takes an integer"):
        resdsl.load_network(spec, {"n": "2.5"})
    space = build_space(net, ["n=1,2.0,3e0", "shortcut='A',\"B\""], {}, "grid", 1)
    assert space.grid() == {"n": [1, 2, 3], "shortcut": ["A", "B"]}
    with pytest.raises(SweepError, match=r"--grid n: '2\.5' is not a whole number"):
        build_space(net, ["n=1,2.5"], {}, "grid", 1)


def test_choose():
    assert choose("--sampler", "tpe", ("grid", "tpe", "random"), SweepError) == "tpe"
    with pytest.raises(SweepError) as e:
        choose("--sampler", "tpx", ("grid", "tpe", "random"), SweepError)
    assert str(e.value) == "--sampler 'tpx': choose one of grid, tpe, random (did you mean 'tpe'?)"
    with pytest.raises(ValueError, match=r"^unknown thing 'zzzz': choose one of a, b$"):
        choose("unknown thing", "zzzz", ("a", "b"), ValueError)


def test_pareto_front():
    # (error, flops): 1 and 3 beat everything else in one coordinate and lose in none
    pts = [(0.30, 40e6), (0.25, 80e6), (0.31, 80e6), (0.20, 160e6), (0.25, 90e6)]
    assert pareto_front(pts) == [3, 1, 0]                 # ordered by error, then flops
    # equal points are on the front together; a NaN point is on no front and beats nothing
    assert pareto_front([(1, 2), (1, 2), (2, 1), (math.nan, 0), (3, 3)]) == [0, 1, 2]
    # three objectives
    assert pareto_front([(1, 1, 9), (1, 1, 8), (0, 5, 9), (2, 2, 9)]) == [2, 1]
    assert pareto_front([]) == []
