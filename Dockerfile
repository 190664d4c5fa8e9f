# syntax=docker/dockerfile:1
# Secure Device Control in one image: `sdc serve`, `sdc gateway`, `sdc agent` and the tools.
#
# Two stages. `build` has the dev dependencies, TypeScript and the C toolchain: it compiles dist/
# (scripts/build.mjs) and the native kernel library, then prunes node_modules to the production
# dependencies. `runtime` copies only what runs: dist/, bin/, deploy/, the pruned node_modules and
# the kernel library. No compiler, no TypeScript sources, no tsx, no npm; it runs as the
# unprivileged `node` user (uid 1000, numeric so that Kubernetes' runAsNonRoot can check it) and
# cannot write its own code (root owns /opt/sdc). Read-only friendly: a service writes only /data
# (a volume) and /tmp, so `read_only: true` with a tmpfs on /tmp works (compose.yaml does that).
# No secret is ever in a layer: no ARG or ENV carries one, and .dockerignore keeps keys, data,
# ./secrets and .env out of the build context; secrets arrive at run time as files.
#
# Not built on the development machines (they have no Docker engine):
# test/packaging/dockerfile.test.ts checks these properties by reading this file.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
# cmake and gcc with OpenSSL's headers build kernel/native (libsdc_kernel.so).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake gcc libc6-dev libssl-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Without scripts until the sources are here: `prepare` (the build) needs them. A layer of its own,
# so that a change to the sources does not download the dependencies again.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# Packages' own install scripts (esbuild, koffi), the JavaScript build, the native library (strict:
# an image whose agents would fall back to the mock kernel without saying so is a broken image),
# then the dev dependencies go.
RUN npm rebuild --no-audit --no-fund \
 && npm run build \
 && node dist/kernel/native/build-cli.js \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
# libcrypto for the native kernel library; the base image has everything else node needs. What
# it has that nothing here runs goes: npm, npx, corepack and yarn (tools with dependencies of their
# own to patch), and the setuid and setgid bits (no-new-privileges aside, nothing may gain rights).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
 && rm -f /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg \
 && find / -xdev -type f -perm /6000 -exec chmod a-s {} +
ENV NODE_ENV=production
WORKDIR /opt/sdc
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/deploy ./deploy
COPY --from=build /src/kernel/native/build/release/libsdc_kernel.so ./kernel/native/build/release/libsdc_kernel.so
# The data directory (CA certificates, service keys, TLS files, embedded database): a volume in
# compose.yaml, owned by the user the services run as.
# /gateway: a gateway's own files (compose.yaml's sdc-gateway volume, decision 0018), owned the same way.
RUN mkdir -p /data /gateway && chown node:node /data /gateway && chmod 700 /data /gateway
# node:node as numbers (the base image's node user); a name cannot be checked by runAsNonRoot.
USER 1000:1000
# 8080: the control plane's HTTPS API; 8443: its gateway's WSS port (another gateway picks its own,
# like compose.yaml's gateway-2 on 8444).
EXPOSE 8080 8443
# Liveness of `sdc serve`: GET /healthz over TLS, trusting /data/pki/root-ca.pem. Other commands set
# SDC_HEALTHCHECK_URL (tcp://localhost:8444 for a gateway, `none` for an agent); compose.yaml does.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/opt/sdc/deploy/healthcheck.mjs"]
ENTRYPOINT ["node", "/opt/sdc/bin/sdc.js"]
CMD ["--help"]
