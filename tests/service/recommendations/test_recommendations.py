"""GET /v1/users/{user}/recommendations: exclusions, immediate suppression, fallbacks, errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from recsys.checkpoint import load_checkpoint
from service.db.models import Interaction, Item, User
from tests.service.conftest import KeyMaker, add_interactions
from tests.service.recommendations.conftest import MAX_K, Live
from tests.service.recommendations.kit import ITEMS, USERS, Checkpoints, hold

USER = "u3"


def own_items(rows: list[tuple[str, str]], user: str) -> set[str]:
    return {i for u, i in rows if u == user}


def unmasked_top(ckpt: Checkpoints, user: str, k: int) -> list[str]:
    """The v1 model's top k for ``user`` with nothing excluded."""
    model: Any = load_checkpoint(ckpt.v1).model
    with torch.no_grad():
        scores = model.score_users(torch.tensor([USERS.index(user)]))[0]
    return [ITEMS[i] for i in torch.topk(scores, k).indices.tolist()]


def items_of(body: dict[str, Any]) -> list[str]:
    return [e["item"] for e in body["items"]]


def popularity(rows: list[tuple[str, str]]) -> list[tuple[str, float]]:
    counts = Counter(i for _, i in rows)
    return [(i, float(n)) for i, n in sorted(counts.items(), key=lambda p: (-p[1], p[0]))]


