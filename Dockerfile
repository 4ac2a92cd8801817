# meshlet's image: meshletd, meshlet and meshlet-cni in /usr/local/bin, for the Helm chart in
# helm/meshlet. Build from the repository root:
#   docker build -t REGISTRY/meshlet:TAG .
# The build steps are the README's (tools/test.sh): the same Debian 12 packages as
# tools/install-deps.sh, the same cmake configure and build. tests/helm checks they stay in sync.

FROM debian:bookworm AS build
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config clang llvm \
      libbpf-dev bpftool linux-libc-dev libelf-dev zlib1g-dev \
      libyaml-dev libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev libcli11-dev \
      libprotobuf-dev protobuf-compiler libssl-dev openssl libnghttp2-dev \
      libgtest-dev libgmock-dev googletest && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && \
    cmake --build build -j"$(nproc)" --target meshletd meshlet meshlet-cni && \
    install -m 0755 build/agent/meshletd build/tools/meshlet/meshlet build/cni/meshlet-cni \
      /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libbpf1 libelf1 zlib1g libprotobuf-lite32 libyaml-0-2 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 libssl3 libnghttp2-14 && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/meshletd /usr/local/bin/meshlet /usr/local/bin/meshlet-cni \
     /usr/local/bin/
# The chart runs meshletd (and meshlet-cni in its init container) with explicit commands.
CMD ["meshletd", "--help"]
