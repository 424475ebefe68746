"""Suite-wide settings."""

import os

import torch

# Tiny tensors: one thread avoids OpenMP start-up/contention costs that dominate small ops
# (measured 50x slower with 2 threads on a loaded 2-core machine) and makes runs repeatable.
torch.set_num_threads(1)

# Apps built by tests must not reconfigure the test process's root logging (pytest captures
# records itself); tests of the JSON log format call the formatter directly.
os.environ.setdefault("RTBF_LOG_JSON", "false")
