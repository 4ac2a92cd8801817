/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * meshlet BPF map keys and values: the one definition shared by the BPF
 * programs (bpf/) and the agent (agent/datapath/). Every struct has explicit
 * padding; the C++ side static_asserts the sizes.
 *
 * Addresses are 16 bytes; IPv4 uses addr[0] only (network byte order) and the
 * remaining words are zero. Ports in keys and values are in host byte order.
 * Maps carry a version suffix (_v1) so a new agent can migrate an old one's.
 */
#ifndef MESHLET_MAPS_H
#define MESHLET_MAPS_H

#include <linux/types.h>

#define MESHLET_MAX_SERVICES 65536
#define MESHLET_MAX_BACKENDS 262144
#define MESHLET_MAX_PODS 16384
#define MESHLET_MAX_CONNS 65536
#define MESHLET_MAX_ORIGINS 65536
#define MESHLET_MAGLEV_SIZE 251 /* prime: slots in one service's affinity table */
#define MESHLET_MAX_MAGLEV (MESHLET_MAX_SERVICES * 4)
#define MESHLET_MAX_SOCKS 65536
#define MESHLET_MAX_REMOTE_IPS 262144
#define MESHLET_MAX_AUTHZ 262144         /* same-node (source pod, destination pod, port) verdicts */
#define MESHLET_MAX_AUTHZ_POLICIES 4096  /* AuthorizationPolicy indexes for denial counters */

/* The agent's in-pod ports (Istio ambient's numbers). */
#define MESHLET_OUTBOUND_PORT 15001 /* 127.0.0.1 / ::1: tunnel-path sockets are rewritten here */
#define MESHLET_INBOUND_PORT 15006  /* 127.0.0.1 / ::1: plaintext inbound steered by sk_lookup */
#define MESHLET_HBONE_PORT 15008    /* pod IP: HBONE (HTTP/2 CONNECT over mTLS) from other nodes */

/* SO_MARK of the agent's own sockets inside pods: the datapath leaves them alone. */
#define MESHLET_AGENT_MARK 0x539

#define MESHLET_AF_INET 2
#define MESHLET_AF_INET6 10

/* Load-balancing algorithms (meshlet_svc_value.lb_algo). */
enum meshlet_lb_algo {
	MESHLET_LB_RANDOM = 0,
	MESHLET_LB_ROUND_ROBIN = 1,
	MESHLET_LB_MAGLEV = 2, /* sessionAffinity: ClientIP */
};

/* meshlet_svc_value.flags */
#define MESHLET_SVC_PREFER_CLOSE 0x1 /* trafficDistribution: PreferClose */
#define MESHLET_SVC_L7 0x2           /* HTTP rules apply: every TCP connect goes to the agent */

/* Connection paths (meshlet_origin.path, meshlet_conn_value.path). */
enum meshlet_path {
	MESHLET_PATH_PASSTHROUGH = 0,
	MESHLET_PATH_BALANCED = 1, /* rewritten at connect, crosses the TCP/IP stack */
	MESHLET_PATH_SPLICED = 2,  /* both ends enrolled here: sk_msg splices the sockets */
	MESHLET_PATH_TUNNEL = 3,   /* to a mesh pod on another node: via the agent's HBONE tunnel */
	MESHLET_PATH_L7 = 4,	   /* a service with HTTP rules: the agent proxies each request */
};

/* meshlet_svc_v1: service frontend (cluster IP, port, protocol) -> service. */
struct meshlet_svc_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family;
};

struct meshlet_svc_value {
	__u32 svc_id;      /* index into per-service maps, < MESHLET_MAX_SERVICES */
	__u16 count;       /* ready backends: slots [0, count) */
	__u16 local_count; /* of which on this node: slots [0, local_count) */
	__u8 lb_algo;      /* enum meshlet_lb_algo */
	__u8 flags;        /* MESHLET_SVC_* */
	__u16 pad;
};

/* meshlet_backends_v1: (service, slot) -> ready backend. */
struct meshlet_backend_key {
	__u32 svc_id;
	__u32 slot;
};

#define MESHLET_BACKEND_LOCAL 0x1  /* backend pod runs on this node */
#define MESHLET_BACKEND_TUNNEL 0x2 /* an enrolled pod on another node: reached through HBONE */

struct meshlet_backend_value {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 flags; /* MESHLET_BACKEND_* */
	__u32 backend_id; /* stable id for stats; the agent maps it back to the endpoint */
};

/* meshlet_maglev_v1: (service, hash bucket) -> slot, for MESHLET_LB_MAGLEV. */
struct meshlet_maglev_key {
	__u32 svc_id;
	__u32 bucket; /* < MESHLET_MAGLEV_SIZE */
};

/* meshlet_pods_v1: netns cookie of an enrolled pod -> pod. */
struct meshlet_pod_value {
	__u32 pod_id;
	__u32 affinity_hash; /* hash of the pod's primary IP: the ClientIP affinity key */
};

