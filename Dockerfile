# livefit image: Python 3.11 + Java 17 + the pip-installed Flink 2.3.0 + livefit, on Debian 12
# (the platform livefit is verified on). Serves as Flink JobManager, TaskManager and job client.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/livefit
COPY pyproject.toml README.md ./
COPY livefit ./livefit
COPY udfs ./udfs
COPY models ./models
COPY jobs ./jobs
COPY deploy ./deploy
RUN pip install --no-cache-dir -e . && python -m livefit.jars
ENV LIVEFIT_JOB__MODEL_DIR=/models
ENTRYPOINT ["/opt/livefit/deploy/flink-entrypoint.sh"]
