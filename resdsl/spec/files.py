"""Front door of the spec layer: a path or spec text in, the checked model (ir.Network) out."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from . import ast, ir
from .checker import check_network
from ..errors import SpecError
from ..paths import package_data_dir
from .limits import MAX_SPEC_BYTES
from .syntax import parse, spec_too_big

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
    """The text of a spec file: a regular file only (a FIFO or a device would block or never end),
    read no further than the size limit."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{path} is {_file_kind(info.st_mode)}, not a spec file",
                            hint="a spec is a regular .net text file")
        with open(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SPEC_BYTES:
        raise spec_too_big(str(path), max(info.st_size, len(data)))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (spec files are UTF-8 text)") from None


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


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
    folders = [*spec_search_path(), specs_dir()]
    total = len(root.text.encode("utf-8", "surrogatepass"))
    root_key = Path(root.path).resolve() if root.path != "<spec>" else Path("<spec>")
    # Depth first with a stack of its own, not recursion: an import chain may be long. Each entry:
    # a file, its folder, the chain of files that led to it, the imports of it still to visit.
    stack = [(root, base, [root_key], iter(root.imports))]
    while stack:
        f, here, chain, pending = stack[-1]
        imp = next(pending, None)
        if imp is None:
            stack.pop()
            if stack:
                done.add(chain[-1])
                ordered.append(f)
            continue
        target = _find_import(imp, [here, *folders], f)
        if target in chain:
            cycle = " -> ".join(p.name for p in chain[chain.index(target):] + [target])
            raise SpecError(f"import cycle: {cycle}", imp.pos, f.text)
        if target in done:
            continue
        sub = parse(_read(target), str(target))
        total += len(sub.text.encode("utf-8", "surrogatepass"))
        if total > MAX_SPEC_BYTES:
            raise SpecError(f"the spec and its imports are over {MAX_SPEC_BYTES} bytes, the limit", imp.pos, f.text)
        stack.append((sub, target.parent, chain + [target], iter(sub.imports)))
    ordered.append(root)
    return ordered, root


SEARCH_PATH_VAR = "RESDSL_SPEC_PATH"
# An import names a spec, never a path: letters, digits, '_', '-', '.', not starting with '.'.
_IMPORT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def spec_search_path() -> list[Path]:
    """The folders in RESDSL_SPEC_PATH (separated by os.pathsep), searched after the importing
    file's folder and before the shipped specs."""
    return [Path(p).expanduser() for p in os.environ.get(SEARCH_PATH_VAR, "").split(os.pathsep) if p.strip()]


def _find_import(imp: ast.Import, folders: list[Path], importer: ast.SpecFile) -> Path:
    if not _IMPORT_NAME.fullmatch(imp.target) or ".." in imp.target:
        raise SpecError(f"import \"{imp.target}\": an import names a spec, not a path", imp.pos, importer.text,
                        "write import \"NAME\" for NAME.net beside this file, in a folder of "
                        f"${SEARCH_PATH_VAR} or among the shipped specs; add folders to ${SEARCH_PATH_VAR} "
                        f"(separated by '{os.pathsep}') to import from elsewhere")
    name = imp.target if imp.target.endswith(SPEC_SUFFIX) else imp.target + SPEC_SUFFIX
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate.resolve()
    raise SpecError(f"cannot import \"{imp.target}\": no {name} beside this file, in ${SEARCH_PATH_VAR} or "
                    "among the shipped specs", imp.pos, importer.text,
                    "looked in: " + ", ".join(str(folder) for folder in folders))


def load_network(spec: str | Path, overrides: dict | None = None,
                 input_shape: ir.Shape | None = None, requires: bool = True) -> ir.Network:
    """The checked model of a spec (a path, a shipped spec name, or spec text). A `require` that
    does not hold raises ConstraintError; with requires=False it does not (check_network)."""
    files, root = load_files(spec)
    return check_network(files, root, dict(overrides or {}), input_shape, requires)


@contextlib.contextmanager
def spec_from_sources(sources: dict[str, str], root: str) -> Iterator[Path]:
    """A spec as a run record keeps it (``Network.sources``: path -> text of the root and of every
    file it imports; ``root``: the root's key), written into a temporary folder where its imports
    find each other by name; yields the root file's path. So a run's network is rebuilt as it was
    trained, whatever happened to its spec files since."""
    if root not in sources:
        raise SpecError(f"the recorded spec texts do not hold the spec itself ({root})")
    imports = {}
    for key in sources:
        if key != root:
            name = Path(key).name
            if name in imports:
                raise SpecError(f"the recorded spec imports two files named {name} ({imports[name]} "
                                f"and {key}); they cannot be put back side by side")
            imports[name] = key
    with tempfile.TemporaryDirectory(prefix="resdsl-spec-") as tmp:
        folder = Path(tmp)
        for name, key in imports.items():
            (folder / name).write_text(sources[key], encoding="utf-8")
        # an import names a spec that does not start with '.': the root never shadows one
        root_path = folder / ".root.net"
        root_path.write_text(sources[root], encoding="utf-8")
        yield root_path


def parse_input_shape(text: str) -> ir.Shape:
    """'3x224x224' -> (3, 224, 224), for --input."""
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise SpecError(f"--input {text}: expected CxHxW with positive integers, e.g. 3x224x224")
    return dims  # type: ignore[return-value]
