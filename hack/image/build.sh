#!/usr/bin/env bash
# Builds the image from the Dockerfile with the first container engine that can build here:
# docker (its daemon answers), podman, then buildah. With none, says why and exits 1, so that
# `make image` never looks like it produced an image it did not.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:?IMAGE=name:tag}

tried=()
if command -v docker >/dev/null; then
    if out=$(docker info 2>&1); then
        exec docker build -t "$IMAGE" .
    fi
    tried+=("docker: the CLI is installed but its daemon does not answer ($(printf '%s' "$out" | grep -m1 -i 'cannot connect\|error' || echo 'docker info failed'))")
else
    tried+=("docker: not installed")
fi
for engine in podman buildah; do
    if ! command -v "$engine" >/dev/null; then
        tried+=("$engine: not installed")
        continue
    fi
    # Both build without a daemon; `info` shows whether their storage works for this user.
    if out=$("$engine" info 2>&1); then
        if [ "$engine" = podman ]; then
            exec podman build -t "$IMAGE" .
        fi
        exec buildah build -t "$IMAGE" .
    fi
    tried+=("$engine: installed but unusable ($(printf '%s' "$out" | tail -1))")
done

{
    echo "make image: no container engine can build here, so no image was built."
    printf '  %s\n' "${tried[@]}"
    echo "The static binary the image holds builds without one: make static"
} >&2
exit 1
