# rtbf-eraser: one image for the API, the Celery workers, beat and the one-shot commands.
#
#   docker build -t rtbf-eraser:cpu .                          # CPU torch (default)
#   docker build -t rtbf-eraser:cuda --build-arg VARIANT=cuda .  # CUDA 12.8 torch
#
# VARIANT=cuda installs torch from the PyTorch cu128 wheel index onto the same slim Python
# base image: those wheels bring the CUDA runtime libraries (cuBLAS, cuDNN, ...) as pip
# packages, so no CUDA base image is needed; the host needs an NVIDIA driver recent enough
# for CUDA 12.8 and the NVIDIA Container Toolkit (`--gpus all`, or the device reservation
# in docker-compose.yml).
#
# The project's code is run from /app, not from site-packages: service/migrate.py,
# recsys/config.py and recsys/demo.py find migrations/, configs/ and data/ next to the
# packages, so PYTHONPATH=/app puts the source tree first. The package is still installed
# (without the dev extras) for its dependencies and the `eraser` console script.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- builder
FROM python:${PYTHON_VERSION}-slim AS builder
ARG VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip
# torch first, from the index the variant asks for; `pip install .` then finds the pin
# (torch==2.13.0, matched by 2.13.0+cpu / 2.13.0+cu128) already satisfied
RUN case "$VARIANT" in \
        cpu)  pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu ;; \
        cuda) pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 ;; \
        *)    echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2; exit 1 ;; \
    esac
WORKDIR /src
COPY pyproject.toml README.md ./
COPY recsys ./recsys
COPY service ./service
COPY workers ./workers
RUN pip install . && python -c "import torch, service.cli, workers.celery_app"

# ---------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="rtbf-eraser" \
      org.opencontainers.image.description="Right-to-be-forgotten service for recommenders (AltEraser)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      rtbf.variant="${VARIANT}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RTBF_MODEL_DIR=/var/lib/rtbf/models \
    RTBF_MODEL_CONFIG_FILE=/app/configs/ml-latest-small.toml
RUN groupadd --system --gid 10001 rtbf \
    && useradd --system --uid 10001 --gid rtbf --home-dir /app --shell /usr/sbin/nologin rtbf \
    && mkdir -p /var/lib/rtbf/models \
    && chown -R rtbf:rtbf /var/lib/rtbf
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY recsys ./recsys
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
COPY configs ./configs
COPY data ./data
USER rtbf
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["uvicorn", "service.app:app", "--host", "0.0.0.0", "--port", "8000"]