def test_model_list_excludes_the_users_own_items(live: Live, seeded: Checkpoints) -> None:
    own = own_items(seeded.rows, USER)
    # the test means something only if the unmasked model would show some of them
    assert own & set(unmasked_top(seeded, USER, 10))
    body: Any = live.recs(USER, k=10)
    assert body["user"] == USER and body["source"] == "model" and body["model_version"] == "v1"
    got = items_of(body)
    assert len(got) == 10 and not own & set(got)
    # exactly the model's best unseen items, best first, ranked 1..k
    expected = [i for i in unmasked_top(seeded, USER, len(ITEMS)) if i not in own][:10]
    assert got == expected
    scores = [e["score"] for e in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert [e["rank"] for e in body["items"]] == list(range(1, 11))


def test_default_k_is_20(live: Live) -> None:
    assert len(live.recs(USER)["items"]) == 20  # type: ignore[arg-type]


def test_held_item_from_the_top_list_disappears_at_once(
    live: Live, db: Session, seeded: Checkpoints
) -> None:
    before = items_of(live.recs(USER, k=5))
    top = before[0]
    hold(db, USER, [top])
    after = items_of(live.recs(USER, k=5))
    assert top not in after and after[:4] == before[1:]
    # only this user is affected
    other = next(u for u in USERS if u != USER and top in items_of(live.recs(u, k=MAX_K)))
    assert top in items_of(live.recs(other, k=MAX_K))


def test_deleted_interaction_stays_suppressed_although_the_model_remembers_it(
    live: Live, db: Session, seeded: Checkpoints
) -> None:
    # the user's own item the (not yet unlearned) model ranks highest
    remembered = next(
        i for i in unmasked_top(seeded, USER, 40) if i in own_items(seeded.rows, USER)
    )
    hold(db, USER, [remembered])  # no longer in interactions: only held_interactions hides it
    body: Any = live.recs(USER, k=MAX_K)
    assert body["source"] == "model" and remembered not in items_of(body)


def test_deleted_user_gets_the_popularity_list(
    live: Live, db: Session, seeded: Checkpoints
) -> None:
    own = sorted(own_items(seeded.rows, USER))
    hold(db, USER, own, whole_user=True)
    live.holder.clear_popular()
    body: Any = live.recs(USER, k=10)
    remaining = [(u, i) for u, i in seeded.rows if u != USER]
    assert body["source"] == "popularity" and body["model_version"] == "v1"
    assert [(e["item"], e["score"]) for e in body["items"]] == popularity(remaining)[:10]


def test_user_unknown_to_the_model_gets_popularity_minus_own_items(
    live: Live, db: Session, seeded: Checkpoints
) -> None:
    top3 = [i for i, _ in popularity(seeded.rows)[:3]]
    add_interactions_for_new_user(db, "newcomer", top3[:2])
    live.holder.clear_popular()
    body: Any = live.recs("newcomer", k=5)
    assert body["source"] == "popularity" and body["model_version"] == "v1"
    got = items_of(body)
    assert got[0] == top3[2] and not set(top3[:2]) & set(got) and len(got) == 5


def add_interactions_for_new_user(db: Session, user: str, items: list[str]) -> None:
    row = User(external_id=user)
    db.add(row)
    db.flush()
    for item in items:
        iid = db.scalar(select(Item.id).where(Item.external_id == item))
        db.add(Interaction(user_id=row.id, item_id=iid, value=1.0, ts=0))
    db.commit()


def test_without_a_model_everyone_gets_popularity(
    app: Any, db: Session, checkpoints: Checkpoints, make_key: KeyMaker
) -> None:
    add_interactions(db, checkpoints.rows)
    db.commit()
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get(
            f"/v1/users/{USER}/recommendations?k=3", headers=make_key("recommendations:read")
        )
    body = r.json()
    assert r.status_code == 200 and body["source"] == "popularity"
    assert body["model_version"] is None
    expected = [
        i for i, _ in popularity(checkpoints.rows) if i not in own_items(checkpoints.rows, USER)
    ]
    assert items_of(body) == expected[:3]


def test_unknown_user_is_404_naming_it(live: Live) -> None:
    r = live.client.get("/v1/users/nobody/recommendations", headers=live.reader)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "user_not_found" and "nobody" in error["message"]
    assert error["details"] == {"user": "nobody"}


def test_k_out_of_range_is_422_naming_k(live: Live) -> None:
    assert len(live.recs(USER, k=MAX_K)["items"]) == MAX_K  # type: ignore[arg-type]
    for k in ("0", str(MAX_K + 1), "-3", "many"):
        r = live.client.get(f"/v1/users/{USER}/recommendations?k={k}", headers=live.reader)
        assert r.status_code == 422, k
        error = r.json()["error"]
        assert error["code"] == "invalid_request" and "k" in error["message"], k
        assert [e["field"] for e in error["details"]["errors"]] == ["k"], k
    r = live.client.get(f"/v1/users/{USER}/recommendations?k={MAX_K + 1}", headers=live.reader)
    assert f"at most {MAX_K}" in r.json()["error"]["details"]["errors"][0]["problem"]


def test_needs_a_key_with_the_scope(live: Live, make_key: KeyMaker) -> None:
    url = f"/v1/users/{USER}/recommendations"
    r = live.client.get(url)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = live.client.get(url, headers=make_key("deletions:write"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert live.client.get(url, headers=make_key("admin")).status_code == 200


def test_k_bound_is_documented(live: Live) -> None:
    op = live.client.get("/openapi.json").json()["paths"]["/v1/users/{user}/recommendations"]
    k = next(p for p in op["get"]["parameters"] if p["name"] == "k")
    assert "max_k" in k["description"]
    assert {"401", "403", "404", "422"} <= set(op["get"]["responses"])


def test_the_deletion_endpoints_take_effect_on_the_next_get(
    live: Live, seeded: Checkpoints, make_key: KeyMaker
) -> None:
    writer = make_key("deletions:write")
    own = own_items(seeded.rows, USER)
    remembered = next(i for i in unmasked_top(seeded, USER, len(ITEMS)) if i in own)
    r = live.client.request(
        "DELETE", f"/v1/users/{USER}/interactions", json={"items": [remembered]}, headers=writer
    )
    assert r.status_code == 202, r.text
    body: Any = live.recs(USER, k=MAX_K)
    assert body["source"] == "model" and remembered not in items_of(body)
    assert live.client.delete(f"/v1/users/{USER}", headers=writer).status_code == 202
    assert live.recs(USER, k=3)["source"] == "popularity"
