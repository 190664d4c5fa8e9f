#!/bin/sh
# compose.yaml's gateway-files job (decision 0018): issues gateway $SDC_GATEWAY_ID's TLS certificate
# from the intermediate CA in /data (the control plane's volume) and copies into /gateway (the
# sdc-gateway volume, which the gateway mounts read-only) only what a gateway loads: the CA
# certificates, that certificate and its key, the gateway signing key, the command key's public
# half and the CRL. No CA key, JWT key ring, command-signing private key or artifact key.
# The CRL copy is what the gateway holds until its first fetch from the control plane (--crl-url
# in compose.yaml, decision 0021); nothing refreshes the copy itself.
set -eu

names=""
for name in $SDC_GATEWAY_NAMES; do names="$names --server-name=$name"; done
# shellcheck disable=SC2086 # one flag per name
node /opt/sdc/bin/sdc.js pki gateway-cert --dir=/data --gateway-id="$SDC_GATEWAY_ID" $names

install -d -m 700 /gateway/pki /gateway/tls /gateway/keys
install -m 644 /data/pki/root-ca.pem /data/pki/intermediate-ca.pem /gateway/pki/
if [ -e /data/pki/crl.pem ]; then install -m 644 /data/pki/crl.pem /gateway/pki/crl.pem; fi
install -m 644 "/data/tls/gateway-$SDC_GATEWAY_ID.pem" /gateway/tls/
install -m 600 "/data/tls/gateway-$SDC_GATEWAY_ID.key" /gateway/tls/
install -m 600 /data/keys/gateway-signing.key /gateway/keys/
install -m 644 /data/keys/command-signing.pub /gateway/keys/
echo "gateway-files: /gateway holds gateway $SDC_GATEWAY_ID's files only"
