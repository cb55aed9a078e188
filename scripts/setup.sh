#!/usr/bin/env bash
# Makes this checkout ready to run: npm packages, a built dist/, a Docker engine that
# answers, and busybox-static for the locally built test/demo image. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  if ! as_root; then
    log "need Debian packages: $*; install them (sudo apt-get install -y $*) and rerun"
    exit 1
  fi
  log "installing Debian packages: $*"
  if [ ! -f /tmp/.gridx-apt-updated ]; then
    apt-get update -qq >/dev/null && touch /tmp/.gridx-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. npm packages (better-sqlite3 compiles from source the first time: about a minute).
# `npm install`, not `npm ci`: npm 11 here writes lockfiles without the other platforms'
# optional packages (rollup's), and `npm ci` then refuses them as out of sync.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm install --no-audit --no-fund --loglevel=error
fi

# 2. A static busybox: the demo and tests build their image FROM scratch with it.
# (ldd fails on a static binary, which is what a FROM scratch image needs.)
if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then
  apt_install busybox-static
fi

# Prometheus and promtool: a test scrapes a node with a real Prometheus.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
fi

# Chromium: the dashboard's tests drive Debian's browser with playwright-core (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi

# ip and iptables: the NAT test builds a simulated internet out of network namespaces (as root).
if as_root && ! { command -v ip >/dev/null 2>&1 && command -v iptables >/dev/null 2>&1; }; then
  apt_install iproute2 iptables
fi

# 3. A Docker engine that answers.
docker_up() { curl -sf --unix-socket "${GRIDX_DOCKER_SOCKET:-/var/run/docker.sock}" http://localhost/_ping >/dev/null 2>&1; }
if ! command -v curl >/dev/null 2>&1; then apt_install curl; fi
if ! docker_up; then
  if ! as_root; then
    log "no Docker engine answers at ${GRIDX_DOCKER_SOCKET:-/var/run/docker.sock}."
    log "start one (e.g. sudo systemctl start docker, or sudo dockerd &), or run this script as root to install Debian's docker.io and start it."
    exit 1
  fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  log "starting dockerd (log: /var/log/gridx-dockerd.log)"
  nohup dockerd >/var/log/gridx-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker_up && break; sleep 0.5; done
  if ! docker_up; then
    log "dockerd did not answer within 30s; see /var/log/gridx-dockerd.log"
    tail -20 /var/log/gridx-dockerd.log >&2 || true
    exit 1
  fi
fi

# 4. Build: the token contract (solc-js, offline; only when its source changed), then TypeScript.
node scripts/build-contracts.mjs

if [ ! -f dist/src/cli/main.js ] || [ -n "$(find src bench -newer dist/src/cli/main.js -name '*.ts' -print -quit 2>/dev/null)" ]; then
  log "building"
  npx tsc -p tsconfig.build.json
  chmod +x dist/src/cli/main.js
fi
# The dashboard (src/web, bundled by esbuild), which every node serves at /.
if [ ! -f dist/web/index.html ] || [ -n "$(find src/web src/wire src/domain scripts/build-web.mjs -newer dist/web/index.html -type f -print -quit 2>/dev/null)" ]; then
  log "building the dashboard"
  node scripts/build-web.mjs
fi
