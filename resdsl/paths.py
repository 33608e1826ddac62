"""Where the data shipped with the package lives: installed, or in the source checkout."""

from __future__ import annotations

from pathlib import Path


def package_data_dir(name: str) -> Path:
    """pip installs grammar/ and specs/ as resdsl/grammar and resdsl/specs; a checkout has them
    beside the package."""
    here = Path(__file__).resolve().parent
    installed = here / name
    return installed if installed.is_dir() else here.parent / name
