"""Front door of the spec layer: a path or spec text in, the checked model (ir.Network) out."""

from __future__ import annotations

from pathlib import Path

from . import ast, ir
from .checker import check_network
from .errors import SpecError
from .paths import package_data_dir
from .syntax import parse

SPEC_SUFFIX = ".net"


def specs_dir() -> Path:
    """The shipped specs (the paper's networks and the prelude)."""
    return package_data_dir("specs")


def _looks_like_text(spec: str) -> bool:
    return "\n" in spec or "{" in spec


def resolve_spec_path(spec: str | Path) -> Path:
    """A spec path as given, or the name of a shipped spec ('resnet50' or 'resnet50.net')."""
    p = Path(spec)
    if p.exists():
        return p
    name = p.name if p.suffix == SPEC_SUFFIX else p.name + SPEC_SUFFIX
    shipped = specs_dir() / name
    if shipped.exists() and (p.parent == Path(".") or p.parent.name == "specs"):
        return shipped
    raise SpecError(f"no spec file '{spec}'",
                    hint=f"shipped specs: {', '.join(sorted(q.stem for q in specs_dir().glob('*.net')))}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (spec files are UTF-8 text)") from None
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None


def load_files(spec: str | Path) -> tuple[list[ast.SpecFile], ast.SpecFile]:
    """Parse a spec and, depth first, everything it imports; imports come before their importers."""
    if isinstance(spec, str) and _looks_like_text(spec):
        root = parse(spec, "<spec>")
        base = Path.cwd()
    else:
        path = resolve_spec_path(spec)
        root = parse(_read(path), str(path))
        base = path.resolve().parent
    ordered: list[ast.SpecFile] = []
    done: set[Path] = set()

    def visit(f: ast.SpecFile, here: Path, stack: list[Path]) -> None:
        for imp in f.imports:
            target = _find_import(imp, here, f)
            if target in stack:
                chain = " -> ".join(p.name for p in stack[stack.index(target):] + [target])
                raise SpecError(f"import cycle: {chain}", imp.pos, f.text)
            if target in done:
                continue
            sub = parse(_read(target), str(target))
            visit(sub, target.parent, stack + [target])
            done.add(target)
            ordered.append(sub)

    root_key = Path(root.path).resolve() if root.path != "<spec>" else Path("<spec>")
    visit(root, base, [root_key])
    ordered.append(root)
    return ordered, root


def _find_import(imp: ast.Import, here: Path, importer: ast.SpecFile) -> Path:
    name = imp.target if imp.target.endswith(SPEC_SUFFIX) else imp.target + SPEC_SUFFIX
    for folder in (here, specs_dir()):
        candidate = (folder / name)
        if candidate.is_file():
            return candidate.resolve()
    raise SpecError(f"cannot import \"{imp.target}\": no {name} beside this file or among the shipped specs",
                    imp.pos, importer.text)


def load_network(spec: str | Path, overrides: dict | None = None,
                 input_shape: ir.Shape | None = None) -> ir.Network:
    """The checked model of a spec (a path, a shipped spec name, or spec text)."""
    files, root = load_files(spec)
    return check_network(files, root, dict(overrides or {}), input_shape)


def parse_input_shape(text: str) -> ir.Shape:
    """'3x224x224' -> (3, 224, 224), for --input."""
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise SpecError(f"--input {text}: expected CxHxW with positive integers, e.g. 3x224x224")
    return dims  # type: ignore[return-value]
