"""The `eraser` command line: the ML core's commands plus the service's.

Service commands: migrate, import, train, keys (create, list, revoke) and serve. They read
Settings from the environment (DATABASE_URL, RTBF_*); --database-url overrides the database.
User errors (a bad path, an unknown scope, an unreachable database) print one line and exit
with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from recsys.checkpoint import CheckpointError
from recsys.cli import EXIT_USAGE, SubParsers, UsageError, build_parser, dispatch
from recsys.config import ProjectConfig, load_config
from recsys.data.errors import DataError
from recsys.demo import DEFAULT_DATASET
from service.auth.keys import SCOPES, check_scopes
from service.auth.service import any_admin_key, create_key, list_keys, revoke_key
from service.data_import import ImportReport, import_dataset
from service.db.models import ApiKey, Interaction, ModelVersion
from service.db.session import make_engine, make_sessionmaker, session_scope
from service.errors import AppError
from service.migrate import upgrade_to_head
from service.model_versions.service import get_active_version
from service.settings import Settings
from service.training import train_and_register

SERVICE_COMMANDS = ("migrate", "import", "train", "keys", "serve")
BOOTSTRAP_KEY_NAME = "bootstrap-admin"


def _common(p: argparse.ArgumentParser, *, progress: bool = False) -> None:
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL; overrides DATABASE_URL")
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="mf", choices=("mf", "neumf"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="project config TOML (default: RTBF_MODEL_CONFIG_FILE)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default)")


def add_service_commands(sub: SubParsers) -> None:
    """Add migrate, import, train, keys and serve to the core parser."""
    m = sub.add_parser("migrate", help="bring the database schema to the latest version")
    _common(m)

    i = sub.add_parser("import", help="import a ratings file into the database (idempotent)")
    i.add_argument("--dataset", type=Path, required=True, help="ratings file or directory")
    i.add_argument("--threshold", type=float, default=None, help="keep ratings >= this")
    _common(i, progress=True)

    t = sub.add_parser("train", help="train on the database and activate the new model version")
    _add_train_options(t)
    t.add_argument(
        "--if-missing", action="store_true", help="do nothing when a model version exists"
    )
    _common(t, progress=True)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create a key; prints it once")
    kc.add_argument("--name", required=True, help="who or what uses the key")
    kc.add_argument("--scopes", required=True, help=f"comma list of {','.join(SCOPES)}")
    _common(kc)
    _common(ksub.add_parser("list", help="list keys (never their secrets)"))
    kr = ksub.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id", metavar="ID", help="the key id, as `eraser keys list` shows it")
    _common(kr)

    s = sub.add_parser("serve", help="migrate, import and train if needed, then serve the HTTP API")
    s.add_argument("--host", default=None, help="default: RTBF_HOST or 127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="default: RTBF_PORT or 8000")
    s.add_argument(
        "--dataset",
        type=Path,
        default=DEFAULT_DATASET,
        help="imported when the database has no interactions (default: ml-latest-small)",
    )
    s.add_argument(
        "--no-bootstrap", action="store_true", help="only migrate: no import, training or key"
    )
    _add_train_options(s)
    _common(s, progress=True)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {} if args.database_url is None else {"database_url": args.database_url}
    return Settings(**overrides)


def _project_config(path: Path | None) -> ProjectConfig:
    try:
        return load_config(path)
    except ValueError as exc:  # unknown keys or sections, or TOML syntax
        raise UsageError(f"config {path}: {exc}") from None


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _database(settings: Settings, *, migrate: bool = True) -> Iterator[sessionmaker[Session]]:
    """A session factory on the settings' database, migrated to the latest schema first."""
    engine = make_engine(settings.database_url)  # also creates a SQLite file's directory
    try:
        if migrate:
            upgrade_to_head(settings.database_url)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def has_interactions(session: Session) -> bool:
    return session.scalar(select(Interaction.user_id).limit(1)) is not None


