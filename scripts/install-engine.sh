#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine: installs Debian's docker.io
# (and rsync, which molecule uses) when missing, and starts dockerd when none answers.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1 || ! command -v rsync >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "==> installing docker.io, mmdebstrap and rsync from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io mmdebstrap rsync openssh-client prometheus-alertmanager >/dev/null
fi

# promtool and amtool for the alert rule and Alertmanager tests (tests/unit/monitoring).
if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  echo "==> installing Debian's prometheus and prometheus-alertmanager (promtool, amtool)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null; }
fi

if docker info >/dev/null 2>&1; then
  echo "==> docker engine answers: $(docker version --format '{{.Server.Version}}')"
  exit 0
fi

echo "==> starting dockerd (log: /var/log/dockerd.log)"
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "==> docker engine answers: $(docker version --format '{{.Server.Version}}')"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
