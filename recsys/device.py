"""Device choice: CUDA when present, CPU otherwise; overridable by name."""

from __future__ import annotations

import torch


def pick_device(name: str | None = None) -> torch.device:
    """'auto'/None -> cuda if available else cpu; 'cpu'/'cuda'/'cuda:N' as given."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use 'cpu'")
    return dev
