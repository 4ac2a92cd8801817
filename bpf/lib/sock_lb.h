/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service translation at connect()/sendmsg() and its reverse at getpeername()/recvmsg(). */
#ifndef MESHLET_BPF_LIB_SOCK_LB_H
#define MESHLET_BPF_LIB_SOCK_LB_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/authz.h"
#include "lib/maps.h"

#define MESHLET_ECONNREFUSED 111

/* Set by the agent between open and load: the kernel has bpf_set_retval (5.18+). */
const volatile __u32 meshlet_has_set_retval = 0;

/* Refuse the call: ECONNREFUSED where the kernel lets us say so, EPERM otherwise. */
static __always_inline int refuse(void)
{
	if (meshlet_has_set_retval)
		bpf_set_retval(-MESHLET_ECONNREFUSED);
	return 0;
}

/*
 * The destination as meshlet keys it. `sock_family` is the socket's family; an IPv6 socket
 * dialling ::ffff:a.b.c.d is keyed as IPv4 (returns MESHLET_AF_INET and *mapped = 1).
 */
static __always_inline __u8 ctx_get_dst(struct bpf_sock_addr *ctx, __u8 sock_family,
					__u32 addr[4], int *mapped)
{
	*mapped = 0;
	if (sock_family == MESHLET_AF_INET) {
		addr[0] = ctx->user_ip4;
		addr[1] = addr[2] = addr[3] = 0;
		return MESHLET_AF_INET;
	}
	addr[0] = ctx->user_ip6[0];
	addr[1] = ctx->user_ip6[1];
	addr[2] = ctx->user_ip6[2];
	addr[3] = ctx->user_ip6[3];
	if (addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff)) {
		*mapped = 1;
		addr[0] = addr[3];
		addr[2] = addr[3] = 0;
		return MESHLET_AF_INET;
	}
	return MESHLET_AF_INET6;
}

static __always_inline void ctx_set_dst(struct bpf_sock_addr *ctx, __u8 sock_family, int mapped,
					const __u32 addr[4], __u16 port)
{
	if (sock_family == MESHLET_AF_INET) {
		ctx->user_ip4 = addr[0];
	} else if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = addr[0];
	} else {
		ctx->user_ip6[0] = addr[0];
		ctx->user_ip6[1] = addr[1];
		ctx->user_ip6[2] = addr[2];
		ctx->user_ip6[3] = addr[3];
	}
	ctx->user_port = bpf_htons(port);
}

static __always_inline __u32 pick_slot(const struct meshlet_svc_value *svc,
				       const struct meshlet_pod_value *pod)
{
	__u32 n = svc->count;

	if (svc->lb_algo == MESHLET_LB_MAGLEV) {
		struct meshlet_maglev_key mk = {
			.svc_id = svc->svc_id,
			.bucket = pod->affinity_hash % MESHLET_MAGLEV_SIZE,
		};
		__u32 *slot = bpf_map_lookup_elem(&meshlet_maglev_v1, &mk);

		if (slot)
			return *slot;
	}
	if ((svc->flags & MESHLET_SVC_PREFER_CLOSE) && svc->local_count)
		n = svc->local_count;
	if (svc->lb_algo == MESHLET_LB_ROUND_ROBIN) {
		__u32 id = svc->svc_id;
		__u32 *pos = bpf_map_lookup_elem(&meshlet_rr_v1, &id);

		if (pos) {
			__u32 v = *pos;

			*pos = v + 1;
			return v % n;
		}
	}
	return bpf_get_prandom_u32() % n;
}

enum xlate_result {
	XLATE_PASS,    /* not ours: leave the call alone */
	XLATE_DONE,    /* destination rewritten */
	XLATE_REFUSE,  /* a service with no ready backend */
};

static __always_inline int is_remote_mesh_ip(const __u32 addr[4], __u8 family)
{
	struct meshlet_ip_key ik = {};

	__builtin_memcpy(ik.addr, addr, sizeof(ik.addr));
	ik.family = family;
	return bpf_map_lookup_elem(&meshlet_remote_ips_v1, &ik) != 0;
}

