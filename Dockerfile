# syntax=docker/dockerfile:1
# The egress-webhook image: a static binary (the same `make static` recipe that the tests run)
# on distroless/static, as the non-root user 65532. No shell, no package manager, no libc.
#
#   make image                      # or: docker build -t egress-webhook:0.1.0 .
#   docker run --rm egress-webhook:0.1.0 --version
#
# In a pod the binary needs nothing from the image but itself (tests/static_binary.rs runs it
# in an empty root): it talks only to the apiserver, trusting the service account's ca.crt, and
# serves with the certificate it is given. distroless/static adds /etc/passwd (user nonroot),
# /tmp and the system CA bundle: kube loads that bundle, and fails without it, for a
# `--kubeconfig` whose cluster names no certificate-authority.

# The toolchain of the project (Rust 1.95); bookworm has the static glibc (libc6-dev) it links.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target
# Only what the build reads: src/ includes two manifests (RBAC, Istio CRDs) with include_str!.
COPY Cargo.toml Cargo.lock Makefile ./
COPY src ./src
COPY manifests ./manifests
# The image's copy drops the debug info (112 MB -> 26 MB); the symbols stay, so a backtrace
# still names the functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    make static && mkdir -p /out \
    && strip --strip-debug -o /out/egress-webhook "$(make -s static-path)"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/egress-webhook /egress-webhook
# Numeric, so that a PodSecurity `runAsNonRoot` check can verify it without reading passwd.
USER 65532:65532
# The admission port and the plain-HTTP health/metrics port of the manifests.
EXPOSE 8443 9090
ENTRYPOINT ["/egress-webhook"]
CMD ["serve"]
