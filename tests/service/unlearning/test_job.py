"""run_job on a tiny trained MF: the deletions are unlearned, verified, published, completed."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import func, select, update

from recsys.checkpoint import load_checkpoint
from recsys.config import MFConfig, load_config
from recsys.models.mf import MF
from service.db.models import HeldInteraction, ModelVersion, UnlearningJob, User
from service.model_versions.service import activate_version, register_version
from service.unlearning.batcher import claim_batch
from service.unlearning.job import _objective_config, fail_job_permanently, run_job
from tests.service.conftest import add_interactions
from tests.service.unlearning.conftest import RecordingPublisher, World, requests_by_id

PHASES = {"load", "unlearn", "verify", "save", "publish", "complete"}


def _claim(world: World) -> uuid.UUID:
    with world.backend.sessions() as s:
        job = claim_batch(s, max_requests=100)
        s.commit()
    assert job is not None
    return job.id


def _run(world: World, job_id: uuid.UUID, publish: RecordingPublisher) -> UnlearningJob:
    return run_job(
        world.backend.sessions, world.settings, job_id, publish=publish, worker_id="test-worker"
    )


def _mf(path: str | Path) -> MF:
    model = load_checkpoint(path).model
    assert isinstance(model, MF)
    return model


def _mean_rank(model: MF, user: int, items: list[int]) -> float:
    """Mean 1-based rank of ``items`` in the user's full score list."""
    scores = model.score_users(torch.tensor([user]))[0].detach()
    return float(np.mean([1 + int((scores > scores[i]).sum()) for i in items]))


def _held_count(world: World) -> int:
    with world.backend.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(HeldInteraction)) or 0)


def test_run_job_unlearns_publishes_and_completes_the_requests(world: World) -> None:
    a, b, c = "u3", "u7", "u11"
    gone = {a: world.items_of(a)[:3], b: world.items_of(b)[:2]}
    rid = {u: world.delete_items(u, items) for u, items in gone.items()}
    with world.backend.sessions() as s:  # imported after training: the model cannot express it
        add_interactions(s, [("late-user", "late-item")])
        s.commit()
    job_id = _claim(world)
    late = world.delete_items(c, world.items_of(c)[:1])  # accepted after the claim
    publisher = RecordingPublisher()
    job = _run(world, job_id, publisher)

    assert job.status == "completed" and job.attempts == 1 and job.worker_id == "test-worker"
    assert job.base_version == "v1" and job.produced_version is not None
    assert job.produced_version.startswith("unlearned-") and job.finished_at is not None
    assert publisher.calls == [job.produced_version]  # published exactly once
    assert set(job.timings) == PHASES and all(v >= 0 for v in job.timings.values())
    m = job.metrics
    assert (m["requests"], m["job_pairs"], m["deleted_pairs"]) == (2, 5, 6)  # 6: the late one too
    assert m["rows_not_expressible"] == {"interactions": 1, "held": 0}
    assert m["digest_match"] and m["train_digest_base"] == m["train_digest_data"]
    assert m["alteraser"]["rounds"] >= 1 and m["alteraser"]["converged"]
    v = m["verify"]
    assert v["pairs"] == 6 and v["users"] == 3 and v["k"] == 20
    assert v["mean_rank_after"] > v["mean_rank_before"]
    assert v["exposure_after"] <= v["exposure_before"]

    with world.backend.sessions() as s:
        reqs = requests_by_id(s)
        for user, items in gone.items():
            r = reqs[rid[user]]
            assert r.status == "completed" and r.model_version == job.produced_version
            assert r.items is None and r.item_count == len(items) and len(r.items_sha256) == 64
            assert r.completed_at is not None
        assert reqs[late].status == "pending" and reqs[late].items is not None
        held = list(s.scalars(select(HeldInteraction.request_id)))
        assert held == [uuid.UUID(late)]  # the job's rows purged, the late request's kept
        new = s.get(ModelVersion, job.produced_version)
        old = s.get(ModelVersion, "v1")
        assert new is not None and old is not None
        assert new.active and not old.active and new.published_at is not None
        assert new.kind == "unlearned" and new.parent_version == "v1"
        assert new.metrics["job_id"] == str(job_id)
    assert Path(new.location).parent == Path(world.settings.model_dir).resolve()
    assert [p.name for p in Path(world.settings.model_dir).iterdir()] == [new.version]

    # independently of the job's own metrics: the deleted items fell for every affected user
    before, after = _mf(world.ckpt.v1), _mf(new.location)
    ckpt = load_checkpoint(new.location)
    assert ckpt.user_ids is not None and ckpt.item_ids is not None
    for user, items in gone.items():
        u = ckpt.user_ids.to_dense(user)
        dense = [ckpt.item_ids.to_dense(i) for i in items]
        assert _mean_rank(after, u, dense) > _mean_rank(before, u, dense), user