def latest_version(session: Session) -> str | None:
    """The active model version, else the newest one, else None."""
    active = get_active_version(session)
    if active is not None:
        return active.version
    stmt = select(ModelVersion.version).order_by(ModelVersion.created_at.desc()).limit(1)
    return session.scalars(stmt).first()


def _print_import(path: Path, rep: ImportReport) -> None:
    print(
        f"imported {path}: {rep.users_added:,} users, {rep.items_added:,} items, "
        f"{rep.interactions_added:,} interactions added; {rep.skipped_existing:,} already "
        f"stored, {rep.skipped_deleted:,} skipped as deleted ({rep.seconds:.1f} s)"
    )


def _print_trained(row: ModelVersion) -> None:
    m = row.metrics
    print(
        f"trained {row.model_kind} model version {row.version} (active) on "
        f"{m.get('interactions', 0):,} interactions: {m.get('epochs')} epochs, "
        f"{float(m.get('seconds', 0.0)):.1f} s, final loss {float(m.get('final_loss', 0.0)):.6g}"
    )


def _print_new_key(row: ApiKey, full: str) -> None:
    print(f"created API key {row.id} ({row.name}; scopes {','.join(row.scopes)}):")
    print(full)
    print("warning: this key is shown only now and cannot be recovered; store it safely")


@dataclass(frozen=True)
class BootstrapResult:
    """What ``bootstrap`` did: None where a step was not needed."""

    imported: ImportReport | None
    trained_version: str | None
    admin_key: str | None


def bootstrap(
    settings: Settings,
    dataset: Path,
    *,
    threshold: float | None = None,
    kind: str = "mf",
    seed: int = 0,
    config: ProjectConfig | None = None,
    device: str | None = None,
    progress: bool = True,
) -> BootstrapResult:
    """Migrate; import ``dataset`` if there are no interactions; train if there is no model
    version; create (and print) an admin key if no unrevoked one exists. Each step commits
    on its own, so a failed training keeps the finished import."""
    imported: ImportReport | None = None
    trained: str | None = None
    admin_key: str | None = None
    with _database(settings) as sessions:
        with session_scope(sessions) as session:
            if not has_interactions(session):
                print(f"the database has no interactions; importing {dataset}")
                imported = import_dataset(session, dataset, threshold=threshold, progress=progress)
                _print_import(dataset, imported)
        with session_scope(sessions) as session:
            if latest_version(session) is None:
                print(f"no model version yet; training {kind} (this can take a few minutes)")
                row = train_and_register(
                    session,
                    settings,
                    kind=kind,
                    seed=seed,
                    config=config or _project_config(settings.model_config_file),
                    device=device,
                    progress=progress,
                )
                trained = row.version
                _print_trained(row)
        with session_scope(sessions) as session:
            if not any_admin_key(session):
                row_key, admin_key = create_key(session, BOOTSTRAP_KEY_NAME, ["admin"])
                _print_new_key(row_key, admin_key)
    return BootstrapResult(imported, trained, admin_key)


def _cmd_migrate(settings: Settings) -> int:
    upgrade_to_head(settings.database_url)
    print(f"database {_shown_url(settings.database_url)} is at the latest schema")
    return 0


def _cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    with _database(settings) as sessions, session_scope(sessions) as session:
        rep = import_dataset(
            session, args.dataset, threshold=args.threshold, progress=not args.no_progress
        )
    _print_import(args.dataset, rep)
    return 0


def _cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    cfg = _project_config(args.config or settings.model_config_file)
    with _database(settings) as sessions, session_scope(sessions) as session:
        existing = latest_version(session) if args.if_missing else None
        if existing is not None:
            print(f"model version {existing} exists; nothing to do (--if-missing)")
            return 0
        row = train_and_register(
            session,
            settings,
            kind=args.model,
            seed=args.seed,
            config=cfg,
            device=args.device,
            progress=not args.no_progress,
        )
    _print_trained(row)
    if settings.redis_url:  # replicas that follow Redis switch only on a publish
        from service.hotswap.publisher import RedisPublisher

        RedisPublisher(settings.redis_url, settings.redis_prefix).publish(row)
        print(f"published {row.version} to every replica through Redis")
    return 0


