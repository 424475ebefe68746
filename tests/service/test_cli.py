"""`eraser` service commands in-process on a SQLite file: migrate, import, train, keys,
the serve bootstrap, and one-line errors with exit status 2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from service.auth.service import KeyCache, authenticate
from service.cli import BOOTSTRAP_KEY_NAME, bootstrap, main
from service.db.models import ApiKey, Interaction, ModelVersion
from service.db.session import make_engine, make_sessionmaker
from service.errors import Unauthorized
from service.settings import Settings

TINY_CONFIG = "[mf]\ndim = 4\nl2 = 0.1\nw0 = 0.1\n[train]\nmax_epochs = 15\n"
KEY_RE = re.compile(r"^rtbf_[0-9a-f]{12}\.\S+$", re.MULTILINE)


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite URL; models and the tiny training config go under tmp_path."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    monkeypatch.setenv("RTBF_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RTBF_MODEL_CONFIG_FILE", str(config))
    return f"sqlite:///{tmp_path}/cli.sqlite3"


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    """12 users x 10 items, 4 rows each (generic CSV)."""
    lines = ["user,item,rating,timestamp"]
    for u in range(12):
        for k in range(4):
            lines.append(f"user{u},item{(u * 3 + k) % 10},{1 + (u + k) % 5},{100 + 4 * u + k}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def session(url: str) -> Iterator[Session]:
    """A session on the CLI's database (open it after the command created the schema)."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_migrate_import_and_train_if_missing(
    url: str, ratings: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _run(capsys, "migrate", "--database-url", url)[0] == 0
    engine = make_engine(url)
    assert {"users", "interactions", "model_versions"} <= set(inspect(engine).get_table_names())
    engine.dispose()

    imp = ("import", "--dataset", str(ratings), "--database-url", url, "--no-progress")
    code, out, _ = _run(capsys, *imp)
    assert code == 0 and "12 users, 10 items, 48 interactions added" in out
    code, out, _ = _run(capsys, *imp)
    assert code == 0 and "0 interactions added; 48 already stored" in out

    train = ("train", "--if-missing", "--database-url", url, "--no-progress", "--device", "cpu")
    code, out, _ = _run(capsys, *train)
    assert code == 0 and "trained mf model version trained-" in out
    code, out, _ = _run(capsys, *train)
    assert code == 0 and "nothing to do" in out
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        versions = list(s.scalars(select(ModelVersion)))
        assert len(versions) == 1 and versions[0].active
        assert Path(versions[0].location).parent == (tmp_path / "models").resolve()
        assert len(list(s.scalars(select(Interaction)))) == 48
    engine.dispose()


def test_train_on_an_empty_database_says_to_import(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "train", "--database-url", url, "--no-progress")
    assert code == 2 and out == ""
    assert err.startswith("eraser: error:") and "eraser import" in err
    assert len(err.strip().splitlines()) == 1


def test_keys_create_list_revoke(
    url: str, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "keys", "create", "--name", "shop", "--scopes",
        "deletions:write,recommendations:read", "--database-url", url,
    )  # fmt: skip
    assert code == 0 and "not be recovered" in out
    keys = KEY_RE.findall(out)
    assert len(keys) == 1
    principal = authenticate(session, f"Bearer {keys[0]}", KeyCache(0))
    assert principal.name == "shop"
    assert principal.scopes == {"deletions:write", "recommendations:read"}

    code, out, _ = _run(capsys, "keys", "list", "--database-url", url)
    row = session.scalars(select(ApiKey)).one()
    assert code == 0 and row.id in out and "shop" in out
    assert "deletions:write,recommendations:read" in out
    assert row.secret_hash not in out and keys[0].split(".", 1)[1] not in out

    code, out, _ = _run(capsys, "keys", "revoke", row.id, "--database-url", url)
    assert code == 0 and f"revoked API key {row.id}" in out
    session.expire_all()
    with pytest.raises(Unauthorized):
        authenticate(session, f"Bearer {keys[0]}", KeyCache(0))
    code, out, _ = _run(capsys, "keys", "list", "--database-url", url)
    line = next(x for x in out.splitlines() if x.startswith(row.id))
    assert code == 0 and not line.endswith("-")  # the REVOKED column has a date now

    code, _, err = _run(capsys, "keys", "revoke", "000000000000", "--database-url", url)
    assert code == 2 and "000000000000" in err


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["import", "--dataset", "/nonexistent/ratings.csv"], ["/nonexistent/ratings.csv"]),
        (
            ["keys", "create", "--name", "x", "--scopes", "deletions:write,root"],
            ["'root'", "deletions:write, recommendations:read, admin"],
        ),
        (["bench-table", "--json", "/nonexistent/bench.json"], ["/nonexistent/bench.json"]),
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], needles: list[str], url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [] if argv[0] == "bench-table" else ["--database-url", url]  # core command too
    code, _, err = _run(capsys, *argv, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("eraser: error:") and all(n in err for n in needles)


def test_unreachable_database_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://someone:secret@127.0.0.1:1/nowhere"
    code, _, err = _run(capsys, "keys", "list", "--database-url", url)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot use the database" in err and "127.0.0.1:1" in err and "secret" not in err


def test_bootstrap_imports_trains_and_prints_one_admin_key(
    url: str, ratings: Path, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=url)
    first = bootstrap(settings, ratings, device="cpu", progress=False)
    out = capsys.readouterr().out
    assert first.imported is not None and first.imported.interactions_added == 48
    assert first.trained_version is not None and first.admin_key is not None
    assert KEY_RE.findall(out) == [first.admin_key]
    principal = authenticate(session, f"Bearer {first.admin_key}", KeyCache(0))
    assert principal.name == BOOTSTRAP_KEY_NAME and principal.scopes == {"admin"}

    second = bootstrap(settings, ratings, device="cpu", progress=False)
    out = capsys.readouterr().out
    assert (second.imported, second.trained_version, second.admin_key) == (None, None, None)
    assert not KEY_RE.findall(out)
    assert len(list(session.scalars(select(ModelVersion)))) == 1
    assert len(list(session.scalars(select(ApiKey)))) == 1


def test_bootstrap_with_no_data_and_no_dataset_exits_2(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "serve", "--database-url", url, "--dataset", str(tmp_path / "missing"),
    )  # fmt: skip
    assert code == 2 and str(tmp_path / "missing") in err


def test_train_publishes_through_redis_when_configured(
    url: str, ratings: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import redis

    prefix = f"test-cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("RTBF_REDIS_PREFIX", prefix)
    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    try:
        _run(capsys, "import", "--dataset", str(ratings), "--database-url", url, "--no-progress")
        code, out, _ = _run(capsys, "train", "--database-url", url, "--no-progress")
        assert code == 0 and "published" in out
        current = client.get(f"{prefix}:model:current")
        assert isinstance(current, str) and current in out
        assert client.exists(f"{prefix}:model:{current}")
    finally:
        for k in client.scan_iter(f"{prefix}:*"):
            client.delete(k)