/* meshlet_local_ips_v1: IP of an enrolled pod on this node -> pod id. */
struct meshlet_ip_key {
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

#define MESHLET_IP_AUTHZ 0x1 /* AuthorizationPolicies apply: same-node connects check meshlet_authz_v1 */

struct meshlet_ip_value {
	__u32 pod_id;
	__u32 flags; /* MESHLET_IP_* */
};

/*
 * meshlet_authz_v1: L4 authorization of same-node pairs, decided by the agent from the
 * AuthorizationPolicies and enforced at connect (the kernel attests both ends). port 0 holds
 * the verdict for every port no policy names; named ports whose verdict differs have their own.
 */
struct meshlet_authz_key {
	__u32 src_pod;
	__u32 dst_pod;
	__u16 port;
	__u8 pad[2];
};

struct meshlet_authz_value {
	__u8 allow;
	__u8 pad[3];
	__u32 policy;  /* deciding policy's index (agent's table), MESHLET_NO_ID when none */
	__u64 denied;  /* connects refused by this verdict (the kernel counts) */
};

/* meshlet_remote_ips_v1: IP of an enrolled pod on another node (key meshlet_ip_key). */
struct meshlet_remote_value {
	__u32 node_id; /* the agent's id for the pod's node */
	__u32 pad;
};

/* meshlet_origins_v1: socket cookie -> where the app meant to connect (TCP/UDP connect). */
struct meshlet_origin {
	__u32 orig_addr[4]; /* the service address the app dialled */
	__u32 backend_addr[4];
	__u16 orig_port;
	__u16 backend_port;
	__u8 family;
	__u8 proto;
	__u8 path;
	__u8 pad;
	__u32 svc_id;
	__u32 backend_id;
	__u32 pad2;
};

/*
 * meshlet_tunnel_v1: a tunnel-path connection as the agent's outbound listener sees it — the
 * pod's netns cookie and the app socket's local port (127.0.0.1 is every pod's) -> its origin.
 * Written by sockops when the app's connect starts; the agent reads and deletes it at accept.
 */
struct meshlet_tunnel_key {
	__u64 netns_cookie;
	__u16 port;
	__u8 family; /* of the loopback connection: MESHLET_AF_INET or MESHLET_AF_INET6 */
	__u8 pad[5];
};

/* meshlet_udp_rev_v1: (socket cookie, backend) -> service address, for unconnected UDP replies. */
struct meshlet_udp_rev_key {
	__u64 cookie;
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad[5];
};

struct meshlet_udp_rev_value {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad[5];
};

/* meshlet_socks_v1 (sockhash) and meshlet_conns_v1: a TCP socket seen from its own side. */
struct meshlet_sock_key {
	__u32 local[4];
	__u32 remote[4];
	__u16 lport;
	__u16 rport;
	__u8 family;
	__u8 pad[3];
};

/* meshlet_conn_value.flags */
#define MESHLET_CONN_ACTIVE 0x1   /* this side called connect() */
#define MESHLET_CONN_CLOSED 0x2   /* closed: final counters, the agent collects and deletes */
#define MESHLET_CONN_FAILED 0x4   /* connect never established (refused, reset, timed out) */
#define MESHLET_CONN_SPLICED 0x8  /* in the sockhash */
#define MESHLET_CONN_DENIED 0x10  /* refused at connect by an AuthorizationPolicy (no socket) */

/* meshlet_conns_v1: live and just-closed TCP connections of enrolled pods. */
struct meshlet_conn_value {
	__u32 orig_addr[4]; /* service address dialled (zero when not balanced) */
	__u16 orig_port;
	__u8 path;  /* enum meshlet_path */
	__u8 flags; /* MESHLET_CONN_* */
	__u32 svc_id;     /* 0xffffffff when not a service connection */
	__u32 backend_id;
	__u32 pod_id;     /* the enrolled pod on this side */
	__u32 peer_pod_id; /* the enrolled pod on the other side, 0xffffffff if none */
	__u32 policy;      /* MESHLET_CONN_DENIED: the deciding policy's index, or MESHLET_NO_ID */
	__u64 bytes_sent;     /* acked bytes (TCP) plus spliced bytes */
	__u64 bytes_received; /* received bytes (TCP); spliced bytes land on the peer's entry */
	__u64 spliced_bytes;  /* bytes this side sent through sk_msg */
	__u64 start_ns;
	__u64 end_ns;
	__u32 srtt_us;
	__u32 total_retrans;
};

/* meshlet_svc_stats_v1: per service id, counters the kernel bumps. */
struct meshlet_svc_stats {
	__u64 connects;        /* connect() rewritten to a backend */
	__u64 no_backend;      /* refused: no ready backend */
	__u64 failed_connects; /* rewritten but never established */
	__u64 udp_msgs;        /* sendmsg rewritten */
};

/* meshlet_global_v1 indices: map-wide counters. */
enum meshlet_global_counter {
	MESHLET_G_CONNS_FULL = 0,   /* conns map update failed */
	MESHLET_G_ORIGINS_FULL = 1, /* origins map update failed */
	MESHLET_G_SOCKS_FULL = 2,   /* sockhash update failed */
	MESHLET_G_SPLICED = 3,      /* connections put in the sockhash */
	MESHLET_G_TUNNEL_FULL = 4,  /* tunnel map update failed: the agent cannot route it */
	MESHLET_G_AUTHZ_DENIED = 5, /* same-node connects refused by AuthorizationPolicy */
	MESHLET_G_MAX = 8,
};

#define MESHLET_NO_ID 0xffffffffu

#endif /* MESHLET_MAPS_H */