/* The agent's outbound listener as the socket must dial it: 127.0.0.1, or ::1 for IPv6. */
static __always_inline void outbound_listener(__u8 family, __u32 addr[4])
{
	addr[0] = addr[1] = addr[2] = addr[3] = 0;
	if (family == MESHLET_AF_INET)
		addr[0] = bpf_htonl(0x7f000001);
	else
		addr[3] = bpf_htonl(1);
}

static __always_inline void save_origin(__u64 cookie, const struct meshlet_origin *o)
{
	if (bpf_map_update_elem(&meshlet_origins_v1, &cookie, o, BPF_ANY))
		global_inc(MESHLET_G_ORIGINS_FULL);
}

/*
 * The tunnel and L7 paths: the TCP socket goes to the agent's outbound listener inside the
 * pod, which learns the real destination from meshlet_tunnel_v1 (filled by sockops once the
 * local port is known) and carries the stream over HBONE (tunnel) or proxies its HTTP (L7).
 */
static __always_inline enum xlate_result tunnel(struct bpf_sock_addr *ctx, __u8 sock_family,
						int mapped, struct meshlet_origin *o, __u8 path)
{
	__u32 lo[4];

	o->path = path;
	save_origin(bpf_get_socket_cookie(ctx), o);
	outbound_listener(o->family, lo);
	ctx_set_dst(ctx, sock_family, mapped, lo, MESHLET_OUTBOUND_PORT);
	return XLATE_DONE;
}

/*
 * The core of connect4/6 and sendmsg4/6: for a socket of an enrolled pod dialling a service
 * address, pick a ready backend and rewrite the destination — to the backend itself, or, when
 * it is a mesh pod on another node, to the agent's tunnel. A TCP connect straight to such a
 * pod's IP takes the tunnel too. Records the origin so getpeername/recvmsg can show the
 * address the app dialled.
 */
static __always_inline enum xlate_result xlate_fwd(struct bpf_sock_addr *ctx, __u8 sock_family,
						    int is_sendmsg)
{
	int mapped;
	__u8 family;
	struct meshlet_svc_key key = {};
	struct meshlet_svc_value *svc;
	struct meshlet_pod_value *pod;
	struct meshlet_backend_value *be;
	struct meshlet_backend_key bk = {};
	struct meshlet_svc_stats *st;
	struct meshlet_origin o = {};
	struct bpf_sock *sk = ctx->sk;
	__u64 netns, cookie;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return XLATE_PASS;
	if (sk && sk->mark == MESHLET_AGENT_MARK)
		return XLATE_PASS;
	netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&meshlet_pods_v1, &netns);
	if (!pod)
		return XLATE_PASS;

	family = ctx_get_dst(ctx, sock_family, key.addr, &mapped);
	key.port = bpf_ntohs((__u16)ctx->user_port);
	key.proto = ctx->protocol;
	key.family = family;
	__builtin_memcpy(o.orig_addr, key.addr, sizeof(o.orig_addr));
	o.orig_port = key.port;
	o.family = family;
	o.proto = key.proto;
	svc = bpf_map_lookup_elem(&meshlet_svc_v1, &key);
	if (!svc) {
		if (key.proto != IPPROTO_TCP || is_sendmsg)
			return XLATE_PASS;
		if (authz_denied(pod, key.addr, family, key.port, MESHLET_NO_ID, MESHLET_NO_ID,
				 key.addr, key.port))
			return XLATE_REFUSE;
		if (!is_remote_mesh_ip(key.addr, family))
			return XLATE_PASS;
		__builtin_memcpy(o.backend_addr, key.addr, sizeof(o.backend_addr));
		o.backend_port = key.port;
		o.svc_id = MESHLET_NO_ID;
		o.backend_id = MESHLET_NO_ID;
		return tunnel(ctx, sock_family, mapped, &o, MESHLET_PATH_TUNNEL);
	}

	st = svc_stats(svc->svc_id);
	if ((svc->flags & MESHLET_SVC_L7) && key.proto == IPPROTO_TCP && !is_sendmsg) {
		/* The agent routes each request (possibly to other services): no backend here. */
		if (st)
			st->connects++;
		o.svc_id = svc->svc_id;
		o.backend_id = MESHLET_NO_ID;
		return tunnel(ctx, sock_family, mapped, &o, MESHLET_PATH_L7);
	}
	if (svc->count == 0)
		goto no_backend;
	bk.svc_id = svc->svc_id;
	bk.slot = pick_slot(svc, pod);
	be = bpf_map_lookup_elem(&meshlet_backends_v1, &bk);
	if (!be || be->family != family)
		goto no_backend;

	__builtin_memcpy(o.backend_addr, be->addr, sizeof(o.backend_addr));
	o.backend_port = be->port;
	o.svc_id = svc->svc_id;
	o.backend_id = be->backend_id;
	if ((be->flags & MESHLET_BACKEND_LOCAL) && key.proto == IPPROTO_TCP && !is_sendmsg &&
	    authz_denied(pod, be->addr, family, be->port, svc->svc_id, be->backend_id, key.addr,
			 key.port))
		return XLATE_REFUSE;
	if (st) {
		if (is_sendmsg)
			st->udp_msgs++;
		else
			st->connects++;
	}
	if ((be->flags & MESHLET_BACKEND_TUNNEL) && key.proto == IPPROTO_TCP && !is_sendmsg)
		return tunnel(ctx, sock_family, mapped, &o, MESHLET_PATH_TUNNEL);

	cookie = bpf_get_socket_cookie(ctx);
	if (!is_sendmsg) {
		o.path = MESHLET_PATH_BALANCED;
		save_origin(cookie, &o);
	}
	if (key.proto == IPPROTO_UDP) {
		struct meshlet_udp_rev_key rk = { .cookie = cookie };
		struct meshlet_udp_rev_value rv = {};

		__builtin_memcpy(rk.addr, be->addr, sizeof(rk.addr));
		rk.port = be->port;
		rk.family = family;
		__builtin_memcpy(rv.addr, key.addr, sizeof(rv.addr));
		rv.port = key.port;
		rv.family = family;
		if (bpf_map_update_elem(&meshlet_udp_rev_v1, &rk, &rv, BPF_ANY))
			global_inc(MESHLET_G_ORIGINS_FULL);
	}
	ctx_set_dst(ctx, sock_family, mapped, be->addr, be->port);
	return XLATE_DONE;

