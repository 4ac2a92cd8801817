/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking and the same-node splice: sockops fills, sk_msg redirects. */
#ifndef MESHLET_BPF_LIB_CONN_H
#define MESHLET_BPF_LIB_CONN_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"

/*
 * The 4-tuple of a socket seen from its own side. In bpf_sock_ops and sk_msg_md, local_port
 * is in host order and remote_port is the network-order port in the upper 16 bits of the
 * word (the kernel shifts it on little endian), so bpf_ntohl() yields the host-order port.
 */
#define SOCK_KEY_FROM(ctx, k)                                                   \
	do {                                                                    \
		(k)->family = (ctx)->family;                                    \
		if ((ctx)->family == MESHLET_AF_INET) {                         \
			(k)->local[0] = (ctx)->local_ip4;                       \
			(k)->remote[0] = (ctx)->remote_ip4;                     \
		} else {                                                        \
			(k)->local[0] = (ctx)->local_ip6[0];                    \
			(k)->local[1] = (ctx)->local_ip6[1];                    \
			(k)->local[2] = (ctx)->local_ip6[2];                    \
			(k)->local[3] = (ctx)->local_ip6[3];                    \
			(k)->remote[0] = (ctx)->remote_ip6[0];                  \
			(k)->remote[1] = (ctx)->remote_ip6[1];                  \
			(k)->remote[2] = (ctx)->remote_ip6[2];                  \
			(k)->remote[3] = (ctx)->remote_ip6[3];                  \
		}                                                               \
		(k)->lport = (__u16)(ctx)->local_port;                          \
		(k)->rport = (__u16)bpf_ntohl((ctx)->remote_port);              \
		sock_key_unmap(k);                                              \
	} while (0)

static __always_inline int is_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* A dual-stack socket talking IPv4 shows ::ffff:a.b.c.d: key it as the IPv4 it is. */
static __always_inline void sock_key_unmap(struct meshlet_sock_key *k)
{
	if (k->family != MESHLET_AF_INET6 || !is_v4_mapped(k->local) || !is_v4_mapped(k->remote))
		return;
	k->family = MESHLET_AF_INET;
	k->local[0] = k->local[3];
	k->remote[0] = k->remote[3];
	k->local[2] = k->local[3] = 0;
	k->remote[2] = k->remote[3] = 0;
}

static __always_inline void sock_key_peer(const struct meshlet_sock_key *k,
					  struct meshlet_sock_key *p)
{
	__builtin_memcpy(p->local, k->remote, sizeof(p->local));
	__builtin_memcpy(p->remote, k->local, sizeof(p->remote));
	p->lport = k->rport;
	p->rport = k->lport;
	p->family = k->family;
}

static __always_inline void conn_counters(struct bpf_sock_ops *skops, struct meshlet_conn_value *c)
{
	c->srtt_us = skops->srtt_us >> 3;
	c->total_retrans = skops->total_retrans;
	if (c->flags & MESHLET_CONN_SPLICED) {
		/* sk_msg counts the spliced bytes; TCP only carried the handshake. */
		c->bytes_sent = c->spliced_bytes + skops->bytes_acked;
	} else {
		c->bytes_sent = skops->bytes_acked;
		c->bytes_received = skops->bytes_received;
	}
}

/* The other end of the connection `k` is recorded as spliced and still open. */
static __always_inline int peer_spliced(const struct meshlet_sock_key *k)
{
	struct meshlet_sock_key p = {};
	struct meshlet_conn_value *pc;

	sock_key_peer(k, &p);
	pc = bpf_map_lookup_elem(&meshlet_conns_v1, &p);
	return pc && (pc->flags & MESHLET_CONN_SPLICED) && !(pc->flags & MESHLET_CONN_CLOSED);
}

