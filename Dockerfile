# Shancheng node image: the node (solo or network) and CometBFT. Build: docker build -t shancheng .
# Not exercised by the test suite (no Docker engine on the CI machine); `make test` covers the same commands.

# CometBFT, pinned (the Makefile's COMETBFT_VERSION), and the Go modules whose .proto files the ABCI classes come from
FROM golang:1.22-bookworm AS go
RUN CGO_ENABLED=0 GOBIN=/out go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.25

# the ABCI message classes, generated from CometBFT's .proto files (`make proto`)
FROM python:3.11-slim-bookworm AS proto
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH
WORKDIR /opt/shancheng
COPY sdk sdk
COPY contracts contracts
COPY chain chain
COPY nodes nodes
RUN pip install --no-cache-dir ./sdk ./contracts ./chain -e ./nodes "grpcio-tools==1.85.1" \
    && python -m shancheng.nodes.abci.generate

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
COPY --from=go /out/cometbft /usr/local/bin/cometbft
WORKDIR /opt/shancheng
COPY sdk sdk
COPY contracts contracts
COPY chain chain
COPY nodes nodes
COPY --from=proto /opt/shancheng/nodes/shancheng/nodes/abci/_generated nodes/shancheng/nodes/abci/_generated
# the node's distributions only (no workspace, no test harness)
RUN pip install --no-cache-dir ./sdk ./contracts ./chain ./nodes
RUN useradd --create-home --uid 10001 shancheng && mkdir -p /network && chown shancheng /network
USER shancheng
VOLUME ["/home/shancheng/node"]
EXPOSE 8545 8546 26600-26660
# Solo (the default): `node init --dev` on first start, then serve; bind 0.0.0.0 inside the container only.
# A network node (docker-compose.yml): `shancheng node start --home /network/net/nodeK`.
CMD ["sh", "-c", "test -f /home/shancheng/node/genesis.json || shancheng node init --dev --home /home/shancheng/node; sed -i 's/^host = .*/host = \"0.0.0.0\"/' /home/shancheng/node/config.toml; exec shancheng node start --home /home/shancheng/node"]
