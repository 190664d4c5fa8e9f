# The Secure Device Control services in one image: `sdc serve`, `sdc gateway`, `sdc agent`.
# Not built on the development machines (no Docker engine there); see compose.yaml.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl cmake gcc libc6-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sdc
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
RUN npm run kernel:build || echo "native kernel library not built; agents fall back to the mock"
RUN mkdir -p /data && chown node:node /data
USER node
ENTRYPOINT ["node", "bin/sdc.js"]
