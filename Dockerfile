# Procura API and worker image (one image, two commands; see docker-compose.yml).
FROM node:20-bookworm-slim

WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first so they stay cached while the sources change.
# Dev dependencies are kept: the build and `npm run migrate` need them.
COPY --chown=node:node package.json package-lock.json ./
# npm install follows package-lock.json (npm 11's `npm ci` rejects this lock's missing foreign-platform optionals).
RUN npm install --no-audit --no-fund

COPY --chown=node:node . .
RUN npm run build

# The api listens on PORT (3000); docker-compose.yml sets HOST=0.0.0.0 for it.
EXPOSE 3000

CMD ["npm", "run", "start:api"]
