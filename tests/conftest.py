import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"

# A net small enough for sweeps that train real trials in seconds: n basic blocks per stage.
TINY_SWEEP_NET = """import "prelude"
param n = 1 in 1..4
network tiny {
  input 3x16x16
  classes 4
  stem conv1 { conv(8, 3); bn; relu }
  stage s1: basic(8) x n
  stage s2: basic(16) x n stride 2
  head { avgpool; fc(classes) }
}
"""

# Two cores on CI: keep torch from oversubscribing them when pytest runs.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def specs_dir() -> Path:
    return SPECS
