"""Text to syntax tree: the Lark grammar in grammar/resdsl.lark and a Transformer to resdsl.ast."""

from __future__ import annotations

import functools

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from ..errors import SourcePos, SpecError
from ..paths import package_data_dir
from .limits import INT_LIMIT, MAX_SPEC_BYTES, MAX_SYNTAX_DEPTH, value_problem

_MAX_INT_DIGITS = len(str(INT_LIMIT))

# What a user should read instead of Lark's terminal names.
_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "SHAPE": "a shape such as 3x32x32", "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'",
    "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "COLON": "':'",
    "SEMICOLON": "';'", "EQUAL": "'='", "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/', '//' or '%'", "POW_OP": "'**'", "SIGN": "'-' or '+'", "NOT": "'not'", "__ANON_0": "'..'",
    "$END": "end of file",
}


def grammar_text() -> str:
    """The grammar, from the installed package or from the source checkout."""
    return (package_data_dir("grammar") / "resdsl.lark").read_text()


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe_expected(expected: set[str]) -> str:
    words = []
    for name in sorted(expected):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        elif name.isupper() and not name.startswith("__"):
            # Keyword terminals are named after the keyword itself, e.g. STAGE for "stage".
            words.append(f"'{name.lower()}'")
    words = sorted(set(words))
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "expected " + ", ".join(words)