def test_a_crash_after_registering_resumes_without_a_second_version(world: World) -> None:
    rids = [world.delete_items("u2", world.items_of("u2")[:2]), world.delete_user("u5")]
    job_id = _claim(world)
    publisher = RecordingPublisher(fail_first=ConnectionError("redis went away\nmid-publish"))
    with pytest.raises(ConnectionError):
        _run(world, job_id, publisher)
    with world.backend.sessions() as s:
        job = s.get(UnlearningJob, job_id)
        assert job is not None and job.status == "failed" and job.produced_version is not None
        assert job.error == "ConnectionError: redis went away mid-publish"
        assert {r.status for r in requests_by_id(s).values()} == {"in_progress"}
        produced = job.produced_version
    assert _held_count(world) > 0

    done = _run(world, job_id, publisher)
    assert done.status == "completed" and done.attempts == 2
    assert done.produced_version == produced and publisher.calls == [produced, produced]
    with world.backend.sessions() as s:
        n = s.scalar(
            select(func.count()).select_from(ModelVersion).where(ModelVersion.kind != "trained")
        )
        assert n == 1
        reqs = requests_by_id(s)
        assert {reqs[r].status for r in rids} == {"completed"}
        assert {reqs[r].model_version for r in rids} == {produced}
        stamps = {r: reqs[r].completed_at for r in rids}
    assert _held_count(world) == 0

    again = _run(world, job_id, publisher)  # a completed job is returned untouched
    assert again.attempts == 2 and publisher.calls == [produced, produced]
    with world.backend.sessions() as s:
        assert {r: requests_by_id(s)[r].completed_at for r in rids} == stamps


class Killed(BaseException):
    """The worker process dying: nothing gets the chance to record a failure."""


def test_a_killed_worker_leaves_a_job_that_resumes(world: World) -> None:
    rid = world.delete_items("u4", world.items_of("u4")[:1])
    job_id = _claim(world)
    with pytest.raises(Killed):
        _run(world, job_id, RecordingPublisher(fail_first=Killed()))
    with world.backend.sessions() as s:
        job = s.get(UnlearningJob, job_id)
        assert job is not None and job.status == "running" and job.produced_version
    publisher = RecordingPublisher()
    done = _run(world, job_id, publisher)
    assert done.status == "completed" and publisher.calls == [done.produced_version]
    with world.backend.sessions() as s:
        assert requests_by_id(s)[rid].status == "completed"
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 2


def test_a_version_superseded_before_publishing_is_not_published(world: World) -> None:
    """Republishing an older version would roll serving back past newer deletions."""
    world.delete_items("u6", world.items_of("u6")[:1])
    job_id = _claim(world)
    with pytest.raises(ConnectionError):
        _run(world, job_id, RecordingPublisher(fail_first=ConnectionError("down")))
    with world.backend.sessions() as s:
        register_version(s, world.ckpt.v2, version="v2", origin="retrained", activate=True)
        s.commit()
    publisher = RecordingPublisher()
    done = _run(world, job_id, publisher)
    assert done.status == "completed" and publisher.calls == []
    assert done.metrics["superseded_by"] == "v2"


