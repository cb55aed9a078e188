# A Grid-X node as a container. Jobs run as sibling containers on the host's Docker
# engine, whose socket the node needs mounted (see docker-compose.yml).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
RUN npx tsc -p tsconfig.build.json
ENV GRIDX_HOST=0.0.0.0 GRIDX_DATA_DIR=/data
EXPOSE 8000 8468
VOLUME /data
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/src/cli/main.js"]
CMD ["node"]