/* ACTIVE/PASSIVE_ESTABLISHED: track connections of enrolled pods, splice same-node pairs. */
static __always_inline void conn_established(struct bpf_sock_ops *skops, int active)
{
	struct meshlet_sock_key key = {};
	struct meshlet_conn_value c = {};
	struct meshlet_ip_value *self, *peer;
	struct meshlet_origin *o;
	__u64 cookie;

	if (skops->family != MESHLET_AF_INET && skops->family != MESHLET_AF_INET6)
		return;
	if (skops->sk && skops->sk->mark == MESHLET_AGENT_MARK)
		return;
	SOCK_KEY_FROM(skops, &key);
	/*
	 * A socket talking to its own address is not a pair: this leaves out the tunnel's local
	 * legs (app <-> 127.0.0.1:15001, the agent <-> the app on the pod's own IP). Splicing them
	 * is wrong: the agent stops reading when its HBONE stream is full, and sk_msg's ingress
	 * redirect has no backpressure, so the app's send would fail with ENOMEM.
	 */
	if (key.local[0] == key.remote[0] && key.local[1] == key.remote[1] &&
	    key.local[2] == key.remote[2] && key.local[3] == key.remote[3])
		return;
	self = local_pod(key.local, key.family);
	if (!self)
		return;
	peer = local_pod(key.remote, key.family);

	c.pod_id = self->pod_id;
	c.peer_pod_id = peer ? peer->pod_id : MESHLET_NO_ID;
	c.svc_id = MESHLET_NO_ID;
	c.backend_id = MESHLET_NO_ID;
	c.path = MESHLET_PATH_PASSTHROUGH;
	c.flags = active ? MESHLET_CONN_ACTIVE : 0;
	c.start_ns = bpf_ktime_get_ns();
	if (active) {
		cookie = bpf_get_socket_cookie(skops);
		o = bpf_map_lookup_elem(&meshlet_origins_v1, &cookie);
		if (o) {
			__builtin_memcpy(c.orig_addr, o->orig_addr, sizeof(c.orig_addr));
			c.orig_port = o->orig_port;
			c.svc_id = o->svc_id;
			c.backend_id = o->backend_id;
			c.path = MESHLET_PATH_BALANCED;
		}
	}
	/*
	 * The accepting side joins the splice only when the connecting side did: that side's
	 * ESTABLISHED ran first (before its ACK reached us) and recorded itself as spliced. A
	 * connection whose other end stayed out (the agent dialling from a pod's netns, or a
	 * process of the pod outside the attached cgroup) keeps this socket on plain TCP: in the
	 * sockhash it would only pay for sk_msg on every send, with no peer to redirect to.
	 */
	if (peer && (active || peer_spliced(&key))) {
		if (bpf_sock_hash_update(skops, &meshlet_socks_v1, &key, BPF_NOEXIST) == 0) {
			c.flags |= MESHLET_CONN_SPLICED;
			c.path = MESHLET_PATH_SPLICED;
			if (active)
				global_inc(MESHLET_G_SPLICED);
		} else {
			global_inc(MESHLET_G_SOCKS_FULL);
		}
	}
	if (bpf_map_update_elem(&meshlet_conns_v1, &key, &c, BPF_ANY))
		global_inc(MESHLET_G_CONNS_FULL);
	bpf_sock_ops_cb_flags_set(skops,
				  (c.flags & MESHLET_CONN_SPLICED)
					  ? BPF_SOCK_OPS_STATE_CB_FLAG
					  : BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
}

/*
 * TCP_CONNECT_CB: watch the state of service connections so a failed connect is counted; a
 * tunnel-path socket now has its local port, so the agent's listener can find its origin.
 */
static __always_inline void conn_connecting(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct meshlet_origin *o = bpf_map_lookup_elem(&meshlet_origins_v1, &cookie);
	struct meshlet_tunnel_key tk = {};

	if (!o)
		return;
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
	if (o->path != MESHLET_PATH_TUNNEL && o->path != MESHLET_PATH_L7)
		return;
	tk.netns_cookie = bpf_get_netns_cookie(skops);
	tk.port = (__u16)skops->local_port;
	tk.family = skops->family == MESHLET_AF_INET6 && o->family == MESHLET_AF_INET6 ?
			    MESHLET_AF_INET6 : MESHLET_AF_INET;
	if (bpf_map_update_elem(&meshlet_tunnel_v1, &tk, o, BPF_ANY))
		global_inc(MESHLET_G_TUNNEL_FULL);
}

static __always_inline void conn_state(struct bpf_sock_ops *skops)
{
	struct meshlet_sock_key key = {};
	struct meshlet_conn_value *c;
	__u64 cookie;
	__u32 old = skops->args[0], new = skops->args[1];

	if (new != BPF_TCP_CLOSE)
		return;
	SOCK_KEY_FROM(skops, &key);
	cookie = bpf_get_socket_cookie(skops);
	c = bpf_map_lookup_elem(&meshlet_conns_v1, &key);
	if (c) {
		conn_counters(skops, c);
		c->end_ns = bpf_ktime_get_ns();
		c->flags |= MESHLET_CONN_CLOSED;
	} else if (old == BPF_TCP_SYN_SENT) {
		/* Never established: refused, reset or timed out. */
		struct meshlet_origin *o = bpf_map_lookup_elem(&meshlet_origins_v1, &cookie);
		struct meshlet_conn_value fc = {};
		struct meshlet_svc_stats *st;
		struct meshlet_ip_value *self;

		if (o) {
			st = svc_stats(o->svc_id);
			if (st)
				st->failed_connects++;
			self = local_pod(key.local, key.family);
			__builtin_memcpy(fc.orig_addr, o->orig_addr, sizeof(fc.orig_addr));
			fc.orig_port = o->orig_port;
			fc.svc_id = o->svc_id;
			fc.backend_id = o->backend_id;
			fc.pod_id = self ? self->pod_id : MESHLET_NO_ID;
			fc.peer_pod_id = MESHLET_NO_ID;
			fc.path = o->path;
			fc.flags = MESHLET_CONN_ACTIVE | MESHLET_CONN_FAILED | MESHLET_CONN_CLOSED;
			fc.start_ns = fc.end_ns = bpf_ktime_get_ns();
			if (bpf_map_update_elem(&meshlet_conns_v1, &key, &fc, BPF_ANY))
				global_inc(MESHLET_G_CONNS_FULL);
		}
	}
	bpf_map_delete_elem(&meshlet_origins_v1, &cookie);
}

static __always_inline void conn_rtt(struct bpf_sock_ops *skops)
{
	struct meshlet_sock_key key = {};
	struct meshlet_conn_value *c;

	SOCK_KEY_FROM(skops, &key);
	c = bpf_map_lookup_elem(&meshlet_conns_v1, &key);
	if (c)
		conn_counters(skops, c);
}

/* sk_msg verdict: hand the bytes straight to the peer socket's receive queue. */
static __always_inline int splice_msg(struct sk_msg_md *msg)
{
	struct meshlet_sock_key key = {}, peer = {};
	struct meshlet_conn_value *c, *pc;
	__u32 size = msg->size;

	SOCK_KEY_FROM(msg, &key);
	c = bpf_map_lookup_elem(&meshlet_conns_v1, &key);
	/* Once a byte went through TCP, later ones must too, or the stream could reorder. */
	if (c && !(c->flags & MESHLET_CONN_SPLICED))
		return SK_PASS;
	sock_key_peer(&key, &peer);
	if (bpf_msg_redirect_hash(msg, &meshlet_socks_v1, &peer, BPF_F_INGRESS) != SK_PASS) {
		if (c)
			c->flags &= ~MESHLET_CONN_SPLICED;
		return SK_PASS;
	}
	if (c)
		__sync_fetch_and_add(&c->spliced_bytes, size);
	pc = bpf_map_lookup_elem(&meshlet_conns_v1, &peer);
	if (pc)
		__sync_fetch_and_add(&pc->bytes_received, size);
	return SK_PASS;
}

#endif