def test_whole_user_deletion_leaves_the_row_a_retrain_would(world: World) -> None:
    """With no data left, the MF optimum of a user's row is zero: every score is 0."""
    world.delete_user("u9")
    world.delete_items("u1", world.items_of("u1")[:1])
    done = _run(world, _claim(world), RecordingPublisher())
    assert done.metrics["deleted_users"] == 1 and done.metrics["verify"]["users"] == 1
    with world.backend.sessions() as s:
        new = s.get(ModelVersion, done.produced_version)
        assert new is not None
        user = s.scalars(select(User).where(User.external_id == "u9")).one()
        assert user.deleted_at is not None
    ckpt = load_checkpoint(new.location)
    assert ckpt.user_ids is not None and isinstance(ckpt.model, MF)
    row = ckpt.model.user_emb.detach()[ckpt.user_ids.to_dense("u9")]
    assert float(row.abs().max()) == 0.0
    before = _mf(world.ckpt.v1).user_emb.detach()[ckpt.user_ids.to_dense("u9")]
    assert float(before.abs().max()) > 0.0  # it did hold something before


def test_no_active_version_fails_the_job_with_the_reason(world: World) -> None:
    with world.backend.sessions() as s:
        s.execute(update(ModelVersion).values(active=False))
        s.commit()
    rid = world.delete_items("u8", world.items_of("u8")[:1])
    job_id = _claim(world)
    for attempt in (1, 2):  # a failed job is retried, attempts counting
        with pytest.raises(Exception, match="no active model version; run eraser train"):
            _run(world, job_id, RecordingPublisher())
        with world.backend.sessions() as s:
            job = s.get(UnlearningJob, job_id)
            assert job is not None and job.status == "failed" and job.attempts == attempt
            assert job.error is not None and "no active model version" in job.error
            assert requests_by_id(s)[rid].status == "in_progress"
    with world.backend.sessions() as s:
        job = s.get(UnlearningJob, job_id)
        assert job is not None
        fail_job_permanently(s, job, "gave up after 2 attempts:\nno model")
        s.commit()
    publisher = RecordingPublisher()
    gave_up = _run(world, job_id, publisher)  # given up for good: not run again
    assert gave_up.status == "failed" and gave_up.attempts == 2 and publisher.calls == []
    with world.backend.sessions() as s:
        r = requests_by_id(s)[rid]
        assert r.status == "failed" and r.failure_reason == "gave up after 2 attempts: no model"
        assert r.failed_at is not None
    assert not list(Path(world.settings.model_dir).glob("*"))  # no version, no staging left


def test_a_base_replaced_while_unlearning_is_not_overwritten(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs from the same base: the second to register would drop the first's deletions."""
    import service.unlearning.job as job_module

    real = job_module.unlearn_checkpoint

    def racing(*args: object, **kw: object) -> object:
        report = real(*args, **kw)  # type: ignore[arg-type]
        with world.backend.sessions() as s:  # meanwhile another version became active
            register_version(s, world.ckpt.v2, version="v2", origin="retrained")
            activate_version(s, "v2")
            s.commit()
        return report

    world.delete_items("u12", world.items_of("u12")[:1])
    job_id = _claim(world)
    monkeypatch.setattr(job_module, "unlearn_checkpoint", racing)
    with pytest.raises(Exception, match="changed from v1 to v2"):
        _run(world, job_id, RecordingPublisher())
    assert not list(Path(world.settings.model_dir).glob("*"))  # nothing half-registered
    monkeypatch.setattr(job_module, "unlearn_checkpoint", real)
    done = _run(world, job_id, RecordingPublisher())
    assert done.status == "completed" and done.base_version == "v2"
    with world.backend.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 3  # v1, v2, new


def test_the_objective_comes_from_the_checkpoint_not_the_config_file(world: World) -> None:
    cfg = load_config(world.settings.model_config_file)
    assert cfg.mf.w0 == 1.0 and cfg.mf.dim == 64  # the file's [mf] section differs
    meta = load_checkpoint(world.ckpt.v1).meta
    got = _objective_config(cfg, meta)
    assert got.mf == MFConfig(dim=8, l2=0.1, w0=0.05, c=1.0, init_std=0.1)
    assert got.unlearn == cfg.unlearn and got.train == cfg.train  # the rest is the file's
