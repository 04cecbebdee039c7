# syntax=docker/dockerfile:1
#
# postern: build with the dev dependencies and a compiler toolchain (better-sqlite3 is a native
# addon; node:20-bookworm already carries python3, make and g++ for when no prebuilt binary
# matches), then run on the slim image with production dependencies only, as an unprivileged user.
#
#   docker build -t postern .
#   docker run --rm -v postern-data:/app/data -v postern-certs:/app/certs -v postern-config:/app/config postern init
#   docker run -d --name postern -p 9993:9993 -p 9143:9143 -p 9995:9995 -p 9110:9110 -p 9465:9465 -p 9587:9587 -p 8443:8443 \
#     -v postern-data:/app/data -v postern-certs:/app/certs -v postern-config:/app/config postern

FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# The example config twice: config/ is usually a volume, which hides what the image put there,
# so `postern init` also looks in share/. The image's default config listens on all interfaces
# of the container (the example binds 127.0.0.1, which would be unreachable from outside it).
COPY config/postern.example.yaml ./share/postern.example.yaml
RUN mkdir -p config data certs \
 && cp share/postern.example.yaml config/postern.example.yaml \
 && sed -E 's/^(\s+host:) 127\.0\.0\.1$/\1 0.0.0.0/' share/postern.example.yaml > config/postern.yaml \
 && chown -R node:node config data certs \
 && chmod 700 data \
 && ln -s /app/bin/postern.js /usr/local/bin/postern
USER node
# The database and digest key, the TLS certificate and key, and the config.
VOLUME ["/app/data", "/app/certs", "/app/config"]
# IMAP implicit TLS and STARTTLS, SMTP submission implicit TLS and STARTTLS, CalDAV/CardDAV.
EXPOSE 9993 9143 9995 9110 9465 9587 8443
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/postern.js"]
CMD ["serve"]
