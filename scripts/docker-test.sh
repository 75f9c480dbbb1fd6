#!/usr/bin/env bash
# Builds the container image and checks that it serves and reports healthy: runs it on
# a free port, waits for Docker's own healthcheck to say "healthy", reads the generated
# key from the volume and makes an authenticated request. Needs a running Docker daemon
# that can pull the base images named in the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
image="ripplekv-test:$$"
name="ripplekv-test-$$"
docker build -t "$image" .
trap 'docker rm -f "$name" >/dev/null 2>&1; docker rmi "$image" >/dev/null 2>&1' EXIT
docker run -d --name "$name" -p 127.0.0.1::3000 "$image" >/dev/null
for _ in $(seq 60); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$status" = healthy ] && break
  sleep 1
done
[ "$status" = healthy ] || { docker logs "$name"; echo "error: the container is $status" >&2; exit 1; }
[ "$(docker exec "$name" id -u)" != 0 ] || { echo "error: the server runs as root" >&2; exit 1; }
port=$(docker port "$name" 3000 | head -n 1 | sed 's/.*://')
key=$(docker exec "$name" cat /data/api-key)
curl -fsS -X POST "http://127.0.0.1:$port/record" -H "x-api-key: $key" -d '{"key":"k","value":"v"}'
echo
echo "the image builds, runs as a non-root user, reports healthy and serves"
