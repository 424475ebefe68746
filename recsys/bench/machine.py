"""Where a benchmark ran (machine, versions), peak memory, and JSON-safe output."""

from __future__ import annotations

import math
import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": cuda,
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "device": str(device),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for dist in ("rtbf-eraser", "numpy", "pandas", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


class PeakMemory:
    """Peak resident memory (and CUDA allocation) since the last ``reset``.

    Linux lets a process reset its own high-water mark (clear_refs 5 resets VmHWM); where
    that fails, the process-lifetime peak from getrusage is reported instead.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = False

    def reset(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _rss_peak_mb(self) -> float:
        if self.resettable:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux

    def read(self) -> dict[str, float | None]:
        cuda = None
        if self.device.type == "cuda":
            cuda = torch.cuda.max_memory_allocated(self.device) / 2**20
        return {"peak_rss_mb": self._rss_peak_mb(), "peak_cuda_mb": cuda}


def json_safe(obj: Any) -> Any:
    """Plain JSON types: non-finite floats become null, tensors numbers, tuples lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return json_safe(obj.tolist())
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    try:
        return json_safe(float(obj))  # numpy scalars
    except (TypeError, ValueError):
        return str(obj)
