#!/bin/sh
# compose.yaml's minio-init: creates the artifact bucket once MinIO is healthy. Idempotent (an
# existing bucket is kept), so it runs at every `docker compose up`. The credentials are read from
# the secret files here, never put on a command line or in the environment of another service.
set -eu
user=$(cat /run/secrets/minio_root_user)
pass=$(cat /run/secrets/minio_root_password)
bucket="${SDC_ARTIFACT_BUCKET:-sdc-artifacts}"
mc alias set sdc http://minio:9000 "$user" "$pass" >/dev/null
mc mb --ignore-existing "sdc/$bucket"
# Artifacts are public in content (signed, and checked by the TUF client) but not listable by anyone.
mc anonymous set none "sdc/$bucket" >/dev/null
echo "bucket $bucket ready"
