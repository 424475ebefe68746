"""Suite-wide settings."""

import torch

# Tiny tensors: one thread avoids OpenMP start-up/contention costs that dominate small ops
# (measured 50x slower with 2 threads on a loaded 2-core machine) and makes runs repeatable.
torch.set_num_threads(1)
