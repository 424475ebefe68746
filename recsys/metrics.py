"""Utility, forgetting and consistency metrics of a recommender (see docs: evaluation.md).

Every ranking metric scores users in chunks, so memory is bounded by chunk x n_items and
never users x items. A target item is ranked among the user's *candidates*: every item
the user has no interaction with in the given exclusion set (the training data the model
is supposed to have seen), the target itself not counting as its own competitor.

Ties: top-k membership counts tied candidates against the target (a constant model
gets HR 0, not 1); rank percentiles for membership inference count ties half.
"""

from __future__ import annotations

import copy
import math
from typing import cast

import numpy as np
import torch
from torch import nn

from recsys.config import ProjectConfig
from recsys.data.interactions import Interactions
from recsys.models.base import Recommender
from recsys.train.objectives import make_objective
from recsys.train.sparse import CSR

# Scores held at once per chunk: chunk_users x n_items floats (64 MiB in float32).
CHUNK_ELEMENTS = 1 << 24
# Below this, a consistency-gap denominator or numerator counts as zero.
ZERO_TOL = 1e-12


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _rows_of(csr: CSR, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(local_row, col) of every entry of the given rows: local_row indexes ``rows``."""
    start = csr.indptr[rows]  # (B,)
    deg = csr.indptr[rows + 1] - start  # (B,)
    local = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), deg)  # (E,)
    first = torch.repeat_interleave(start - (torch.cumsum(deg, 0) - deg), deg)  # (E,)
    return local, csr.col[first + torch.arange(local.numel(), device=rows.device)]


@torch.no_grad()
def rank_counts(
    model: nn.Module,
    exclude: Interactions,
    user: torch.Tensor,
    item: torch.Tensor,
    *,
    chunk_users: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each target pair (user[t], item[t]): (above, ties, candidates), each (T,) int64.

    ``above``/``ties``: candidates scored strictly higher / equal; ``candidates``: how many
    items compete with the target (items not in the user's ``exclude`` rows, minus itself).
    Returned on the CPU in the order of the targets.
    """
    n_targets = user.numel()
    out = torch.zeros(3, n_targets, dtype=torch.int64)
    if n_targets == 0:
        return out[0], out[1], out[2]
    device = _model_device(model)
    n_items = exclude.n_items
    chunk = chunk_users or max(1, CHUNK_ELEMENTS // max(1, n_items))
    excl = CSR.build(exclude.user.to(device), exclude.item.to(device), exclude.n_users)
    order = torch.argsort(user, stable=True)
    t_user, t_item = user[order].to(device), item[order].to(device)
    users, per_user = torch.unique_consecutive(t_user, return_counts=True)
    bounds = torch.cumsum(per_user, 0).tolist()
    res = torch.zeros(3, n_targets, dtype=torch.int64, device=device)
    for c0 in range(0, users.numel(), chunk):
        cu = users[c0 : c0 + chunk]  # (B,)
        scores = cast(Recommender, model).score_users(cu).float()  # (B, n_items)
        cand = torch.ones_like(scores, dtype=torch.bool)  # (B, n_items)
        local, cols = _rows_of(excl, cu)
        cand[local, cols] = False
        lo = bounds[c0 - 1] if c0 > 0 else 0
        hi = bounds[min(c0 + chunk, users.numel()) - 1]
        # the targets of this chunk are contiguous in the sorted order
        t_local = torch.repeat_interleave(
            torch.arange(cu.numel(), device=device), per_user[c0 : c0 + chunk]
        )  # (T_c,)
        for s0 in range(0, hi - lo, chunk):  # sub-chunks keep (T, n_items) <= (B, n_items)
            rows = t_local[s0 : s0 + chunk]
            its = t_item[lo + s0 : lo + s0 + rows.numel()]
            sc = scores[rows]  # (T, n_items)
            cm = cand[rows]  # (T, n_items)
            cm[torch.arange(rows.numel(), device=device), its] = False
            target = sc.gather(1, its[:, None])  # (T, 1)
            sl = slice(lo + s0, lo + s0 + rows.numel())
            res[0, sl] = ((sc > target) & cm).sum(1)
            res[1, sl] = ((sc == target) & cm).sum(1)
            res[2, sl] = cm.sum(1)
    out[:, order] = res.cpu()
    return out[0], out[1], out[2]


def _has_data(data: Interactions, user: torch.Tensor) -> torch.Tensor:
    """Mask (N,) of the given users that still have rows in ``data``."""
    return data.user_counts()[user] > 0


def hit_ndcg(
    model: nn.Module, train: Interactions, test: Interactions, k: int = 20
) -> tuple[float, float]:
    """HR@k and NDCG@k of the test pairs, each ranked among the user's non-train items.

    One relevant item per pair, so NDCG = 1 / log2(rank + 1) with a 1-based rank <= k.
    (nan, nan) when there is no test pair.
    """
    if len(test) == 0:
        return math.nan, math.nan
    above, ties, _ = rank_counts(model, train, test.user, test.item)
    rank0 = (above + ties).double()  # (T,) 0-based, ties counted against the target
    hit = rank0 < k
    ndcg = torch.where(hit, 1.0 / torch.log2(rank0 + 2.0), torch.zeros_like(rank0))
    return float(hit.double().mean()), float(ndcg.mean())


def forget_exposure(
    model: nn.Module, remaining: Interactions, deleted: Interactions, k: int = 20
) -> tuple[float, float]:
    """(FE@k, median 1-based rank) of deleted pairs whose user still has remaining data.

    Deleted items are ranked among everything outside the user's *remaining* training
    items, so the user's other deleted items compete as ordinary unseen items.
    (nan, nan) when no deleted pair qualifies.
    """
    keep = _has_data(remaining, deleted.user)
    if not bool(keep.any()):
        return math.nan, math.nan
    above, ties, _ = rank_counts(model, remaining, deleted.user[keep], deleted.item[keep])
    rank0 = above + ties
    return float((rank0 < k).double().mean()), float(np.median((rank0 + 1).numpy()))


def rank_percentiles(model: nn.Module, exclude: Interactions, pairs: Interactions) -> torch.Tensor:
    """(N,) float64: share of the user's other candidates each pair's item beats (ties half).

    1 = ranked first, 0 = ranked last; 0.5 when the item has no competitor.
    """
    above, ties, cands = rank_counts(model, exclude, pairs.user, pairs.item)
    beaten = (cands - above).double() - 0.5 * ties.double()
    return torch.where(
        cands > 0, beaten / cands.clamp(min=1).double(), torch.full_like(beaten, 0.5)
    )


def mann_whitney_auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(score(pos) > score(neg)) + 0.5 P(equal): the Mann-Whitney U statistic / (n_pos n_neg)."""
    n_pos, n_neg = pos.numel(), neg.numel()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    x = torch.cat([pos, neg]).double()
    order = torch.argsort(x)
    _, inverse, counts = torch.unique_consecutive(x[order], return_inverse=True, return_counts=True)
    # average 1-based rank of each run of equal values: last position - (run length - 1) / 2
    avg = torch.cumsum(counts, 0).double() - (counts.double() - 1) / 2
    ranks = torch.empty_like(x)
    ranks[order] = avg[inverse]
    u_stat = float(ranks[:n_pos].sum()) - n_pos * (n_pos + 1) / 2
    return u_stat / (n_pos * n_neg)


def mia_auc(
    model: nn.Module, remaining: Interactions, deleted: Interactions, heldout: Interactions
) -> float:
    """Membership-inference AUC: deleted pairs (positives) vs held-out pairs never trained on.

    Each pair is scored by its rank percentile among the user's candidates (items not in
    the user's remaining training data). Only users with remaining data take part: a user
    without any has no embedding left to attack. nan when either side is empty.
    """
    pos = deleted.subset(_has_data(remaining, deleted.user))
    neg = heldout.subset(_has_data(remaining, heldout.user))
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    return mann_whitney_auc(
        rank_percentiles(model, remaining, pos), rank_percentiles(model, remaining, neg)
    )


def consistency_gap(m_method: float, m_retrain: float, m_noop: float) -> float:
    """CG = |m - r| / |n - r|: 0 = as if retrained, 1 = nothing forgotten.

    When the no-op already matches the retrain (|n - r| <= ZERO_TOL) there was nothing to
    forget: the gap is 0.0 if the method matches too and ``inf`` otherwise (it moved away
    from a target it started on). nan when any input is nan.
    """
    if any(math.isnan(v) for v in (m_method, m_retrain, m_noop)):
        return math.nan
    num, den = abs(m_method - m_retrain), abs(m_noop - m_retrain)
    if den <= ZERO_TOL:
        return 0.0 if num <= ZERO_TOL else math.inf
    return num / den


def item_embeddings(model: nn.Module) -> torch.Tensor:
    """(n_items, d) item-side embedding table: MF item_emb; NeuMF [gmf_item, mlp_item]."""
    if hasattr(model, "item_emb"):
        parts = [model.item_emb]
    elif hasattr(model, "gmf_item") and hasattr(model, "mlp_item"):
        parts = [model.gmf_item, model.mlp_item]
    else:
        raise TypeError(f"no item embeddings known for {type(model).__name__}")
    tabs = [p.weight if isinstance(p, nn.Embedding) else p for p in parts]
    return torch.cat([cast(torch.Tensor, t).detach().float() for t in tabs], dim=1)


@torch.no_grad()
def embedding_distance(model: nn.Module, reference: nn.Module, baseline: nn.Module) -> float:
    """||E(model) - E(ref)||_F / ||E(baseline) - E(ref)||_F over item embeddings.

    With reference = retrain and baseline = noop: 0 = the retrained item side, 1 = as far
    as the untouched model. Zero denominator: handled like ``consistency_gap``.
    """
    ref = item_embeddings(reference).cpu()
    num = float((item_embeddings(model).cpu() - ref).norm())
    den = float((item_embeddings(baseline).cpu() - ref).norm())
    if den <= ZERO_TOL:
        return 0.0 if num <= ZERO_TOL else math.inf
    return num / den


def fold_in_users(
    model: nn.Module,
    kind: str,
    cfg: ProjectConfig,
    seed: int,
    users: torch.Tensor,
    history: Interactions,
    rounds: int = 3,
) -> nn.Module:
    """A copy of ``model`` whose rows of ``users`` are re-solved from ``history`` alone.

    The item side and network stay fixed, as when a returning user is folded into a served
    model. MF's block step is exact, so one round suffices; NeuMF's damped Newton steps
    need a few (``rounds``).
    """
    folded = copy.deepcopy(model)
    objective = make_objective(kind, history, cfg, seed)
    users = users.to(_model_device(folded))
    for _ in range(1 if kind == "mf" else rounds):
        objective.solve_users(folded, users)
    return folded
