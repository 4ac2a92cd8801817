/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Inbound capture, no iptables: an sk_lookup program in each enrolled pod's netns hands inbound
 * TCP connections to the agent's plaintext listener in that pod (meshlet_inbound_v1), where
 * PeerAuthentication and AuthorizationPolicy are applied. Left alone: the agent's own ports,
 * a pod talking to itself (the agent delivering a checked connection does), and peers that are
 * enrolled pods on this node (the kernel attests them; their pairs are spliced).
 */
#ifndef MESHLET_BPF_LIB_INBOUND_H
#define MESHLET_BPF_LIB_INBOUND_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"

static __always_inline int inbound_lookup(struct bpf_sk_lookup *ctx)
{
	struct meshlet_ip_key dst = {}, src = {};
	struct bpf_sock *sk;
	__u32 port = ctx->local_port;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	if (port == MESHLET_OUTBOUND_PORT || port == MESHLET_INBOUND_PORT ||
	    port == MESHLET_HBONE_PORT)
		return SK_PASS;
	if (ctx->family == MESHLET_AF_INET) {
		dst.addr[0] = ctx->local_ip4;
		src.addr[0] = ctx->remote_ip4;
	} else if (ctx->family == MESHLET_AF_INET6) {
		dst.addr[0] = ctx->local_ip6[0];
		dst.addr[1] = ctx->local_ip6[1];
		dst.addr[2] = ctx->local_ip6[2];
		dst.addr[3] = ctx->local_ip6[3];
		src.addr[0] = ctx->remote_ip6[0];
		src.addr[1] = ctx->remote_ip6[1];
		src.addr[2] = ctx->remote_ip6[2];
		src.addr[3] = ctx->remote_ip6[3];
	} else {
		return SK_PASS;
	}
	dst.family = src.family = ctx->family;
	if (dst.addr[0] == src.addr[0] && dst.addr[1] == src.addr[1] &&
	    dst.addr[2] == src.addr[2] && dst.addr[3] == src.addr[3])
		return SK_PASS;
	if (bpf_map_lookup_elem(&meshlet_local_ips_v1, &src))
		return SK_PASS;
	sk = bpf_map_lookup_elem(&meshlet_inbound_v1, &dst);
	if (!sk)
		return SK_PASS;
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}

#endif
