# One image for every Like-Opt service: cache_svc, retrieval_svc, generation_svc, gateway.
# Multi-stage: build a virtual environment, then copy it into a slim non-root runtime.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU-only torch first, so sentence-transformers does not pull a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY likeopt likeopt
COPY gateway gateway
COPY retrieval_svc retrieval_svc
COPY generation_svc generation_svc
COPY cache_svc cache_svc
COPY envoy envoy
COPY protos protos
COPY docs docs
# Editable: the code stays in /src beside envoy/envoy.tmpl.yaml, exactly as in a checkout.
RUN pip install -e .
# The query encoder's ONNX export (retrieval_svc/onnx_query.py), made once here instead of at each first start.
ENV LIKEOPT_MODEL_CACHE_DIR=/opt/likeopt-models HF_HUB_OFFLINE=1
RUN python -m retrieval_svc.onnx_query

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TQDM_DISABLE=1 \
    GRPC_ENABLE_FORK_SUPPORT=false \
    LIKEOPT_HOST=0.0.0.0 \
    LIKEOPT_DATA_DIR=/data \
    LIKEOPT_FEEDBACK_DB=/feedback/answers.sqlite3 \
    LIKEOPT_RUN_DIR=/tmp/likeopt \
    LIKEOPT_MODEL_CACHE_DIR=/opt/likeopt-models
RUN useradd --system --uid 10001 --home-dir /src likeopt && mkdir -p /data /feedback /tmp/likeopt \
    && chown likeopt /data /feedback /tmp/likeopt
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/likeopt-models /opt/likeopt-models
COPY --from=build /src /src
WORKDIR /src
USER likeopt
# The embedding model and the GGUF model ship inside installed packages: nothing downloads at start.
CMD ["python", "-m", "gateway"]
