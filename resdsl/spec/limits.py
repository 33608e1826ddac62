"""The limits of the spec language, in one place (docs/language.md, "Limits", lists them).

Each is far beyond what a real network needs and low enough that a hostile or mistyped spec
fails at once with a SpecError instead of exhausting time, memory or the Python stack.
"""

from __future__ import annotations

import math

MAX_SPEC_BYTES = 1 << 20  # a spec file, and a spec with all its imports, in bytes
MAX_SYNTAX_DEPTH = 100  # levels of a file's syntax tree: brackets and { } bodies inside one another
MAX_INT_BITS = 63  # every integer, literal or computed: |n| < 2**63
MAX_STRING_CHARS = 4096  # every string, literal or computed
MAX_REPEAT = 100_000  # blocks in one stage (`x COUNT`)
MAX_BLOCK_INSTANCES = 200_000  # blocks in the whole network
MAX_NESTING = 64  # block calls and shortcut branches inside one another while expanding
MAX_LIST_LENGTH = 100_000  # items of every list, written or computed
MAX_LIST_NESTING = 32  # lists inside lists
MAX_LIST_WORK = 1_000_000  # list items built or walked (in, sum, a comprehension's steps) in one check
MAX_LOOP_ITERATIONS = 100_000  # iterations of a network's `for` loops over stages, all together

INT_LIMIT = 1 << MAX_INT_BITS


def value_problem(value) -> str | None:
    """What is wrong with a value (a literal, a computed result, a command-line override) that is out
    of bounds, as a noun phrase ("an integer beyond ..."), or None when it is within them."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -INT_LIMIT < value < INT_LIMIT:
            return None
        return f"an integer beyond the limit of {MAX_INT_BITS} bits (|n| < 2**{MAX_INT_BITS})"
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"a number that is not finite ({value})"
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        return f"a string of {len(value)} characters, over the limit of {MAX_STRING_CHARS}"
    return None
