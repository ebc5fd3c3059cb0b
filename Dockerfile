# Shancheng node image. Build: docker build -t shancheng .
# Not exercised by the test suite (no Docker engine on the CI machine); `make test` covers the same commands.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/shancheng
COPY sdk sdk
COPY contracts contracts
COPY chain chain
COPY nodes nodes
# the node's distributions only (no workspace, no test harness)
RUN pip install --no-cache-dir ./sdk ./contracts ./chain ./nodes
RUN useradd --create-home --uid 10001 shancheng
USER shancheng
VOLUME ["/home/shancheng/node"]
EXPOSE 8545 8546
# `node init --dev` on first start, then serve; bind 0.0.0.0 inside the container only
CMD ["sh", "-c", "test -f /home/shancheng/node/genesis.json || shancheng node init --dev --home /home/shancheng/node; sed -i 's/^host = .*/host = \"0.0.0.0\"/' /home/shancheng/node/config.toml; exec shancheng node start --home /home/shancheng/node"]
