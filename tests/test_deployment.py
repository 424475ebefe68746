"""Offline checks of the deployment files (Dockerfile, docker-compose.yml) against the code.

No Docker engine is needed: the files are parsed and every program, subcommand, queue,
environment variable and copied path they name is checked against the project, so a
renamed Settings field, CLI subcommand, queue or module fails here.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from fastapi import FastAPI

from recsys.cli import build_parser
from service.cli import add_service_commands
from service.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_NAME = re.compile(r"^(RTBF_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)$")
ENV_IN_TEXT = re.compile(r"\b(RTBF_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)\b")


# ---------------------------------------------------------------- helpers
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict) and services, "docker-compose.yml has no services"
    return services


def _commands(service: dict[str, Any]) -> list[list[str]]:
    """The service's command as argv lists; `sh -c "a && b"` gives one list per part."""
    cmd = service.get("command")
    if cmd is None:
        return []
    argv = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    if argv[:2] == ["sh", "-c"] or argv[:2] == ["/bin/sh", "-c"]:
        script = " ".join(argv[2:])
        return [shlex.split(part) for part in re.split(r"&&|;|\|\|", script) if part.strip()]
    return [argv]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _settings_env_names() -> set[str]:
    """Every environment variable Settings reads: RTBF_<FIELD> and each alias."""
    names: set[str] = set()
    prefix = str(Settings.model_config.get("env_prefix", ""))
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices is not None:
            names.update(str(c).upper() for c in choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def _dockerfile_lines() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text()
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _instructions(keyword: str) -> list[str]:
    return [
        line.split(None, 1)[1] if " " in line else ""
        for line in _dockerfile_lines()
        if line.split(None, 1)[0].upper() == keyword
    ]


def _stages() -> list[list[str]]:
    """The Dockerfile's stages, each a list of its instructions (FROM first)."""
    stages: list[list[str]] = []
    for line in _dockerfile_lines():
        if line.split(None, 1)[0].upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _eraser_parser() -> argparse.ArgumentParser:
    return build_parser(add_service_commands)


# ---------------------------------------------------------------- compose
def test_compose_loads_with_the_expected_services() -> None:
    services = _services()
    expected = {"postgres", "redis", "migrate", "api", "worker-gpu", "worker-cpu", "batcher"}
    assert expected | {"beat"} <= set(services), sorted(services)
    assert _compose().get("volumes"), "named volumes (database, model storage) are declared"


def test_compose_programs_exist_in_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every command names something the project provides, with valid arguments."""
    seen: set[str] = set()
    for name, svc in _services().items():
        for argv in _commands(svc):
            assert argv, f"{name}: empty command"
            program = argv[0]
            seen.add(program)
            if program == "uvicorn":
                _check_uvicorn(name, argv, monkeypatch, tmp_path)
            elif program == "celery":
                _check_celery(name, argv)
            elif program == "eraser":
                _check_eraser(name, argv)
            else:
                pytest.fail(f"service {name}: unknown program {program!r} in {argv}")
    assert {"uvicorn", "celery", "eraser"} <= seen


def _check_uvicorn(
    service: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> None:
    target = next(a for a in argv[1:] if not a.startswith("-") and ":" in a)
    module_name, attr = target.split(":", 1)
    module = importlib.import_module(module_name)
    # service.app builds its app from the environment on first access: point it at a
    # throwaway SQLite file (nothing is started: the lifespan does not run)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp / 'rtbf.sqlite3'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        app = getattr(module, attr)
    finally:
        get_settings.cache_clear()
    assert isinstance(app, FastAPI), f"{service}: {target} is not a FastAPI app"


def _option(argv: list[str], *flags: str) -> str | None:
    for k, arg in enumerate(argv):
        if arg in flags and k + 1 < len(argv):
            return argv[k + 1]
        for flag in flags:
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def _check_celery(service: str, argv: list[str]) -> None:
    target = _option(argv, "-A", "--app")
    assert target, f"{service}: celery without -A"
    module = importlib.import_module(target.split(":", 1)[0])
    app = getattr(module, target.split(":", 1)[1] if ":" in target else "app", None)
    assert isinstance(app, Celery), f"{service}: {target} has no Celery `app`"
    sub = [a for a in argv[1:] if a in ("worker", "beat")]
    assert sub, f"{service}: celery needs `worker` or `beat`: {argv}"
    queues = _option(argv, "-Q", "--queues")
    if queues is not None:
        known = {app.conf.task_default_queue} | {
            route["queue"] for route in (app.conf.task_routes or {}).values()
        }
        for queue in queues.split(","):
            assert queue in known, f"{service}: queue {queue!r} is not one of {sorted(known)}"


def _check_eraser(service: str, argv: list[str]) -> None:
    parser = _eraser_parser()
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{service}: `{shlex.join(argv)}` is not a valid eraser command")
    dataset = getattr(args, "dataset", None)
    if dataset is not None and not Path(dataset).is_absolute():
        assert (ROOT / dataset).exists(), f"{service}: dataset {dataset} is not in the repo"


def test_compose_uses_the_documented_commands() -> None:
    services = _services()
    assert _commands(services["migrate"]) == [["eraser", "migrate"]]
    api = _commands(services["api"])[0]
    assert api[:2] == ["uvicorn", "service.app:app"]
    for name, queue in (("worker-gpu", "unlearning"), ("worker-cpu", "unlearning")):
        argv = _commands(services[name])[0]
        assert "worker" in argv and _option(argv, "-Q") == queue, name
        assert _option(argv, "-c", "--concurrency") == "1", f"{name}: one job per device"
    assert _option(_commands(services["batcher"])[0], "-Q") == "default"
    assert "beat" in _commands(services["beat"])[0]


def test_compose_environment_names_are_settings_fields() -> None:
    known = _settings_env_names()
    for name, svc in _services().items():
        for var in _environment(svc):
            if ENV_NAME.match(var):
                assert var in known, f"service {name}: {var} is not a Settings field"


def test_every_app_service_gets_database_redis_and_model_storage() -> None:
    services = _services()
    model_dir_vars = [
        _environment(svc).get("RTBF_MODEL_DIR")
        for name, svc in services.items()
        if name not in ("postgres", "redis")
    ]
    for name, svc in services.items():
        if name in ("postgres", "redis"):
            continue
        env = _environment(svc)
        assert "DATABASE_URL" in env and "REDIS_URL" in env, name
        model_dir = env.get("RTBF_MODEL_DIR")
        assert model_dir, f"{name}: RTBF_MODEL_DIR"
        mounts = [str(v) for v in svc.get("volumes") or []]
        named = [m for m in mounts if m.split(":")[1:2] == [model_dir]]
        assert named, f"{name}: nothing mounted at RTBF_MODEL_DIR {model_dir}"
        volume = named[0].split(":")[0]
        assert volume in (_compose().get("volumes") or {}), f"{name}: {volume} is not named"
    assert len(set(model_dir_vars)) == 1, "every service sees the models at the same path"


def test_depends_on_targets_exist() -> None:
    services = _services()
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for target in deps if isinstance(deps, (list, dict)) else []:
            assert target in services, f"{name} depends on unknown service {target}"


def test_postgres_and_redis_have_healthchecks() -> None:
    services = _services()
    pg, redis = services["postgres"], services["redis"]
    assert str(pg["image"]).startswith("postgres:16")
    assert "pg_isready" in " ".join(map(str, pg["healthcheck"]["test"]))
    assert "redis-cli" in " ".join(map(str, redis["healthcheck"]["test"]))
    assert "ping" in " ".join(map(str, redis["healthcheck"]["test"]))


def _completed(svc: dict[str, Any], target: str) -> bool:
    deps = svc.get("depends_on") or {}
    return (
        isinstance(deps, dict)
        and (deps.get(target) or {}).get("condition") == "service_completed_successfully"
    )


def test_nothing_touching_the_database_starts_before_migrations() -> None:
    services = _services()
    assert _completed(services["api"], "migrate"), "the api waits for the migrations"
    for name, svc in services.items():
        if name in ("postgres", "redis", "migrate"):
            continue
        assert _completed(svc, "migrate"), f"{name} may start before the migrations"
    migrate = services["migrate"]
    assert (migrate["depends_on"]["postgres"] or {}).get("condition") == "service_healthy"


def test_api_replicas_do_not_share_a_fixed_host_port() -> None:
    api = _services()["api"]
    replicas = int(api["deploy"]["replicas"])
    assert replicas >= 2
    for port in api.get("ports") or []:
        host = str(port).rsplit(":", 1)[0]
        if "-" in host:
            lo, hi = (int(p) for p in host.split(":")[-1].split("-"))
            assert hi - lo + 1 >= replicas, f"host port range {host} < {replicas} replicas"
        else:
            pytest.fail(f"fixed host port {port} with {replicas} replicas would conflict")


def test_gpu_worker_reserves_a_gpu_and_the_cpu_worker_is_a_profile() -> None:
    services = _services()
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert _environment(gpu)["RTBF_WORKER_DEVICE"] == "cuda"
    assert gpu["build"]["args"]["VARIANT"] == "cuda"
    assert services["worker-cpu"]["profiles"] == ["cpu"]


# ---------------------------------------------------------------- Dockerfile
def test_dockerfile_is_multi_stage_with_a_non_root_user() -> None:
    stages = _stages()
    assert len(stages) >= 2, "builder + runtime stages"
    users = [line.split(None, 1)[1] for line in stages[-1] if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    copies_from = [line for line in stages[-1] if line.upper().startswith("COPY --FROM=")]
    assert copies_from, "the runtime stage copies the builder's venv"


def test_dockerfile_variant_arg_has_cpu_and_cuda_branches() -> None:
    args = _instructions("ARG")
    assert any(a.replace(" ", "") == "VARIANT=cpu" for a in args), args
    text = " ".join(_dockerfile_lines())
    assert "download.pytorch.org/whl/cpu" in text
    assert "download.pytorch.org/whl/cu128" in text
    pinned = re.search(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned, "pyproject pins torch"
    assert text.count(f"torch=={pinned.group(1)}") >= 2, "both branches install the pinned torch"


def test_dockerfile_copy_sources_exist() -> None:
    checked = 0
    for args in _instructions("COPY") + _instructions("ADD"):
        parts = shlex.split(args)
        if any(p.startswith("--from=") for p in parts):
            continue
        sources = [p for p in parts if not p.startswith("--")][:-1]
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            checked += 1
    copied = {
        Path(p).parts[0]
        for a in _instructions("COPY")
        for p in shlex.split(a)[:-1]
        if not p.startswith("--")
    }
    for needed in ("recsys", "service", "workers", "data", "configs", "migrations"):
        assert needed in copied, f"the image lacks {needed}/"
    assert "alembic.ini" in copied
    assert checked


def test_dockerfile_env_names_are_settings_fields() -> None:
    known = _settings_env_names()
    for line in _instructions("ENV") + _instructions("ARG"):
        for var in ENV_IN_TEXT.findall(line):
            assert var in known, f"Dockerfile: {var} is not a Settings field"


def test_dockerfile_runs_the_api_and_checks_healthz() -> None:
    lines = _dockerfile_lines()
    assert any(line.upper() == "EXPOSE 8000" for line in lines)
    health = _instructions("HEALTHCHECK")
    assert health and "/healthz" in health[0]
    from service.health import router

    assert "/healthz" in {getattr(r, "path", None) for r in router.routes}
    cmd = _instructions("CMD")[-1]
    assert shlex.split(cmd.replace(",", " ").strip("[]").replace('"', "")) == shlex.split(
        "uvicorn service.app:app --host 0.0.0.0 --port 8000"
    )


def test_dockerfile_runs_the_source_tree_it_copies() -> None:
    """service/migrate.py finds migrations/ next to the packages: the runtime must import the
    packages from the WORKDIR that holds migrations/, configs/ and data/."""
    from service import migrate

    assert migrate.MIGRATIONS_DIR == ROOT / "migrations"
    runtime = _stages()[-1]
    workdirs = [line.split(None, 1)[1] for line in runtime if line.upper().startswith("WORKDIR")]
    assert workdirs
    env = " ".join(line for line in runtime if line.upper().startswith("ENV "))
    assert f"PYTHONPATH={workdirs[-1]}" in env
    assert "pip install ." in " ".join(_dockerfile_lines())
    assert "[dev]" not in " ".join(_dockerfile_lines())
