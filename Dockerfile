# ENGS image (minimal; the deployment issue #8 moves it to a CUDA 12 runtime base with
# NVRTC for the CuPy backend, adds the healthcheck and real-time settings).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VIRTUAL_ENV=/opt/engs
RUN python -m venv "$VIRTUAL_ENV"
ENV PATH="$VIRTUAL_ENV/bin:$PATH"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir .

RUN useradd --system --uid 10001 --no-create-home engs
USER engs

ENTRYPOINT ["engs"]
CMD ["up"]
