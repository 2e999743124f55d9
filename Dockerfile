# One image for `soar worker`, `soar scheduler` and `soar api`.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 soar
WORKDIR /opt/soar
COPY pyproject.toml README.md ./
COPY soar ./soar
COPY integrations ./integrations
RUN pip install .
# Content (rules, playbooks, responders, inventory, policy) is mounted at /content.
COPY rules /content/rules
COPY playbooks /content/playbooks
COPY responders /content/responders
ENV SOAR_CONTENT_ROOT=/content SOAR_STATE_DIR=/var/lib/soar
RUN mkdir -p /var/lib/soar && chown soar: /var/lib/soar
USER soar
ENTRYPOINT ["soar"]
CMD ["--help"]