class _ToAst(Transformer):
    """Parse tree to resdsl.ast; every node keeps its file:line:col."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _pos(self, meta_or_tok) -> SourcePos:
        return SourcePos(self.path, getattr(meta_or_tok, "line", 1) or 1,
                         getattr(meta_or_tok, "column", 1) or 1)

    # ---- expressions ----
    def _literal(self, value, tok) -> ast.Lit:
        problem = value_problem(value)
        if problem:
            raise SpecError(f"the literal {_shorten(str(tok))} is {problem}", self._pos(tok))
        return ast.Lit(value, self._pos(tok))

    def _int(self, digits: str, tok) -> ast.Lit:
        # Check the length first: int() of a long digit string is slow, and past 4300 digits raises.
        digits = digits.lstrip("0") or "0"
        if len(digits) > _MAX_INT_DIGITS:
            raise SpecError(f"the literal {_shorten(digits)} is {value_problem(INT_LIMIT)}", self._pos(tok))
        return self._literal(int(digits), tok)

    def int_lit(self, c):
        return self._int(str(c[0]), c[0])

    def float_lit(self, c):
        return self._literal(float(c[0]), c[0])

    def str_lit(self, c):
        return self._literal(str(c[0])[1:-1], c[0])

    @v_args(meta=True)
    def true_lit(self, meta, c):
        return ast.Lit(True, self._pos(meta))

    @v_args(meta=True)
    def false_lit(self, meta, c):
        return ast.Lit(False, self._pos(meta))

    def var(self, c):
        return ast.Var(str(c[0]), self._pos(c[0]))

    @v_args(meta=True)
    def chain(self, meta, c):
        """operand (OP operand)+: arithmetic, products, a comparison."""
        rest = tuple((str(c[i]), c[i + 1], self._pos(c[i])) for i in range(1, len(c), 2))
        return ast.Chain(c[0], rest, self._pos(meta))

    @v_args(meta=True)
    def or_chain(self, meta, c):
        return ast.Chain(c[0], tuple(("or", e, e.pos) for e in c[1:]), self._pos(meta))

    @v_args(meta=True)
    def and_chain(self, meta, c):
        return ast.Chain(c[0], tuple(("and", e, e.pos) for e in c[1:]), self._pos(meta))

    def not_op(self, c):
        *nots, operand = c
        return ast.UnaryOp("not", len(nots), operand, self._pos(nots[-1]))

    def signed(self, c):
        *signs, operand = c
        minus = [s for s in signs if s == "-"]
        if not minus:
            return operand  # unary plus changes nothing
        return ast.UnaryOp("-", len(minus), operand, self._pos(minus[-1]))

    @v_args(meta=True)
    def membership(self, meta, c):
        """x in xs, x not in xs: a comparison, so one Chain of one operator (placed at the list,
        which is what a wrong type there is about)."""
        left, *negated, right = c
        return ast.Chain(left, (("not in" if negated else "in", right, right.pos),), self._pos(meta))

    @v_args(meta=True)
    def power(self, meta, c):
        """operand (** SIGN* operand)+, kept flat; the minus signs go with the operand after them."""
        rest, minus, op_pos = [], 0, None
        for child in c[1:]:
            if isinstance(child, Token) and child.type == "POW_OP":
                minus, op_pos = 0, self._pos(child)
            elif isinstance(child, Token):  # SIGN
                minus += child == "-"
            else:
                rest.append((minus, child, op_pos))
        return ast.Power(c[0], tuple(rest), self._pos(meta))

    @v_args(meta=True)
    def index(self, meta, c):
        return ast.Index(c[0], tuple(c[1:]), self._pos(meta))

    @v_args(meta=True)
    def func_call(self, meta, c):
        name, args = c
        return ast.FuncCall(str(name), args or (), self._pos(name))

    @v_args(meta=True)
    def list_lit(self, meta, c):
        return ast.ListLit(tuple(e for e in c if e is not None), self._pos(meta))

    @v_args(meta=True)
    def list_comp(self, meta, c):
        element, names, iterable, condition = c
        return ast.Comprehension(element, names, iterable, condition, self._pos(meta))

    def comp_names(self, c):
        return tuple(str(t) for t in c)

    @v_args(meta=True)
    def require_stmt(self, meta, c):
        return ast.Require(c[0], c[1], self._pos(meta))

    @v_args(meta=True)
    def cond(self, meta, c):
        *pairs, otherwise = c
        cases = tuple((pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))
        return ast.Cond(cases, otherwise, self._pos(meta))

    # ---- sequences ----
    @v_args(meta=True)
    def pos_arg(self, meta, c):
        return ast.Arg(None, c[0], self._pos(meta))

    @v_args(meta=True)
    def kw_arg(self, meta, c):
        return ast.Arg(str(c[0]), c[1], self._pos(c[0]))

    def args(self, c):
        return tuple(c)

    @v_args(meta=True)
    def call(self, meta, c):
        name, args = c
        return ast.Call(str(name), args or (), self._pos(name))

    def join_op(self, c):
        return c[0]

    @v_args(meta=True)
    def join_stmt(self, meta, c):
        op, option, source, branch = c
        if option is not None and op != "add":
            raise SpecError(f"only add takes a shortcut option; {op} takes a branch", option.pos,
                            f"write {op} {{ ... }} for a branch, or {op} from NAME for a saved point")
        if option is not None and branch is not None:
            raise SpecError("add takes a shortcut option or a branch, not both", branch.pos,
                            "add(OPTION) projects the source as the option says; add { ... } computes it")
        return ast.Join(str(op), option, None if source is None else str(source),
                        None if source is None else self._pos(source), branch, self._pos(op))

    def save_stmt(self, c):
        return ast.Save(str(c[0]), self._pos(c[0]))

    @v_args(meta=True)
    def if_stmt(self, meta, c):
        *pairs, otherwise = c
        cases = tuple((pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))
        return ast.If(cases, otherwise, self._pos(meta))

    @v_args(meta=True)
    def seq(self, meta, c):
        return ast.Seq(tuple(c), self._pos(meta))

    # ---- items ----
    @v_args(meta=True)
    def import_stmt(self, meta, c):
        return ast.Import(str(c[0])[1:-1], self._pos(meta))

    @v_args(meta=True)
    def choice_space(self, meta, c):
        return ast.Space("choice", (c[0],), self._pos(meta))

    @v_args(meta=True)
    def range_space(self, meta, c):
        return ast.Space("range", tuple(c), self._pos(meta))

    @v_args(meta=True)
    def log_space(self, meta, c):
        return ast.Space("log", tuple(c), self._pos(meta))

    @v_args(meta=True)
    def param_stmt(self, meta, c):
        name, default, space = c
        return ast.Param(str(name), default, space, self._pos(name))

    @v_args(meta=True)
    def let_stmt(self, meta, c):
        return ast.Let(str(c[0]), c[1], self._pos(c[0]))

    @v_args(meta=True)
    def formal(self, meta, c):
        return ast.Formal(str(c[0]), c[1], self._pos(c[0]))

    def formals(self, c):
        return tuple(c)

    @v_args(meta=True)
    def block_def(self, meta, c):
        name, formals, body = c
        return ast.BlockDef(str(name), formals or (), body, self._pos(name))

    @v_args(meta=True)
    def input_decl(self, meta, c):
        if len(c) == 1 and isinstance(c[0], Token):
            pos = self._pos(c[0])
            return ("input", tuple(self._int(v, c[0]) for v in str(c[0]).split("x")), pos)
        return ("input", tuple(c), self._pos(meta))

    @v_args(meta=True)
    def classes_decl(self, meta, c):
        return ("classes", c[0], self._pos(meta))

    @v_args(meta=True)
    def stem_decl(self, meta, c):
        name, body = c
        return ("stem", (str(name) if name is not None else None, body), self._pos(meta))

    def stage_decl(self, c):
        name, index, call, count, stride, first = c
        return ast.StageDecl(str(name), index, call, count, stride, first, self._pos(name))

    @v_args(meta=True)
    def stage_for(self, meta, c):
        name, iterable, *body = c
        return ast.StageFor(str(name), iterable, tuple(body), self._pos(meta))

    @v_args(meta=True)
    def head_decl(self, meta, c):
        return ("head", c[0], self._pos(meta))

    @v_args(meta=True)
    def init_decl(self, meta, c):
        return ("init", c[0], self._pos(meta))

    @v_args(meta=True)
    def network_def(self, meta, c):
        name, *items = c
        found: dict[str, tuple] = {}
        stages = []
        requires = []
        for item in items:
            if isinstance(item, ast.Require):
                requires.append(item)
                continue
            if isinstance(item, (ast.StageDecl, ast.StageFor)):
                stages.append(item)
                continue
            kind, value, pos = item
            if kind in found:
                raise SpecError(f"the network declares '{kind}' twice", pos,
                                hint=f"first declared at line {found[kind][1].line}")
            found[kind] = (value, pos)
        stem_name, stem = found.get("stem", ((None, None), None))[0]
        return ast.NetworkDef(
            name=str(name),
            input=found.get("input", (None,))[0],
            classes=found.get("classes", (None,))[0],
            stem=stem, stem_name=stem_name, stages=tuple(stages),
            head=found.get("head", (None,))[0], pos=self._pos(name), init=found.get("init", (None,))[0],
            requires=tuple(requires))


def parse(text: str, path: str = "<spec>") -> ast.SpecFile:
    """Parse spec text into a SpecFile; syntax errors become SpecError with file:line:col."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise spec_too_big(path, size)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, path) from None
    _check_depth(tree, text, path)
    try:
        items = _ToAst(path).transform(tree).children
    except VisitError as e:
        if isinstance(e.orig_exc, SpecError):
            err = e.orig_exc
            raise SpecError(err.message, err.pos, text, err.hint) from None
        raise
    spec = ast.SpecFile(path=path, text=text)
    for item in items:
        {ast.Import: spec.imports, ast.Param: spec.params, ast.Let: spec.lets,
         ast.BlockDef: spec.blocks, ast.NetworkDef: spec.networks, ast.Require: spec.requires}[type(item)].append(item)
    return spec


