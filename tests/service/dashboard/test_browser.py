"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against a real uvicorn process with the embedded worker: a deletion shows up as
a job on the page and turns ``completed``. Fails, never skips, without Chromium.

The screenshot is kept as ``runs/test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from service.auth.service import create_key
from service.db.models import Base
from service.db.session import make_engine, make_sessionmaker
from service.model_versions.service import register_version
from tests.e2e.stack import HOST, Proc, free_port, wait_for
from tests.service.conftest import add_interactions
from tests.service.recommendations.kit import train_checkpoints

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "runs" / "test-artifacts"
CONFIG = """
[unlearn]
max_rounds = 20
tol = 1e-5
step_tol = 1e-2
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    """(base url, admin key, training rows): a uvicorn process on a SQLite file with a tiny
    trained model active and the in-process worker on."""
    ckpt = train_checkpoints(tmp_path / "ckpt")
    url = f"sqlite:///{tmp_path}/dash.sqlite3"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with make_sessionmaker(engine)() as s:
        add_interactions(s, ckpt.rows)
        register_version(s, ckpt.v1, version="v1", origin="trained", activate=True)
        _, key = create_key(s, "dashboard-browser", ["admin"])
        s.commit()
    engine.dispose()
    config = tmp_path / "unlearn.toml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RTBF_REDIS_URL")}
    env.update(
        {
            "DATABASE_URL": url,
            "RTBF_MODEL_DIR": str(tmp_path / "models"),
            "RTBF_MODEL_CONFIG_FILE": str(config),
            "RTBF_INPROCESS_WORKER": "true",
            "RTBF_BATCH_WINDOW_SECONDS": "0.2",
            "RTBF_WORKER_DEVICE": "cpu",
            "OMP_NUM_THREADS": "1",
        }
    )
    port = free_port()
    proc = Proc(
        "api",
        [sys.executable, "-m", "uvicorn", "service.app:app", "--host", HOST, "--port", str(port)],
        env,
        tmp_path / "api.log",
    ).start()
    base = f"http://{HOST}:{port}"
    try:
        wait_for(
            lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200,
            timeout=90,
            what=f"the API ready ({proc.tail(5) if proc.log.exists() else ''})",
        )
        yield base, key, ckpt.rows
    finally:
        proc.stop()


def _shows_completed_job(page: Page) -> bool:
    page.reload()
    return page.locator('tr.job[data-status="completed"]').count() >= 1


@pytest.mark.slow
def test_dashboard_in_chromium_follows_a_deletion(
    server: tuple[str, str, list[tuple[str, str]]], tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)")
    base, key, rows = server
    user = rows[0][0]
    items = sorted({i for u, i in rows if u == user})[:2]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            anonymous = httpx.get(f"{base}/dashboard", timeout=10)
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"] == 'Basic realm="rtbf dashboard"'
            context = browser.new_context(
                http_credentials={"username": "admin", "password": key},
                viewport={"width": 1280, "height": 900},
            )
            page = context.new_page()
            response = page.goto(f"{base}/dashboard")
            assert response is not None and response.status == 200
            assert page.title() == "rtbf-eraser dashboard"
            assert "no unlearning jobs yet" in page.inner_text("body")

            r = httpx.request(
                "DELETE",
                f"{base}/v1/users/{user}/interactions",
                json={"items": items},
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            assert r.status_code == 202, r.text

            t0 = time.monotonic()
            wait_for(lambda: _shows_completed_job(page), timeout=120, what="a completed job")
            elapsed = time.monotonic() - t0

            text = page.inner_text("body")
            row = page.locator('tr.job[data-status="completed"]').first.inner_text()
            assert "completed" in row and "unlearn" in row, row
            # the request is counted as completed; the queue is empty
            wait_for(
                lambda: (
                    _shows_completed_job(page)
                    and page.inner_text('[data-status="completed"] .n') == "1"
                ),
                timeout=30,
                what="the completed request counted",
            )
            text = page.inner_text("body")
            assert page.inner_text("#queue-pending .n") == "0"
            assert page.locator("svg circle").count() >= 2  # one point in each plot
            served = page.inner_text("#served-version")
            assert served.startswith("unlearned"), served
            assert page.inner_text("#active-version") == served
            # counts only: no deleted item id anywhere on the page
            for item in items:
                assert not re.search(rf"\b{re.escape(item)}\b", text), item
                assert item not in page.content()

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, ARTIFACTS / "dashboard.png")
            print(f"job completed on the page after {elapsed:.1f} s; screenshot {shot}")
        finally:
            browser.close()
