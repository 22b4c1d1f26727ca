# puttu: the proxy and CLI in a small runtime image (non-root, healthcheck on /healthz).
# test/integration/deployment.test.ts replays these stages outside Docker on every CI run.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY proxy ./proxy
RUN npx tsc -p tsconfig.build.json

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/proxy ./dist/proxy
COPY bin ./bin
COPY config ./config
USER node
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/puttu.js"]
CMD ["proxy", "--admin-host", "0.0.0.0"]
