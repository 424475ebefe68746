"""The FastAPI application factory: ``create_app(settings)``; ``service.app:app`` for uvicorn."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from service.auth.service import KeyCache
from service.dashboard.endpoints import router as dashboard_router
from service.db.session import make_engine, make_sessionmaker
from service.deletions.endpoints import router as deletions_router
from service.errors import install_error_handlers
from service.health import router as health_router
from service.hotswap.publisher import make_publisher
from service.hotswap.subscriber import RedisModelFeed
from service.jobs.endpoints import router as jobs_router
from service.logging_setup import configure_logging
from service.model_versions.endpoints import router as models_router
from service.observability import install_observability
from service.ratelimit import RateLimiter
from service.recommendations.endpoints import router as recommendations_router
from service.recommendations.serving import ModelHolder
from service.settings import Settings, get_settings
from service.unlearning.inprocess import InProcessWorker

DESCRIPTION = """Right-to-be-forgotten for a live recommender.

Product backends call `DELETE`; the rows leave the training data at once, recommendations
stop showing them at once, and an unlearned model is published within seconds.

Authenticate with `Authorization: Bearer <api key>`. Errors always have the shape
`{"error": {"code": ..., "message": ..., "details": ...}}`.
"""


def tune_runtime(settings: Settings) -> None:
    """Threadpool size and GIL switch interval for a process serving short DB-bound requests:
    measured on 2 cores, a small pool and a short switch interval keep I/O-bound threads from
    queueing behind each other (see README, API load benchmark)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
    sys.setswitchinterval(settings.switch_interval_seconds)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.log_json:
        configure_logging(settings.log_level)
    engine = engine or make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_runtime(settings)
        feed: RedisModelFeed | None = None
        if settings.redis_url:
            # replicas follow the Redis pointer; the database's active version is the
            # fallback only until something was ever published
            feed = RedisModelFeed(
                app.state.models,
                settings.redis_url,
                settings.redis_prefix,
                settings.model_poll_seconds,
            )
            app.state.model_feed = feed
            feed.start()
        app.state.models.try_load_active(app.state.sessions)
        worker: InProcessWorker | None = None
        if settings.redis_url is None and settings.inprocess_worker:
            # embedded default: the same job code as the Celery workers, in a thread here,
            # publishing straight into this process's model holder
            worker = InProcessWorker(app.state.sessions, settings, app.state.publisher.publish)
            app.state.worker = worker
            worker.start()
        # the loaded model and the framework are long-lived: move them out of the cyclic
        # GC's generations, which otherwise rescans them in 100-200 ms pauses (seen as p99)
        if settings.environment != "test":  # tests build hundreds of apps in one process
            gc.collect()
            gc.freeze()
        yield
        if worker is not None:
            worker.stop(timeout=30)
        if feed is not None:
            feed.stop()
        engine.dispose()

    app = FastAPI(
        title="rtbf-eraser",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.models = ModelHolder(settings)
    app.state.publisher = make_publisher(settings, app.state.models)
    app.state.model_feed = None
    app.state.worker = None
    install_error_handlers(app)
    install_observability(app)
    for router in (
        health_router,
        deletions_router,
        recommendations_router,
        jobs_router,
        models_router,
        dashboard_router,
    ):
        app.include_router(router)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn service.app:app` builds the app from the environment on first access
    if name == "app":
        return create_app()
    raise AttributeError(name)
