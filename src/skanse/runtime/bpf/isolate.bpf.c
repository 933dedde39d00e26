// SPDX-License-Identifier: GPL-2.0
/*
 * skanse's network isolation of a container, attached to the container's cgroup v2
 * directory: every packet in or out, and every connect(), of every process of that cgroup
 * is refused except on loopback. The programs act on the cgroup, not on a process or a
 * network namespace: isolation takes effect at once, covers processes that start later,
 * and needs no live process of the container to install or to remove. The links are
 * pinned in bpffs so that they outlive the sensor; `skanse runtime release` unpins them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* whether the packet's far end (source on ingress, destination on egress) is loopback */
static __always_inline int loopback(struct __sk_buff *skb, int ingress)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) != 0)
			return 0;
		__u32 addr = bpf_ntohl(ingress ? ip.saddr : ip.daddr);
		return (addr >> 24) == 127;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) != 0)
			return 0;
		struct in6_addr *a = ingress ? &ip6.saddr : &ip6.daddr;
		return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
		       a->in6_u.u6_addr32[2] == 0 && a->in6_u.u6_addr32[3] == bpf_htonl(1);
	}
	return 0;
}

SEC("cgroup_skb/ingress")
int skn_isolate_ingress(struct __sk_buff *skb)
{
	return loopback(skb, 1); /* 1: pass, 0: drop */
}

SEC("cgroup_skb/egress")
int skn_isolate_egress(struct __sk_buff *skb)
{
	return loopback(skb, 0);
}

SEC("cgroup/connect4")
int skn_isolate_connect4(struct bpf_sock_addr *ctx)
{
	return (bpf_ntohl(ctx->user_ip4) >> 24) == 127; /* 0: connect() fails with EPERM */
}

SEC("cgroup/connect6")
int skn_isolate_connect6(struct bpf_sock_addr *ctx)
{
	return ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 && ctx->user_ip6[2] == 0 &&
	       ctx->user_ip6[3] == bpf_htonl(1);
}
