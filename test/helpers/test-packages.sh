#!/usr/bin/env bash
# The Debian packages the test suite drives for real, installed when missing (as root; otherwise
# the apt-get command to run is printed and this fails). `npm test` runs it first, so the README's
# test command works on a fresh machine; CI runs it too.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
# The registration API's interop test compiles a Curator x-discovery client with javac.
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
[ -f /usr/share/java/curator-x-discovery.jar ] || need+=(libcurator-discovery-java)
# The compose files are validated with `docker-compose config`; alert rules with promtool.
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The admin status page and the dashboards are rendered in headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The production topology test runs HAProxy in front of two proxies.
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
# Test certificates; HTTP/2 through curl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing the Debian packages the tests use: ${need[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "the tests need Debian packages: apt-get update && apt-get install -y ${need[*]} (as root)" >&2
  exit 1
fi
