# The kubedrf image: `kubedrf master` (what the Helm chart runs) and the example frameworks,
# which a Deployment runs as `python examples/frameworks/batch.py --namespace ... --name ...`.
#
#   docker build -t ghcr.io/kubedrf/kubedrf:0.1.0 .
#
# Two stages: the first builds the project's wheel, the second installs it with its
# dependencies and nothing else (no compiler, no source tree). `--build-arg BASE=...` swaps the
# Python 3.11 base: `make test-kind` builds on a Debian 12 image made offline with debootstrap.
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# A numeric non-root user, so `runAsNonRoot` can be verified without reading /etc/passwd.
RUN groupadd --system --gid 10001 kubedrf \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin kubedrf
WORKDIR /app
COPY examples/frameworks ./examples/frameworks
USER 10001:10001
ENTRYPOINT ["kubedrf"]
CMD ["master"]