def spec_too_big(path: str, size: int) -> SpecError:
    return SpecError(f"the spec is {size} bytes: the limit is {MAX_SPEC_BYTES} bytes",
                     SourcePos(path, 1, 1))


def _check_depth(tree: Tree, text: str, path: str) -> None:
    """Refuse a tree nested deeper than MAX_SYNTAX_DEPTH, before anything walks it recursively.

    Chains of operators and prefixes are flat in the grammar, so depth comes only from brackets,
    { } bodies and the few levels every statement has; this walk itself is a loop.
    """
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SYNTAX_DEPTH:
            pos = SourcePos(path, getattr(node.meta, "line", 1), getattr(node.meta, "column", 1))
            raise SpecError(f"the spec nests more than {MAX_SYNTAX_DEPTH} levels deep here (brackets and "
                            "{ } bodies inside one another)", pos, text)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _shorten(text: str, keep: int = 20) -> str:
    return text if len(text) <= 2 * keep else f"{text[:keep]}...{text[-keep:]} ({len(text)} characters)"


def _syntax_error(e: UnexpectedInput, text: str, path: str) -> SpecError:
    line = getattr(e, "line", None)
    col = getattr(e, "column", None)
    if not isinstance(line, int) or line < 1:
        # Unexpected end of file: point just past the last character.
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    pos = SourcePos(path, line, col if isinstance(col, int) and col > 0 else 1)
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "end of file"
        msg = f"unexpected character {ch!r}"
        expected = _describe_expected(set(e.allowed or ()))
    elif isinstance(e, UnexpectedToken):
        tok = e.token
        shown = "end of file" if tok.type == "$END" else repr(str(tok))
        msg = f"unexpected {shown}"
        expected = _describe_expected(set(e.expected or ()))
    elif isinstance(e, UnexpectedEOF):
        msg = "unexpected end of file"
        expected = _describe_expected(set(e.expected or ()))
    else:  # pragma: no cover - Lark has no other UnexpectedInput kinds today
        msg, expected = "syntax error", ""
    if expected:
        msg += f"; {expected}"
    return SpecError(msg, pos, text)
