#!/bin/sh
# The CA ceremony for compose.yaml, run once: `docker compose run --rm pki-init` (docs/deployment.md).
#
# Creates the root and the intermediate CA in /offline, a folder of the host (./offline-ca): move
# root-ca.key off the machine afterwards (it is needed again only to replace the intermediate).
# Copies to /data/pki, the volume the online services mount read-write, only what they need: the
# root certificate, the intermediate certificate and key, and the serving CA's certificate and key
# (the ECDSA chain browsers are given, decision 0006). The root key never enters that volume. Runs as root for the ownership of the two folders, without a network.
set -eu

offline=/offline
online=/data/pki
owner=node:node

if [ -e "$online/intermediate-ca.pem" ]; then
  echo "pki-init: $online already holds a CA; nothing changed (remove the sdc-data volume to start over)" >&2
  exit 1
fi
# The root key is written encrypted: sdc pki init asks for the passphrase (twice, without echo) on
# the terminal `docker compose run` gives it, or takes SDC_ROOT_KEY_PASSPHRASE; with neither it
# refuses and writes nothing. Keep the passphrase apart from ./offline-ca.
# The serving CA may issue only for the names the API is reached by (name constraints, decision
# 0006): the compose service name and SDC_PUBLIC_HOST, plus localhost and loopback.
if [ -n "${SDC_PUBLIC_HOST:-}" ]; then
  node /opt/sdc/bin/sdc.js pki init --dir "$offline" --serving-name control-plane --serving-name "$SDC_PUBLIC_HOST"
else
  node /opt/sdc/bin/sdc.js pki init --dir "$offline" --serving-name control-plane
fi
install -d -m 700 -o node -g node "$online"
install -m 644 -o node -g node "$offline/pki/root-ca.pem" "$online/root-ca.pem"
install -m 644 -o node -g node "$offline/pki/intermediate-ca.pem" "$online/intermediate-ca.pem"
install -m 600 -o node -g node "$offline/pki/intermediate-ca.key" "$online/intermediate-ca.key"
install -m 644 -o node -g node "$offline/pki/serving-ca.pem" "$online/serving-ca.pem"
install -m 600 -o node -g node "$offline/pki/serving-ca.key" "$online/serving-ca.key"
chown -R "${SDC_HOST_UID:-1000}:${SDC_HOST_GID:-1000}" "$offline"
echo "pki-init: the services' volume has the root certificate, the intermediate CA and the serving CA ($owner);"
echo "pki-init: the root key (encrypted) is in ./offline-ca/pki/root-ca.key on the host: move it offline now"
