# knas image: the API, the workers and the migrate job all run from it.
#   docker build -t knas .                                          (CPU torch)
#   docker build --build-arg TORCH_INDEX=<a CUDA wheel index> -t knas:cuda .
# BASE may be any Debian-based Python 3.11 image (or a CUDA runtime image with Python 3.11).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG TORCH_INDEX=""
ARG TORCH_VERSION=2.14.1
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/knas
# torch first, in its own layer: it is by far the largest and changes least often.
RUN if [ -n "$TORCH_INDEX" ]; then \
      /opt/knas/bin/pip install --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}"; \
    else \
      /opt/knas/bin/pip install "torch==${TORCH_VERSION}"; \
    fi
COPY pyproject.toml README.md alembic.ini ./
COPY knas ./knas
COPY scorer ./scorer
COPY models ./models
COPY migrations ./migrations
COPY worker ./worker
COPY api ./api
RUN /opt/knas/bin/pip install .

FROM ${BASE} AS runtime
LABEL org.opencontainers.image.title="knas" \
      org.opencontainers.image.description="training-free neural architecture search service"
RUN groupadd --system knas && useradd --system --gid knas --create-home --home-dir /home/knas knas \
    && mkdir -p /data /benchmarks && chown knas:knas /data /benchmarks
COPY --from=build /opt/knas /opt/knas
ENV PATH=/opt/knas/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KNAS_HOME=/home/knas/.knas \
    KNAS_DATA_DIR=/data \
    KNAS_BENCHMARK_DIR=/benchmarks
USER knas
WORKDIR /home/knas
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
CMD ["knas", "serve", "--host", "0.0.0.0", "--port", "8000"]
