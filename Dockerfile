# Mailroom image: the `mailroom` command (worker, send, demo) on Node 20.
FROM node:20.19-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY apps ./apps
COPY test/package.json ./test/package.json
RUN npm ci --no-audit --no-fund && npx tsc -b packages/core packages/metrics packages/queue packages/smtp packages/sink packages/client apps/worker apps/cli && npm prune --omit=dev

FROM node:20.19-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
USER node
ENTRYPOINT ["node", "apps/cli/bin/mailroom.js"]
CMD ["worker"]