def _scope_list(text: str) -> list[str]:
    try:
        return check_scopes([p.strip() for p in text.split(",") if p.strip()])
    except ValueError as exc:
        raise UsageError(f"--scopes: {exc}") from None


def _cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    scopes = _scope_list(args.scopes) if args.keys_command == "create" else []
    with _database(settings) as sessions, session_scope(sessions) as session:
        if args.keys_command == "create":
            row, full = create_key(session, args.name, scopes)
            _print_new_key(row, full)
        elif args.keys_command == "list":
            _print_keys(list_keys(session))
        else:
            row = revoke_key(session, args.key_id)
            print(f"revoked API key {row.id} ({row.name}) at {row.revoked_at:%Y-%m-%d %H:%M:%S}")
    return 0


def _print_keys(rows: list[ApiKey]) -> None:
    if not rows:
        print("no API keys; create one with `eraser keys create --name NAME --scopes admin`")
        return
    table = [("ID", "NAME", "SCOPES", "CREATED", "REVOKED")]
    for r in rows:
        revoked = "-" if r.revoked_at is None else f"{r.revoked_at:%Y-%m-%d %H:%M:%S}"
        table.append(
            (r.id, r.name, ",".join(r.scopes), f"{r.created_at:%Y-%m-%d %H:%M:%S}", revoked)
        )
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    if args.no_bootstrap:
        upgrade_to_head(settings.database_url)
    else:
        bootstrap(
            settings,
            args.dataset,
            kind=args.model,
            seed=args.seed,
            config=_project_config(args.config or settings.model_config_file),
            device=args.device,
            progress=not args.no_progress,
        )
    app = create_app(settings)
    base = _base_url(host, port)
    print(f"API docs: {base}/docs")
    print(f"dashboard: {base}/dashboard (user name: anything, password: an admin API key)")
    if settings.log_json:
        # uvicorn's loggers propagate to the JSON root handler create_app installed; the
        # middleware writes the access line (route template, no raw path)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    else:
        uvicorn.run(app, host=host, port=port)
    return 0


def run_service_command(args: argparse.Namespace) -> int:
    """Run one of SERVICE_COMMANDS."""
    settings = _settings(args)
    if args.command == "migrate":
        return _cmd_migrate(settings)
    if args.command == "import":
        return _cmd_import(settings, args)
    if args.command == "train":
        return _cmd_train(settings, args)
    if args.command == "keys":
        return _cmd_keys(settings, args)
    return _cmd_serve(settings, args)


def _db_error(exc: OperationalError, args: argparse.Namespace) -> str:
    url = getattr(args, "database_url", None)
    try:
        url = url or Settings().database_url
        where = f" at {_shown_url(url)}"
    except (ValidationError, ValueError):
        where = ""
    # the driver's first line says why (refused, unknown host, locked); the rest is SQL noise
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    return f"cannot use the database{where} ({reason}); check DATABASE_URL or --database-url"


def main(argv: Sequence[str] | None = None) -> int:
    """The `eraser` console script."""
    args = build_parser(add_service_commands, description=__doc__).parse_args(argv)
    try:
        if args.command in SERVICE_COMMANDS:
            return run_service_command(args)
        return dispatch(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        message = str(first.get("msg", exc)).removeprefix("Value error, ")
        print(f"eraser: error: {field}: {message}", file=sys.stderr)
    except OperationalError as exc:
        print(f"eraser: error: {_db_error(exc, args)}", file=sys.stderr)
    except (UsageError, DataError, CheckpointError, AppError) as exc:
        print(f"eraser: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
