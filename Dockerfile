# callbridge server image. Build: docker build -t callbridge .
# Run:   docker run -p 8080:8080 -e OPENAI_API_KEY=... -v callbridge-var:/app/var callbridge
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CALLBRIDGE_HOST=0.0.0.0 \
    CALLBRIDGE_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install . && useradd --system --home /app callbridge && mkdir -p var \
    && chown callbridge var
COPY agents ./agents
COPY prompts ./prompts

USER callbridge
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; \
    sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["callbridge", "serve"]