no_backend:
	if (st)
		st->no_backend++;
	return XLATE_REFUSE;
}

/* getpeername: show the service address instead of the backend the kernel connected to. */
static __always_inline void xlate_peer(struct bpf_sock_addr *ctx, __u8 sock_family)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct meshlet_origin *o = bpf_map_lookup_elem(&meshlet_origins_v1, &cookie);
	__u32 cur[4];
	int mapped;

	__u32 dialled[4];
	__u16 dialled_port;

	if (!o || o->family != ctx_get_dst(ctx, sock_family, cur, &mapped))
		return;
	/* What connect() was rewritten to: the backend, or the agent's listener. */
	if (o->path == MESHLET_PATH_TUNNEL || o->path == MESHLET_PATH_L7) {
		outbound_listener(o->family, dialled);
		dialled_port = MESHLET_OUTBOUND_PORT;
	} else {
		__builtin_memcpy(dialled, o->backend_addr, sizeof(dialled));
		dialled_port = o->backend_port;
	}
	if (cur[0] != dialled[0] || cur[1] != dialled[1] || cur[2] != dialled[2] ||
	    cur[3] != dialled[3] || bpf_ntohs((__u16)ctx->user_port) != dialled_port)
		return;
	ctx_set_dst(ctx, sock_family, mapped, o->orig_addr, o->orig_port);
}

/* recvmsg: a UDP reply from a backend appears to come from the service address. */
static __always_inline void xlate_udp_rev(struct bpf_sock_addr *ctx, __u8 sock_family)
{
	struct meshlet_udp_rev_key rk = {};
	struct meshlet_udp_rev_value *rv;
	int mapped;

	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.family = ctx_get_dst(ctx, sock_family, rk.addr, &mapped);
	rk.port = bpf_ntohs((__u16)ctx->user_port);
	rv = bpf_map_lookup_elem(&meshlet_udp_rev_v1, &rk);
	if (rv)
		ctx_set_dst(ctx, sock_family, mapped, rv->addr, rv->port);
}

#endif
