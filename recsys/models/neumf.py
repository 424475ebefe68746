"""NeuMF (He et al. 2017): a GMF tower and an MLP tower fused by one output unit.

f(u, i) = w_g . (p_u * q_i) + w_h . MLP([m_u, m_i]) + b, a logit. The module only defines
the model; the objective (weighted BCE + L2) and its solvers live in recsys.train.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from recsys.config import NeuMFConfig

# Upper bound on the floats held by one chunk of score_users' (users x items x width) tensor.
_SCORE_CHUNK_FLOATS = 1 << 22


def _glorot_(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    """Glorot-uniform init drawn from ``generator`` (nn.Linear's own init ignores it)."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.copy_(torch.rand(weight.shape, generator=generator) * (2 * bound) - bound)


class NeuMF(nn.Module):
    def __init__(
        self,
        n_users: int,
        n_items: int,
        cfg: NeuMFConfig,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not cfg.mlp_layers:
            raise ValueError("NeuMF needs at least one MLP layer")
        self.n_users = n_users
        self.n_items = n_items
        self.gmf_dim = cfg.gmf_dim
        self.mlp_dim = cfg.mlp_dim

        def emb(rows: int, dim: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(rows, dim, generator=generator) * cfg.init_std)

        self.gmf_user = emb(n_users, cfg.gmf_dim)
        self.gmf_item = emb(n_items, cfg.gmf_dim)
        self.mlp_user = emb(n_users, cfg.mlp_dim)
        self.mlp_item = emb(n_items, cfg.mlp_dim)

        widths = [2 * cfg.mlp_dim, *cfg.mlp_layers]
        layers: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(widths):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(cfg.gmf_dim + widths[-1], 1)
        for lin in [*self.linears(), self.out]:
            _glorot_(lin.weight, generator)
            nn.init.zeros_(lin.bias)

    def linears(self) -> list[nn.Linear]:
        """The MLP tower's Linear layers, input to output (each followed by a ReLU)."""
        return [m for m in self.mlp if isinstance(m, nn.Linear)]

    def logits(
        self,
        gmf_u: torch.Tensor,
        gmf_i: torch.Tensor,
        mlp_u: torch.Tensor,
        mlp_i: torch.Tensor,
    ) -> torch.Tensor:
        """Logits from already-gathered embedding rows, (N, g), (N, g), (N, m), (N, m) -> (N,).

        Solvers call this with substituted rows (trial points, Jacobian inputs).
        """
        h = self.mlp(torch.cat([mlp_u, mlp_i], dim=-1))  # (N, mlp_layers[-1])
        return self.out(torch.cat([gmf_u * gmf_i, h], dim=-1)).squeeze(-1)  # (N,)

    def score(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return self.logits(
            self.gmf_user[user], self.gmf_item[item], self.mlp_user[user], self.mlp_item[item]
        )  # (N,)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Logits of every item for each user, (B,) -> (B, n_items), in bounded item chunks.

        The first MLP layer is linear in [m_u, m_i], so it splits into a user part and an
        item part computed once each; only the layers after it see (B, chunk) pairs.
        """
        lins = self.linears()
        first, rest = lins[0], lins[1:]
        m = self.mlp_dim
        w_gmf = self.out.weight[0, : self.gmf_dim]  # (g,)
        w_mlp = self.out.weight[0, self.gmf_dim :]  # (h,)
        user_gmf = self.gmf_user[users] * w_gmf  # (B, g)
        user_first = self.mlp_user[users] @ first.weight[:, :m].T  # (B, l1)
        item_first = self.mlp_item @ first.weight[:, m:].T + first.bias  # (I, l1)
        width = max(lin.out_features for lin in lins)
        n_users = users.numel()
        chunk = max(1, _SCORE_CHUNK_FLOATS // max(1, n_users * width))
        parts = []
        for start in range(0, self.n_items, chunk):
            sl = slice(start, start + chunk)
            h = torch.relu(user_first[:, None, :] + item_first[None, sl, :])  # (B, C, l1)
            for lin in rest:
                h = torch.relu(lin(h))  # (B, C, l_k)
            gmf = user_gmf @ self.gmf_item[sl].T  # (B, C)
            parts.append(gmf + h @ w_mlp + self.out.bias)  # (B, C)
        return torch.cat(parts, dim=1)  # (B, n_items)
