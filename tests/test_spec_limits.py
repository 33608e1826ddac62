"""Hostile specs meet documented limits with one clear SpecError (exit 2, file:line:col, caret,
no traceback); specs as long or deep as real ones still build. Also: what may be read as a spec,
what an import may name, and parameters the network never reads."""

import os
import subprocess
import sys
import time

import pytest

from resdsl.spec.analysis import summarize
from resdsl.errors import SpecError
from resdsl.spec import load_network
from resdsl.spec.limits import MAX_NESTING, MAX_SPEC_BYTES, MAX_STRING_CHARS, MAX_SYNTAX_DEPTH

from conftest import REPO, SPECS, assert_source_shown, run_cli

NET = """network t {
  input 3x8x8
  classes 10
  stem { conv(WIDTH, 3); bn; relu }
  head { avgpool; fc(classes) }
}
"""


def net_with(width: str, before: str = "") -> str:
    return before + NET.replace("WIDTH", width)


def assert_spec_error(code, err, path, line, col, words):
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith(f"{path}:{line}:{col}: error: "), err[:300]
    for w in words:
        assert w in err, err[:300]
    assert_source_shown(err, path.read_text().splitlines()[line - 1], col)


# ---- limits: (id, spec text, line, col, words naming the limit) ----
SQUARES = "let a0 = 3\n" + "".join(f"let a{i + 1} = a{i} * a{i}\n" for i in range(40))
DOUBLES = 'let s0 = "ab"\n' + "".join(f"let s{i + 1} = s{i} + s{i}\n" for i in range(40))
LIMIT_CASES = [
    ("5000-digit literal", net_with("9" * 5000), 4, 15, ["the literal 99999", "(5000 characters)",
                                                        "beyond the limit of 63 bits"]),
    ("huge // then /", net_with("9" * 30 + " // 1 / 2"), 4, 15, ["beyond the limit of 63 bits"]),
    # 3**(2**k) passes 2**63 at the 6th squaring: a6 = a5 * a5 on line 7, '*' at column 13.
    ("squaring lets", SQUARES + net_with("3"), 7, 13, ["'*' gives an integer beyond the limit of 63 bits"]),
    # "ab" doubled 11 times is 4096 characters; the 12th doubling (line 13) passes the limit.
    ("doubling strings", DOUBLES + net_with("3"), 13, 15,
     [f"'+' gives a string of 8192 characters, over the limit of {MAX_STRING_CHARS}"]),
    ("float overflow", net_with("3", "let f = 1e308 * 10\n"), 1, 15, ["'*' gives a number that is not finite"]),
    ("infinite literal", net_with("3", "let f = 1e999\n"), 1, 9, ["the literal 1e999 is a number that is not finite"]),
    ("huge input shape", NET.replace("3x8x8", "3x" + "9" * 40 + "x8").replace("WIDTH", "3"), 2, 9,
     ["beyond the limit of 63 bits"]),
    ("padding past the limit", NET.replace("conv(WIDTH, 3)", "conv(3, 1, pad=4611686018427387904)"), 4, 10,
     ["conv gives a 3x9223372036854775816x9223372036854775816 output, with an integer beyond the limit"]),
    ("fc input past the limit", NET.replace("3x8x8", "3x3000000000x3000000000").replace(
        "avgpool; ", "").replace("WIDTH", "3"), 5, 10, ["fc flattens 3x3000000000x3000000000 to an integer beyond"]),
    # The caret lands on the first operand past the limit: 7 levels of the file come before the
    # first bracket (start, network, stem, its body, the call, its arguments, the argument).
    ("brackets 200 deep", net_with("(1 + " * 200 + "1" + ")" * 200), 4, 15 + 5 * (MAX_SYNTAX_DEPTH - 7) + 1,
     [f"nests more than {MAX_SYNTAX_DEPTH} levels deep"]),
    ("shortcut branches 200 deep", "block b(c) {" + " add {" * 200 + " relu" + " }" * 200 + " }\n" + net_with("3"),
     # The caret is on the '{' of the first branch body past the limit: the file, the block and its
     # body come first, then each branch is two levels (the add and its body).
     1, 12 + 6 * ((MAX_SYNTAX_DEPTH - 2) // 2), [f"nests more than {MAX_SYNTAX_DEPTH} levels deep"]),
]


@pytest.mark.parametrize("text,line,col,words", [c[1:] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES])
def test_a_spec_beyond_a_limit_is_one_clear_error(tmp_path, capsys, text, line, col, words):
    p = tmp_path / "hostile.net"
    p.write_text(text)
    code, _, err = run_cli(["build", p], capsys)
    assert_spec_error(code, err, p, line, col, words)


def test_the_file_size_limit_is_exact_and_the_read_is_bounded(tmp_path, capsys):
    # A long comment makes a spec of exactly the limit that still parses quickly.
    body = net_with("3")
    p = tmp_path / "big.net"
    p.write_text(body + "#" + "x" * (MAX_SPEC_BYTES - len(body) - 2) + "\n")
    assert p.stat().st_size == MAX_SPEC_BYTES
    assert load_network(p).stem.out_shape == (3, 8, 8)
    with open(p, "a") as f:
        f.write("#" * (50 * MAX_SPEC_BYTES))  # 50 MiB more: only the first MiB + 1 byte is read
    code, _, err = run_cli(["build", p], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{p}:1:1: error: the spec is {51 * MAX_SPEC_BYTES} bytes: the limit is "
                          f"{MAX_SPEC_BYTES} bytes"), err
    with pytest.raises(SpecError, match=f"the limit is {MAX_SPEC_BYTES} bytes"):
        load_network(body + "#" * MAX_SPEC_BYTES)  # spec text, not a file: the same limit


def test_imports_count_toward_the_size_limit_and_may_chain_deeply(tmp_path, capsys):
    # 1,100 files, each importing the next: deeper than Python's recursion limit.
    for i in range(1100):
        (tmp_path / f"a{i}.net").write_text(f'import "a{i + 1}"\n')
    (tmp_path / "a1100.net").write_text("block last(c) { conv(c, 1) }\n")
    p = tmp_path / "main.net"
    p.write_text('import "a0"\n' + NET.replace("WIDTH", "3").replace("head", "stage s: last(5) x 1\n  head"))
    assert len(load_network(p).sources) == 1102
    half = "#" + "x" * (MAX_SPEC_BYTES // 2) + "\n"
    (tmp_path / "big1.net").write_text(half)
    (tmp_path / "big2.net").write_text(half)
    p.write_text('import "big1"\nimport "big2"\n' + net_with("3"))
    code, _, err = run_cli(["build", p], capsys)
    assert_spec_error(code, err, p, 2, 1, [f"the spec and its imports are over {MAX_SPEC_BYTES} bytes, the limit"])


def test_blocks_nested_past_the_limit(tmp_path):
    # Each block calls the next: no single file nests deeply, the expansion does.
    blocks = "".join(f"block b{i}(c) {{ b{i + 1}(c) }}\n" for i in range(MAX_NESTING + 5)) + \
        f"block b{MAX_NESTING + 5}(c) {{ relu }}\n"
    p = tmp_path / "chain.net"
    p.write_text(blocks + NET.replace("WIDTH", "3").replace("head", "stage s: b0(3) x 1\n  head"))
    with pytest.raises(SpecError, match=f"blocks and shortcut branches nest more than {MAX_NESTING} deep"):
        load_network(p)


def test_expressions_as_long_as_any_real_spec_needs():
    # Flat chains are loops: thousands of terms, prefixes and brackets evaluate to the right values.
    text = net_with("+".join(["1"] * 5000), "let p = " + " * ".join(["1"] * 1999 + ["2"]) + "\n"
                    + "let m = " + "- " * 2501 + "7\n"
                    + "let nt = " + "not " * 5001 + "true\n"
                    + "let br = " + "(" * 5000 + "4" + ")" * 5000 + "\n"
                    + "let nested = " + "(1 + " * 80 + "1" + ")" * 80 + "\n"
                    + "let alt = " + " if false else ".join(["1"] * 1000) + "\n"
                    + "let any = " + " or ".join(["1 > 2"] * 1000 + ["2 > 1"]) + "\n")
    net = load_network(text)
    assert net.stem.out_shape == (5000, 8, 8)
    assert net.stem.items[0].attrs["out"] == 5000
    assert net.lets == {"p": 2, "m": -7, "nt": False, "br": 4, "nested": 81, "alt": 1, "any": True}


def test_many_lets_and_resnet_1202_still_check(tmp_path):
    lets = "".join(f"let a{i} = {i} * 2 + 1\n" for i in range(2000))  # 40 KB, a hundred times a real spec
    p = tmp_path / "lets.net"
    p.write_text(lets + net_with("a1999 // 1000"))
    start = time.monotonic()
    net = load_network(p)
    assert time.monotonic() - start < 30
    assert net.lets["a1999"] == 3999 and net.stem.out_shape == (3, 8, 8)
    s = summarize(load_network(SPECS / "cifar_6n2.net", {"n": "200"}))
    assert (s.depth, s.params) == (1202, 19_421_274)


# ---- what is read as a spec ----
@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_only_regular_files_are_read_as_specs(tmp_path, capsys, kind):
    if kind == "fifo":
        target = tmp_path / "pipe.net"
        os.mkfifo(target)
        # In a subprocess with a timeout: opening a FIFO for reading used to wait for a writer forever.
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "resdsl", "build", str(target)], capture_output=True,
                           text=True, cwd=REPO, timeout=60)
        assert time.monotonic() - start < 60
        code, err = r.returncode, r.stderr
        words = "is a FIFO (named pipe), not a spec file"
    else:
        target = "/dev/zero" if kind == "device" else tmp_path
        code, _, err = run_cli(["build", target], capsys)
        words = "is a character device, not a spec file" if kind == "device" else "is a directory, not a spec file"
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: {target} {words}"), err


# ---- imports name a spec, found beside the file, on $RESDSL_SPEC_PATH, then shipped ----
@pytest.mark.parametrize("target", ["../outside", "/etc/passwd", "sub/inner", ".hidden", "a\\\\b", ""])
def test_an_import_that_names_a_path_is_refused(tmp_path, capsys, target):
    (tmp_path / "outside.net").write_text("block leak(c) { relu }\n")
    here = tmp_path / "here"
    here.mkdir()
    p = here / "main.net"
    p.write_text(f'param n = 1\nimport "{target}"\n' + net_with("3"))
    code, _, err = run_cli(["build", p], capsys)
    assert_spec_error(code, err, p, 2, 1, [f'import "{target}": an import names a spec, not a path',
                                           "RESDSL_SPEC_PATH"])


def test_imports_search_beside_then_the_spec_path_then_shipped(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "prelude.net").write_text("block mine(c) { conv(c, 1) }\n")  # shadows the shipped prelude
    (lib / "extra.net").write_text("block extra(c) { conv(c, 3) }\n")
    main_dir = tmp_path / "main"
    main_dir.mkdir()
    (main_dir / "extra.net").write_text("block extra(c) { conv(c, 5) }\n")  # beside wins over the path
    p = main_dir / "m.net"
    p.write_text('import "prelude"\nimport "extra.net"\n'
                 + NET.replace("WIDTH", "3").replace("head", "stage s: mine(4) x 1\n  stage u: extra(4) x 1\n  head"))
    with pytest.raises(SpecError, match=r'cannot import "nowhere": no nowhere.net beside this file, in '
                                        r'\$RESDSL_SPEC_PATH or among the shipped specs'):
        load_network(p.read_text().replace('import "prelude"', 'import "nowhere"'))
    monkeypatch.setenv("RESDSL_SPEC_PATH", os.pathsep.join([str(tmp_path / "missing"), str(lib)]))
    net = load_network(p)
    assert [s.blocks[0].items[0].attrs["k"] for s in net.stages] == [1, 5]
    assert str((lib / "prelude.net").resolve()) in net.sources
    monkeypatch.delenv("RESDSL_SPEC_PATH")
    with pytest.raises(SpecError, match="unknown primitive or block 'mine'|'mine' is not a known block"):
        load_network(p)  # without the path, the shipped prelude is read: it has no 'mine'


# ---- parameters the network never reads ----
SILENT = """param classes = 10
param unused = 3
param wide = false
param wide_width = 64
param sc = "A"
import "prelude"
let w = wide_width if wide else 16
network t {
  input 3x8x8
  classes 4
  stem { conv(w, 3); bn; relu }
  stage s: basic(16, shortcut="B") x 1
  head { avgpool; fc(classes) }
}
"""


@pytest.mark.parametrize("name,value,line,col", [("classes", "9", 1, 7), ("unused", "5", 2, 7)])
def test_setting_a_parameter_the_network_never_reads_is_an_error(tmp_path, capsys, name, value, line, col):
    p = tmp_path / "silent.net"
    p.write_text(SILENT)
    code, _, err = run_cli(["build", p, f"--{name}", value], capsys)
    assert_spec_error(code, err, p, line, col, [f"--{name} {value}: the network does not use parameter '{name}'",
                                                "would be ignored"])
    with pytest.raises(SpecError, match=f"does not use parameter '{name}'"):
        load_network(p, {name: value})  # the Python API's overrides too


def test_parameters_the_network_reads_somewhere_count_as_used(tmp_path, capsys):
    p = tmp_path / "silent.net"
    p.write_text(SILENT)
    # Declared but unset, unused parameters are fine; a parameter read only by the branch not taken
    # (wide is false) is still read: another value of `wide` takes that branch.
    assert load_network(p, {"wide_width": "32"}).stem.out_shape == (16, 8, 8)
    assert load_network(p, {"wide_width": "32", "wide": "true"}).stem.out_shape == (32, 8, 8)
    # A block formal's default that every call replaces is never evaluated: `sc` is read by nothing.
    with pytest.raises(SpecError, match="does not use parameter 'sc'"):
        load_network(p.read_text().replace("block", "#"), {"sc": "B"})
    # `shortcut` reaches the imported prelude's block through the stage's arguments.
    a = summarize(load_network(SPECS / "cifar_6n2.net"))
    code, out, err = run_cli(["build", SPECS / "cifar_6n2.net", "--shortcut", "B"], capsys)
    assert code == 0, err
    b = summarize(load_network(SPECS / "cifar_6n2.net", {"shortcut": "B"}))
    # Option B adds a 1x1 projection + BN where the shape changes: 16->32 (512 + 64), 32->64 (2048 + 128).
    assert (a.params, b.params) == (269_722, 269_722 + 512 + 64 + 2048 + 128)


def test_a_global_read_inside_an_imported_block_counts(tmp_path):
    (tmp_path / "lib.net").write_text("param k = 3\nblock b(c) { conv(c, k) }\n")
    p = tmp_path / "main.net"
    p.write_text('import "lib"\n' + NET.replace("WIDTH", "3").replace("head", "stage s: b(4) x 1\n  head"))
    net = load_network(p, {"k": "1"})
    assert net.stages[0].blocks[0].items[0].attrs["k"] == 1


def test_an_override_reaches_defaults_computed_from_it(tmp_path):
    p = tmp_path / "dep.net"
    p.write_text(net_with("b", "param a = 2\nparam b = a * 8\n"))
    net = load_network(p, {"a": "4"})
    assert net.params == {"a": 4, "b": 32} and net.stem.out_shape == (32, 8, 8)


def test_a_sweep_sees_only_the_spaces_of_parameters_the_network_reads(tmp_path):
    p = tmp_path / "spaces.net"
    p.write_text(net_with("w", "param w = 8 in [8, 16]\nparam dead = 1 in 1..4\n"))
    assert set(load_network(p).spaces) == {"w"}


def test_a_parameter_given_twice_is_an_error(capsys):
    code, _, err = run_cli(["build", SPECS / "cifar_6n2.net", "--n", "3", "--set", "n=5"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "parameter 'n' is given twice (3 and 5)" in err
