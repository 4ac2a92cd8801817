/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The map definitions, pinned by name under the agent's bpffs directory. */
#ifndef MESHLET_BPF_LIB_MAPS_H
#define MESHLET_BPF_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "meshlet/maps.h"

/* Service frontends: cluster IP:port/proto -> service id, backend counts, algorithm. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_SERVICES);
	__type(key, struct meshlet_svc_key);
	__type(value, struct meshlet_svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_svc_v1 SEC(".maps");

/* Ready backends of every service, by (service id, slot). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_BACKENDS);
	__type(key, struct meshlet_backend_key);
	__type(value, struct meshlet_backend_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_backends_v1 SEC(".maps");

/* Maglev tables of ClientIP-affinity services: (service id, bucket) -> slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_MAGLEV);
	__type(key, struct meshlet_maglev_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_maglev_v1 SEC(".maps");

/* Enrolled pods on this node, by netns cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_PODS);
	__type(key, __u64);
	__type(value, struct meshlet_pod_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_pods_v1 SEC(".maps");

/* IPs of the enrolled pods on this node -> pod id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_PODS * 2);
	__type(key, struct meshlet_ip_key);
	__type(value, struct meshlet_ip_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_local_ips_v1 SEC(".maps");

/* IPs of the enrolled pods on other nodes: connections to them take the tunnel path. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_REMOTE_IPS);
	__type(key, struct meshlet_ip_key);
	__type(value, struct meshlet_remote_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_remote_ips_v1 SEC(".maps");

/* Tunnel-path connections by (pod netns cookie, app's local port), for the outbound listener. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESHLET_MAX_ORIGINS);
	__type(key, struct meshlet_tunnel_key);
	__type(value, struct meshlet_origin);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_tunnel_v1 SEC(".maps");

/*
 * Inbound capture: pod IP -> the agent's plaintext listener (15006) in that pod's netns. The
 * sk_lookup program attached to the pod's netns steers inbound TCP there; a pod without an
 * entry takes its connections directly.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MESHLET_MAX_PODS * 2);
	__type(key, struct meshlet_ip_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_inbound_v1 SEC(".maps");

/* Same-node L4 authorization verdicts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESHLET_MAX_AUTHZ);
	__type(key, struct meshlet_authz_key);
	__type(value, struct meshlet_authz_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_authz_v1 SEC(".maps");

/* Round-robin position per service id (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MESHLET_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_rr_v1 SEC(".maps");

/* Per socket cookie: the service address the app dialled and the backend chosen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESHLET_MAX_ORIGINS);
	__type(key, __u64);
	__type(value, struct meshlet_origin);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_origins_v1 SEC(".maps");

/* UDP reverse translation: (socket cookie, backend) -> service address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESHLET_MAX_ORIGINS);
	__type(key, struct meshlet_udp_rev_key);
	__type(value, struct meshlet_udp_rev_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_udp_rev_v1 SEC(".maps");

/* Sockets of same-node enrolled pairs, keyed by their own 4-tuple: the splice table. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MESHLET_MAX_SOCKS);
	__type(key, struct meshlet_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_socks_v1 SEC(".maps");

/* Live and just-closed TCP connections of enrolled pods, keyed by their own 4-tuple. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESHLET_MAX_CONNS);
	__type(key, struct meshlet_sock_key);
	__type(value, struct meshlet_conn_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_conns_v1 SEC(".maps");

/* Kernel counters per service id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MESHLET_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct meshlet_svc_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_svc_stats_v1 SEC(".maps");

/* Map-wide counters (enum meshlet_global_counter). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MESHLET_G_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meshlet_global_v1 SEC(".maps");

static __always_inline void global_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&meshlet_global_v1, &idx);

	if (v)
		(*v)++;
}

static __always_inline struct meshlet_ip_value *local_pod(const __u32 addr[4], __u8 family)
{
	struct meshlet_ip_key ik = {};

	__builtin_memcpy(ik.addr, addr, sizeof(ik.addr));
	ik.family = family;
	return bpf_map_lookup_elem(&meshlet_local_ips_v1, &ik);
}

static __always_inline struct meshlet_svc_stats *svc_stats(__u32 svc_id)
{
	return bpf_map_lookup_elem(&meshlet_svc_stats_v1, &svc_id);
}

#endif
