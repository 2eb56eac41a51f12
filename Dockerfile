# syntax=docker/dockerfile:1
#
# Causeway's image: the one static binary (control plane, east-west gateway
# and tools), run as distroless's non-root user. Build from the repository
# root:
#
#   docker build -t ghcr.io/causeway-mesh/causeway:v0.1.0 --build-arg VERSION=v0.1.0 .
#
# The manifests of `causeway manifest generate` run it as
# `causeway serve ...` and `causeway gateway ...`, user 65532, read-only
# root filesystem.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that the download is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY internal/ internal/
COPY examples/ examples/
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/causeway-mesh/causeway/internal/version.Version=${VERSION}" \
      -o /out/causeway ./cmd/causeway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/causeway /causeway
USER 65532:65532
ENTRYPOINT ["/causeway"]
