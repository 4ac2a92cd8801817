// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The floor of same-node splicing, for bench/run.sh: the least a sockops + sk_msg datapath can
// do. sockops puts every established IPv4 TCP socket of its cgroup into a sockhash keyed by the
// socket's 4-tuple; sk_msg hands each message straight to the socket at the other end, when
// that socket is in the map. No services, no enrollment, no policy, no counters: meshlet's full
// datapath (bpf/meshlet.bpf.c) is measured against this in the same run.
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2

struct bare_key {
	__u32 local_ip;
	__u32 remote_ip;
	__u16 local_port;  // host order
	__u16 remote_port; // host order
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct bare_key);
	__type(value, __u64);
} bare_socks SEC(".maps");

// In bpf_sock_ops and sk_msg_md local_port is in host order and remote_port is the
// network-order port in the upper 16 bits.
SEC("sockops")
int bare_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET)
		return 1;
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	struct bare_key k = {
		.local_ip = skops->local_ip4,
		.remote_ip = skops->remote_ip4,
		.local_port = (__u16)skops->local_port,
		.remote_port = (__u16)bpf_ntohl(skops->remote_port),
	};
	bpf_sock_hash_update(skops, &bare_socks, &k, BPF_ANY);
	return 1;
}

SEC("sk_msg")
int bare_sk_msg(struct sk_msg_md *msg)
{
	if (msg->family != AF_INET)
		return SK_PASS;
	struct bare_key peer = {
		.local_ip = msg->remote_ip4,
		.remote_ip = msg->local_ip4,
		.local_port = (__u16)bpf_ntohl(msg->remote_port),
		.remote_port = (__u16)msg->local_port,
	};
	// No peer in the map (e.g. the other end is outside the cgroup): the normal stack.
	bpf_msg_redirect_hash(msg, &bare_socks, &peer, BPF_F_INGRESS);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
