"""Two-way map between external ids (kept as strings) and dense ids 0..n-1."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

_INT_RE = re.compile(r"[+-]?\d+")
_INT64_MAX = 2**63 - 1


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, pd.Index | pd.Series | pd.Categorical):
        return np.asarray(values)
    if isinstance(values, np.ndarray):
        return values
    return np.asarray(list(values), dtype=object)


def _is_integral(arr: np.ndarray) -> bool:
    """Whether the array holds integers (floats such as 3.0 from a parquet column count)."""
    if arr.dtype.kind in "iu":
        return True
    if arr.dtype.kind == "f" and arr.size:
        return bool(np.all(np.isfinite(arr) & (arr == np.round(arr))))
    return False


def _canonical_ints(ids: Sequence[str]) -> np.ndarray | None:
    """The ids as int64 when every one is the plain decimal form of an int64, else None."""
    if not ids or not all(_INT_RE.fullmatch(s) for s in ids):
        return None
    ints = [int(s) for s in ids]
    # "007" and "+7" are distinct external ids that int() would merge, so they disable this path
    if any(
        str(v) != s or not -_INT64_MAX - 1 <= v <= _INT64_MAX
        for v, s in zip(ints, ids, strict=True)
    ):
        return None
    return np.asarray(ints, dtype=np.int64)


def _sorted_unique(strs: Iterable[str]) -> list[str]:
    uniq = set(strs)
    if all(_INT_RE.fullmatch(s) for s in uniq):
        # the string is the tie-break so "7" and "007" still get a fixed order
        return sorted(uniq, key=lambda s: (int(s), s))
    return sorted(uniq)


class IdMap:
    """External ids <-> dense ids; the dense order depends on the ids alone (``from_values``)."""

    __slots__ = ("_ids", "_index", "_int_index")

    def __init__(self, ids: Sequence[str]) -> None:
        self._ids: list[str] = [str(s) for s in ids]
        self._index = pd.Index(np.asarray(self._ids, dtype=object), dtype=object)
        if not self._index.is_unique:
            dup = self._index[self._index.duplicated()][0]
            raise ValueError(f"IdMap: id {dup!r} appears more than once")
        ints = _canonical_ints(self._ids)
        # integer lookups skip the int -> str conversion, which dominates encode() on big inputs
        self._int_index = None if ints is None else pd.Index(ints)

    @classmethod
    def from_values(cls, values: Any) -> IdMap:
        """Map of the distinct values: numeric order when all are integers, else lexicographic."""
        arr = _as_array(values)
        if _is_integral(arr):
            return cls([str(v) for v in np.unique(arr.astype(np.int64, copy=False)).tolist()])
        uniq = pd.unique(pd.Series(arr, dtype=object).astype(str).to_numpy(dtype=object))
        return cls(_sorted_unique(uniq.tolist()))

    @classmethod
    def range(cls, n: int) -> IdMap:
        """The identity map: external id "k" is dense id k."""
        return cls([str(i) for i in range(n)])

    @classmethod
    def from_list(cls, ids: Sequence[str]) -> IdMap:
        """Rebuild a map saved with ``to_list`` (the order given is the dense order)."""
        return cls(ids)

    def to_list(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        head = ", ".join(self._ids[:3])
        return f"IdMap(n={len(self)}, ids=[{head}{', ...' if len(self) > 3 else ''}])"

    def __contains__(self, ext: object) -> bool:
        return str(ext) in self._index

    def to_dense(self, ext: Any) -> int:
        """Dense id of one external id (int or str); KeyError naming the id if unknown."""
        try:
            return int(self._index.get_loc(str(ext)))
        except KeyError:
            raise KeyError(f"unknown id {str(ext)!r} (the map has {len(self)} ids)") from None

    def to_external(self, dense: int) -> str:
        """External id of one dense id; IndexError if out of range."""
        d = int(dense)
        if not 0 <= d < len(self._ids):
            raise IndexError(f"dense id {d} out of range [0, {len(self._ids)})")
        return self._ids[d]

    def encode(self, values: Any) -> torch.Tensor:
        """Dense ids (int64 tensor) of many external ids; KeyError naming the first unknown one."""
        arr = _as_array(values)
        if self._int_index is not None and _is_integral(arr):
            pos = self._int_index.get_indexer(arr.astype(np.int64, copy=False))
        else:
            keys = pd.Series(arr, dtype=object).astype(str).to_numpy(dtype=object)
            pos = self._index.get_indexer(keys)
        missing = np.flatnonzero(pos < 0)
        if missing.size:
            first = arr[missing[0]]
            raise KeyError(
                f"unknown id {str(first)!r} ({missing.size} of {arr.size} values unknown)"
            )
        return torch.from_numpy(np.ascontiguousarray(pos, dtype=np.int64))

    def decode(self, dense: torch.Tensor | Sequence[int]) -> list[str]:
        """External ids of many dense ids."""
        idx = dense.tolist() if isinstance(dense, torch.Tensor) else list(dense)
        return [self.to_external(d) for d in idx]

    def digest(self) -> str:
        """sha256 of the ids in dense order."""
        payload = json.dumps(self._ids, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()
