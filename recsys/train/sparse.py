"""Row-grouped views of the interactions, for per-row Gramians without a users x items matrix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

# Upper bound on the elements of one padded (B, L, d) gather: bounds peak memory of a block.
MAX_CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class CSR:
    """Interactions grouped by row: the columns of row r are ``col[indptr[r]:indptr[r+1]]``."""

    indptr: torch.Tensor  # (n_rows + 1,) int64
    col: torch.Tensor  # (nnz,) int64, sorted by row
    n_rows: int

    @staticmethod
    def build(row: torch.Tensor, col: torch.Tensor, n_rows: int) -> CSR:
        order = torch.argsort(row * (int(col.max()) + 1 if col.numel() else 1) + col)
        counts = torch.bincount(row, minlength=n_rows)
        indptr = torch.zeros(n_rows + 1, dtype=torch.int64, device=row.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return CSR(indptr=indptr, col=col[order].contiguous(), n_rows=n_rows)

    def degree(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]  # (n_rows,)

    def to(self, device: torch.device) -> CSR:
        return CSR(self.indptr.to(device), self.col.to(device), self.n_rows)


def padded_groups(
    csr: CSR, rows: torch.Tensor, dim: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (rows_b, cols_b, mask_b): rows_b (B,), cols_b/mask_b (B, L) padded column ids.

    Rows are bucketed by degree (powers of two) so padding wastes at most half of each
    bucket, and each bucket is cut so that B * L * dim stays under MAX_CHUNK_ELEMENTS.
    Rows without any column are not yielded (their Gramian is zero).
    """
    deg = csr.degree()[rows]
    keep = deg > 0
    rows, deg = rows[keep], deg[keep]
    if rows.numel() == 0:
        return
    bucket = torch.ceil(torch.log2(deg.to(torch.float64))).to(torch.int64)
    for b in torch.unique(bucket).tolist():
        sel = bucket == b
        rows_b, deg_b = rows[sel], deg[sel]
        width = int(deg_b.max())
        per_chunk = max(1, MAX_CHUNK_ELEMENTS // max(1, width * dim))
        for start in range(0, rows_b.numel(), per_chunk):
            r = rows_b[start : start + per_chunk]
            d = deg_b[start : start + per_chunk]
            offs = torch.arange(width, device=rows.device)  # (L,)
            mask = offs[None, :] < d[:, None]  # (B, L)
            pos = (csr.indptr[r][:, None] + offs[None, :]).clamp(max=csr.col.numel() - 1)
            yield r, csr.col[pos], mask
