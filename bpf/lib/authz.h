/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * L4 authorization of same-node pairs at connect(): both ends are enrolled pods of this node,
 * so the kernel knows who they are (the source by its netns cookie, the destination by its IP)
 * without TLS. The agent compiles the AuthorizationPolicies into meshlet_authz_v1.
 */
#ifndef MESHLET_BPF_LIB_AUTHZ_H
#define MESHLET_BPF_LIB_AUTHZ_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"

/*
 * 1 when the connect must be refused. A denial is recorded in meshlet_conns_v1 under a key
 * with no local address (the socket has none yet): local[3] holds the source pod id, remote
 * the destination, so the last denied attempt of each pair stays visible.
 */
static __always_inline int authz_denied(const struct meshlet_pod_value *src, const __u32 addr[4],
					__u8 family, __u16 port, __u32 svc_id, __u32 backend_id,
					const __u32 orig_addr[4], __u16 orig_port)
{
	struct meshlet_ip_value *dst = local_pod(addr, family);
	struct meshlet_authz_key k = {};
	struct meshlet_authz_value *v;
	struct meshlet_sock_key ck = {};
	struct meshlet_conn_value c = {};

	if (!dst || !(dst->flags & MESHLET_IP_AUTHZ))
		return 0;
	k.src_pod = src->pod_id;
	k.dst_pod = dst->pod_id;
	k.port = port;
	v = bpf_map_lookup_elem(&meshlet_authz_v1, &k);
	if (!v) {
		k.port = 0;
		v = bpf_map_lookup_elem(&meshlet_authz_v1, &k);
	}
	if (v && v->allow)
		return 0;
	/* No verdict for a governed destination: fail closed. */
	if (v)
		__sync_fetch_and_add(&v->denied, 1);
	ck.local[3] = src->pod_id;
	__builtin_memcpy(ck.remote, addr, sizeof(ck.remote));
	ck.rport = port;
	ck.family = family;
	__builtin_memcpy(c.orig_addr, orig_addr, sizeof(c.orig_addr));
	c.orig_port = orig_port;
	c.path = MESHLET_PATH_SPLICED;
	c.flags = MESHLET_CONN_ACTIVE | MESHLET_CONN_FAILED | MESHLET_CONN_CLOSED |
		  MESHLET_CONN_DENIED;
	c.svc_id = svc_id;
	c.backend_id = backend_id;
	c.pod_id = src->pod_id;
	c.peer_pod_id = dst->pod_id;
	c.policy = v ? v->policy : MESHLET_NO_ID;
	c.start_ns = c.end_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&meshlet_conns_v1, &ck, &c, BPF_ANY))
		global_inc(MESHLET_G_CONNS_FULL);
	global_inc(MESHLET_G_AUTHZ_DENIED);
	return 1;
}

#endif
