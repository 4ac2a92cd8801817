#!/usr/bin/env bash
# Installs the Debian 12 packages meshlet needs to build, test, demo and benchmark. Idempotent.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang llvm
  libbpf-dev bpftool linux-libc-dev libelf-dev zlib1g-dev
  libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev libcli11-dev
  libprotobuf-dev protobuf-compiler libssl-dev openssl libnghttp2-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  iproute2 iptables curl iperf3 sockperf wrk haproxy prometheus
  socat netcat-openbsd procps containernetworking-plugins jq
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# bpffs for pinned maps and links.
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi
