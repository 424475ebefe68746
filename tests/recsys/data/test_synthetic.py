import pytest
import torch

import recsys.data.synthetic as synthetic
from recsys.data.interactions import Interactions
from recsys.data.synthetic import synthetic_dataset, synthetic_interactions


def _check_valid(x: Interactions, n: int, min_per_user: int) -> None:
    assert len(x) == n
    assert torch.unique(x.pair_keys()).numel() == n
    assert int(x.user.min()) >= 0 and int(x.user.max()) < x.n_users
    assert int(x.item.min()) >= 0 and int(x.item.max()) < x.n_items
    assert int(x.user_counts().min()) >= min_per_user
    assert bool((x.ts[1:] > x.ts[:-1]).all())
    assert x.user.dtype == x.item.dtype == x.ts.dtype == torch.int64


def test_shape_uniqueness_minimum_and_time_order() -> None:
    x = synthetic_interactions(500, 300, 20_000, seed=0, min_per_user=7)
    _check_valid(x, 20_000, 7)
    assert (x.n_users, x.n_items) == (500, 300)


def test_deterministic_per_seed() -> None:
    a = synthetic_interactions(200, 100, 3000, seed=5)
    b = synthetic_interactions(200, 100, 3000, seed=5)
    c = synthetic_interactions(200, 100, 3000, seed=6)
    for f in ("user", "item", "ts", "value"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert a.digest() != c.digest()


def _top_share(counts: torch.Tensor, frac: float) -> float:
    top = torch.sort(counts, descending=True).values[: max(1, int(len(counts) * frac))]
    return float(top.sum()) / float(counts.sum())


def test_power_law_skew_and_its_absence_at_exponent_zero() -> None:
    skewed = synthetic_interactions(2000, 1000, 40_000, seed=0)
    flat = synthetic_interactions(2000, 1000, 40_000, seed=0, user_exponent=0, item_exponent=0)
    # uniform popularity would give the top 1% of items about 1% of the interactions
    assert _top_share(skewed.item_counts(), 0.01) > 0.10
    assert _top_share(flat.item_counts(), 0.01) < 0.03
    assert _top_share(skewed.user_counts(), 0.01) > 0.08
    assert int(flat.user_counts().max()) == int(flat.user_counts().min()) == 20


def test_no_user_exceeds_half_the_catalogue() -> None:
    x = synthetic_interactions(50, 40, 600, seed=2, user_exponent=2.0)
    assert int(x.user_counts().max()) <= 20
    _check_valid(x, 600, 5)


def test_users_left_short_by_rejection_finish_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic, "MAX_ROUNDS", 1)
    x = synthetic_interactions(400, 600, 12_000, seed=4, item_exponent=2.0)
    _check_valid(x, 12_000, 5)


def test_steep_popularity_still_fills_every_user() -> None:
    x = synthetic_interactions(300, 400, 9000, seed=1, user_exponent=0.5, item_exponent=3.0)
    _check_valid(x, 9000, 5)


@pytest.mark.parametrize(
    ("args", "match"),
    [((10, 10, 40), "n_interactions"), ((10, 10, 60), "n_interactions"), ((10, 0, 5), "positive")],
)
def test_impossible_sizes_are_rejected(args: tuple[int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthetic_interactions(*args, seed=0)


def test_dataset_has_identity_id_maps() -> None:
    ds = synthetic_dataset(30, 20, 200, seed=0)
    assert len(ds.user_ids) == 30 and len(ds.item_ids) == 20
    assert ds.user_ids.to_external(7) == "7"
    assert ds.item_ids.encode(ds.interactions.item).tolist() == ds.interactions.item.tolist()
    assert "seed=0" in ds.source
