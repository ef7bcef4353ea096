#!/bin/sh
# Installs every Debian 12 package that flow-exporter needs to build, test and run its demo.
# Run as root. Safe to run again.
set -eu
export DEBIAN_FRONTEND=noninteractive

BUILD="build-essential cmake pkg-config
  librdkafka-dev libjansson-dev libcurl4-openssl-dev libsnappy-dev
  libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev zlib1g-dev
  libyaml-dev libgnutls28-dev libcrypt-dev libsnmp-dev"
TEST="curl kcat pmacct prometheus prometheus-pushgateway victoria-metrics
  libclang-rt-14-dev clang clang-tidy procps iproute2 util-linux
  buildah podman runc debootstrap fuse-overlayfs uidmap docker-compose systemd python3-yaml
  openssl apache2-utils python3-protobuf protobuf-compiler python3-prometheus-client
  snmpd snmp e2fsprogs mount"

apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $BUILD $TEST >/dev/null
