# One image for every Warroom process; the command picks the role.
FROM python:3.11-slim
ENV UV_PROJECT_ENVIRONMENT=/app/.venv PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY contracts contracts
COPY foundation foundation
COPY streams streams
COPY projections projections
COPY gateway gateway
COPY warroom warroom
COPY examples examples
RUN uv sync --frozen --no-dev
EXPOSE 8080
ENTRYPOINT ["warroom"]
CMD ["gateway", "--host", "0.0.0.0"]
