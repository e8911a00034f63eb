# One image for every Revierlotse process: Rasa server, action server, web page and the
# one-shot jobs (knowledge base load, retention purge). docker-compose.yml picks the
# command. The model is trained at build time, so replicas start without training.

# The chat widget bundles (deep-chat, socket.io-client) from npm, exactly the versions
# in web/package-lock.json: `npm ci` fails rather than resolve anything anew.
FROM node:20-slim AS webchat
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.10-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    RASA_TELEMETRY_ENABLED=false
WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
RUN pip install --no-cache-dir uv
COPY pyproject.toml ./
RUN uv pip install --system --no-cache --compile-bytecode -r pyproject.toml

COPY . .
COPY --from=webchat /web/node_modules web/node_modules
RUN python -m revierlotse.model \
 && useradd --create-home --uid 10001 revierlotse \
 && mkdir -p var && chown -R revierlotse var
USER revierlotse

EXPOSE 5005 5055 8080
CMD ["python", "-m", "revierlotse.launch", "rasa", "run", "--model", "models", \
     "--endpoints", "endpoints.yml", "--credentials", "credentials.yml", "--port", "5005"]
