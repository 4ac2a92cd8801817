// placeholder, replaced by the datapath
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("cgroup/connect4")
int meshlet_connect4(struct bpf_sock_addr *ctx) { return 1; }
char LICENSE[] SEC("license") = "Dual BSD/GPL";
