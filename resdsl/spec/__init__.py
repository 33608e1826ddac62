"""The spec layer: .net text to a checked model of the network, and what is read off it.

    grammar/resdsl.lark --syntax--> ast --checker--> ir (checked model) --analysis--> counts
                                                                       --compiler--> torch module

Every primitive (conv, bn, relu, ...) is one entry of primitives.PRIMITIVES, which the checker,
the analysis and the compiler all read. Nothing here imports torch except compiler.py and
modules.py (the primitives' own torch modules).
"""

from .files import (SEARCH_PATH_VAR, SPEC_SUFFIX, load_files, load_network, parse_input_shape,
                    resolve_spec_path, spec_from_sources, spec_search_path, specs_dir)

__all__ = ["SEARCH_PATH_VAR", "SPEC_SUFFIX", "load_files", "load_network", "parse_input_shape",
           "resolve_spec_path", "spec_from_sources", "spec_search_path", "specs_dir"]
