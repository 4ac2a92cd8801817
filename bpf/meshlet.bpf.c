// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * meshlet's kernel datapath. Entry points are thin; the logic lives in lib/:
 *   lib/sock_lb.h  service address -> backend at connect/sendmsg, reverse at getpeername/recvmsg
 *   lib/conn.h     connection tracking (sockops) and the same-node splice (sk_msg)
 *   lib/inbound.h  inbound capture in a pod's netns (sk_lookup)
 *   lib/maps.h     every map, pinned by name
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/conn.h"
#include "lib/inbound.h"
#include "lib/maps.h"
#include "lib/sock_lb.h"

static __always_inline int connect_verdict(enum xlate_result r)
{
	return r == XLATE_REFUSE ? refuse() : 1;
}

SEC("cgroup/connect4")
int meshlet_connect4(struct bpf_sock_addr *ctx)
{
	return connect_verdict(xlate_fwd(ctx, MESHLET_AF_INET, 0));
}

SEC("cgroup/connect6")
int meshlet_connect6(struct bpf_sock_addr *ctx)
{
	return connect_verdict(xlate_fwd(ctx, MESHLET_AF_INET6, 0));
}

SEC("cgroup/sendmsg4")
int meshlet_sendmsg4(struct bpf_sock_addr *ctx)
{
	return connect_verdict(xlate_fwd(ctx, MESHLET_AF_INET, 1));
}

SEC("cgroup/sendmsg6")
int meshlet_sendmsg6(struct bpf_sock_addr *ctx)
{
	return connect_verdict(xlate_fwd(ctx, MESHLET_AF_INET6, 1));
}

SEC("cgroup/recvmsg4")
int meshlet_recvmsg4(struct bpf_sock_addr *ctx)
{
	xlate_udp_rev(ctx, MESHLET_AF_INET);
	return 1;
}

SEC("cgroup/recvmsg6")
int meshlet_recvmsg6(struct bpf_sock_addr *ctx)
{
	xlate_udp_rev(ctx, MESHLET_AF_INET6);
	return 1;
}

SEC("cgroup/getpeername4")
int meshlet_getpeername4(struct bpf_sock_addr *ctx)
{
	xlate_peer(ctx, MESHLET_AF_INET);
	return 1;
}

SEC("cgroup/getpeername6")
int meshlet_getpeername6(struct bpf_sock_addr *ctx)
{
	xlate_peer(ctx, MESHLET_AF_INET6);
	return 1;
}

SEC("sockops")
int meshlet_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		conn_connecting(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		conn_established(skops, 1);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		conn_established(skops, 0);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		conn_state(skops);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		conn_rtt(skops);
		break;
	}
	return 1;
}

SEC("sk_msg")
int meshlet_sk_msg(struct sk_msg_md *msg)
{
	return splice_msg(msg);
}

/* Attached per enrolled pod netns, not at the cgroup. */
SEC("sk_lookup")
int meshlet_sk_lookup(struct bpf_sk_lookup *ctx)
{
	return inbound_lookup(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
