# syntax=docker/dockerfile:1
# The egress-webhook image: a static binary (the same `make static` recipe that the tests run)
# on distroless/static, as the non-root user 65532. No shell, no package manager, no libc.
#
#   make image                      # or: docker build -t egress-webhook:0.1.0 .
#   docker run --rm egress-webhook:0.1.0 --version
#
# The binary needs nothing from the image but itself: it talks only to the apiserver, with the
# service account's ca.crt, and serves with the certificate it is given. distroless/static
# still brings /etc/passwd (user nonroot), /tmp and CA certificates, which cost ~2 MB and keep
# `--kubeconfig` against an apiserver with a public certificate working.

# The toolchain of the project (Rust 1.95); bookworm has the static glibc (libc6-dev) it links.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target
# Only what the build reads: src/ includes two manifests (RBAC, Istio CRDs) with include_str!.
COPY Cargo.toml Cargo.lock Makefile ./
COPY src ./src
COPY manifests ./manifests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    make static && install -D -m 0755 "$(make -s static-path)" /out/egress-webhook

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/egress-webhook /egress-webhook
# Numeric, so that a PodSecurity `runAsNonRoot` check can verify it without reading passwd.
USER 65532:65532
# The admission port and the plain-HTTP health/metrics port of the manifests.
EXPOSE 8443 9090
ENTRYPOINT ["/egress-webhook"]
CMD ["serve"]
