// SPDX-License-Identifier: GPL-2.0-only
/*
 * skanse runtime sensor: the kernel half.
 *
 * Four tp_btf programs (no kprobes, no fentry: the sensor must work on kernels that are
 * locked down or built without CONFIG_KPROBES):
 *   sys_exit              the syscalls userspace enabled in `skn_syscalls`, with their
 *                         arguments, return value, and for execve/execveat the new image
 *   sched_process_fork    a new process (threads are skipped): keeps the process table
 *   sched_process_exit    the last thread of a process exited
 * Everything else is filtered here, in the kernel: a syscall that is not in the table costs
 * one array lookup. Records are built in a per-CPU scratch buffer and copied into that
 * CPU's BPF ring buffer with their exact size, so a short path costs a short record. Every record
 * that passed the filter is counted as produced; a record the ring buffer had no room for
 * is counted as dropped (both per CPU in `skn_counters`), so userspace can prove
 * produced == delivered + dropped.
 *
 * The record layout is mirrored in src/skanse/runtime/records.py; tests compare the two
 * through the BTF of the compiled object.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define SCRATCH_SIZE 65536
#define HALF (SCRATCH_SIZE / 2)  /* every record is shorter than this */
#define MASK (HALF - 1)
#define MAX_PATH 4096            /* PATH_MAX */
#define MAX_NAME 256             /* NAME_MAX + 1 */
#define MAX_ARGV 4096            /* Falco caps proc.args at 4096 bytes too */
#define MAX_DEPTH 32             /* path components walked from a dentry */
#define MAX_SOCKADDR 128         /* sizeof(struct sockaddr_storage) */
#define ITEM_ROOM (MAX_PATH + 8) /* an item never starts later than HALF - ITEM_ROOM */
#define MAX_SYSCALLS 512
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AT_FDCWD -100
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define TS_COMPAT 0x0002

/* record kinds */
enum skn_kind {
	SKN_KIND_SYSCALL = 1,
	SKN_KIND_EXEC = 2,
	SKN_KIND_FORK = 3,
	SKN_KIND_EXIT = 4,
};

/* how sys_exit reads a syscall's arguments (the value of skn_syscalls[nr]; 0 = off) */
enum skn_class {
	SKN_CLASS_OFF = 0,
	SKN_CLASS_PLAIN = 1,         /* raw arguments only */
	SKN_CLASS_PATH0 = 2,         /* path at arg0, relative to the cwd */
	SKN_CLASS_DIRFD_PATH1 = 3,   /* dirfd arg0, path arg1 (openat, unlinkat, ...) */
	SKN_CLASS_PATH0_PATH1 = 4,   /* two paths (rename, link, symlink) */
	SKN_CLASS_RENAMEAT = 5,      /* dirfd arg0, path arg1, dirfd arg2, path arg3 */
	SKN_CLASS_SYMLINKAT = 6,     /* target arg0, dirfd arg1, linkpath arg2 */
	SKN_CLASS_CONNECT = 7,       /* fd arg0, sockaddr arg1 (len arg2) */
	SKN_CLASS_SOCK_RET = 8,      /* the socket the call returned (accept, dup) */
	SKN_CLASS_SENDTO = 9,        /* fd arg0, sockaddr arg4 (len arg5) */
	SKN_CLASS_SENDMSG = 10,      /* fd arg0, msghdr arg1 */
	SKN_CLASS_SOCK_FD = 11,      /* the socket at fd arg0 (listen) */
	SKN_CLASS_STR0 = 12,         /* a string at arg0 (memfd_create name) */
	SKN_CLASS_MOUNT = 13,        /* dev arg0, dir arg1, fstype arg2 */
	SKN_CLASS_STR1 = 14,         /* a string at arg1 (finit_module uargs) */
	SKN_CLASS_STR2 = 15,         /* a string at arg2 (init_module uargs) */
	SKN_CLASS_EXEC = 16,         /* execve/execveat: the new image on success */
	SKN_CLASS_OPENAT2 = 17,      /* openat + struct open_how at arg2 */
};

/* items following the fixed part of a record: u16 tag, u16 length, bytes */
enum skn_item {
	SKN_ITEM_PATH = 1,
	SKN_ITEM_PATH2 = 2,
	SKN_ITEM_BASE = 3,      /* directory PATH is relative to: u8 flags, components leaf first */
	SKN_ITEM_BASE2 = 4,     /* the same for PATH2 */
	SKN_ITEM_SOCK = 5,      /* struct skn_sock */
	SKN_ITEM_SOCKADDR = 6,  /* the sockaddr as the process passed it */
	SKN_ITEM_ARGV = 7,      /* argv: NUL-separated */
	SKN_ITEM_EXEPATH = 8,   /* executable: u8 flags, components leaf first */
	SKN_ITEM_CWD = 9,       /* working directory: u8 flags, components leaf first */
	SKN_ITEM_STR = 10,
	SKN_ITEM_STR2 = 11,
	SKN_ITEM_STR3 = 12,
	SKN_ITEM_OPEN_HOW = 13, /* struct open_how */
};

/* flags of a component list */
enum skn_walk {
	SKN_WALK_COMPLETE = 1,  /* reached the root: the path is absolute */
	SKN_WALK_TRUNCATED = 2, /* deeper than MAX_DEPTH or out of room */
};

/* exec flags */
enum skn_exe {
	SKN_EXE_FROM_MEMFD = 1,
	SKN_EXE_UPPER_LAYER = 2,
};

enum skn_counter {
	SKN_PRODUCED = 0,
	SKN_DROPPED = 1,      /* every record the ring buffer did not take */
	SKN_DROPPED_BUSY = 2, /* of those: the buffer had room (its lock was not taken in time) */
	SKN_RETRIED = 3,      /* reservations retried because the buffer had room */
	SKN_COUNTERS = 4,
};

struct skn_hdr {
	__u16 kind;
	__u16 nr;   /* syscall number (SYSCALL, EXEC) */
	__u32 size; /* the whole record */
	__u64 ts;   /* ns since boot (CLOCK_BOOTTIME) */
	__u32 tgid;
	__u32 tid;
	__s64 ret;  /* return value (SYSCALL, EXEC), exit code (EXIT) */
};

struct skn_syscall {
	struct skn_hdr hdr;
	__u32 uid; /* effective */
	__u32 gid;
	__u64 args[6];
};

struct skn_task {
	__u32 ppid;
	__u32 vpid;
	__u32 vtid;
	__u32 sid;
	__u32 vpgid;
	__u32 uid;  /* effective */
	__u32 gid;
	__u32 ruid;
	__u32 loginuid;
	__u32 tty;  /* new_encode_dev(major, minor), 0 when none */
	__u64 cap_effective;
	__u64 cap_permitted;
	__u64 cap_inheritable;
	__u64 cgroup_id; /* cgroup v2 */
	__u32 pidns;
	__u32 mntns;
	__u32 netns;
	__u32 exe_flags;
	__u64 start_ts; /* ns since boot */
	char comm[16];
};

struct skn_exec {
	struct skn_hdr hdr;
	struct skn_task task;
};

struct skn_fork {
	struct skn_hdr hdr;
	struct skn_task task;
};

struct skn_exit {
	struct skn_hdr hdr;
};

struct skn_sock {
	__u16 family;
	__u16 type;
	__u16 lport;
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
};

struct skn_config {
	__u32 self_tgid; /* the sensor's own events are not traced (no feedback loop) */
	__u32 flags;
};

/*
 * One ring buffer per CPU (userspace creates them and sets their size). A single shared
 * ring takes a lock that every CPU contends for; on this kernel it is a resilient spinlock
 * that gives up after a timeout, and in a VM whose vCPUs the hypervisor preempts it did:
 * records were lost with the buffer nearly empty. A per-CPU ring is only ever written by
 * its own CPU, with preemption off, so its lock is never contended. Userspace merges the
 * rings by timestamp.
 */
struct skn_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* userspace sets the number of CPUs */
	__type(key, __u32);
	__array(values, struct skn_ring);
} skn_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u8);
} skn_syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKN_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} skn_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skn_config);
} skn_config SEC(".maps");

/* the state of a path walk (see put_path), kept after the record area of the scratch */
struct skn_walk_state {
	__u64 dentry;
	__u64 vfsmnt;
	__u64 root_dentry;
	__u64 root_mnt;
	__u32 off;
	__u32 limit;
	__u32 flags;
};

#define WALK_STATE SCRATCH_SIZE

/* one scratch buffer per CPU (userspace sets max_entries to the number of CPUs) */
struct skn_buf {
	char data[SCRATCH_SIZE];
	struct skn_walk_state walk;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skn_buf);
} skn_scratch SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *value = bpf_map_lookup_elem(&skn_counters, &which);
	if (value)
		*value += 1;
}

static __always_inline char *scratch(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&skn_scratch, &cpu);
}

static __always_inline int is_self(__u32 tgid)
{
	__u32 zero = 0;
	struct skn_config *config = bpf_map_lookup_elem(&skn_config, &zero);
	return config && config->self_tgid == tgid;
}

/*
 * Copy the record to the ring buffer; a full buffer is a counted drop. No wakeup: the
 * consumer polls on a short timer instead. A wakeup is an irq_work, a self-IPI, which in a
 * VM is an exit to the hypervisor; measured here it cost 7-10 us per record when the
 * consumer was idle (each fork, exec and exit paid it).
 */
static __always_inline void emit(char *buf, __u32 size)
{
	count(SKN_PRODUCED);
	((struct skn_hdr *)buf)->size = size;
	__u32 cpu = bpf_get_smp_processor_id();
	void *ring = bpf_map_lookup_elem(&skn_rings, &cpu);
	if (!ring) {
		count(SKN_DROPPED);
		return;
	}
	if (bpf_ringbuf_output(ring, buf, size & MASK, BPF_RB_NO_WAKEUP) == 0)
		return;
	__u64 used = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 total = bpf_ringbuf_query(ring, BPF_RB_RING_SIZE);
	if (used + size + 64 < total) {
		/* room, but the reservation failed (the lock): try twice more before a loss */
		count(SKN_RETRIED);
		if (bpf_ringbuf_output(ring, buf, size & MASK, BPF_RB_NO_WAKEUP) == 0)
			return;
		if (bpf_ringbuf_output(ring, buf, size & MASK, BPF_RB_NO_WAKEUP) == 0)
			return;
		count(SKN_DROPPED_BUSY);
	}
	count(SKN_DROPPED);
}

/* -- items ---------------------------------------------------------------------------- */

static __always_inline __u32 put_user_str(char *buf, __u32 off, __u16 tag, const void *ptr,
					  __u32 max)
{
	if (!ptr || off > HALF - ITEM_ROOM)
		return off;
	long n = bpf_probe_read_user_str(buf + (off & MASK) + 4, max & (MAX_PATH * 2 - 1), ptr);
	if (n < 0)
		n = 0;
	*(__u16 *)(buf + (off & MASK)) = tag;
	*(__u16 *)(buf + (off & MASK) + 2) = (__u16)n;
	return off + 4 + (__u32)n;
}

static __always_inline __u32 put_user_bytes(char *buf, __u32 off, __u16 tag, const void *ptr,
					    __u32 len)
{
	if (!ptr || off > HALF - ITEM_ROOM)
		return off;
	if (len > MAX_SOCKADDR)
		len = MAX_SOCKADDR;
	barrier_var(len);
	len &= MAX_SOCKADDR * 2 - 1;
	if (len == 0)
		return off;
	if (bpf_probe_read_user(buf + (off & MASK) + 4, len, ptr) != 0)
		return off;
	*(__u16 *)(buf + (off & MASK)) = tag;
	*(__u16 *)(buf + (off & MASK) + 2) = (__u16)len;
	return off + 4 + len;
}

static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned long)fd >= max)
		return NULL;
	struct file **array = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &array[fd]);
	return file;
}

/*
 * The path of (dentry, vfsmnt) as components, leaf first, walking up to the task's root
 * (so a process in a container sees its own paths) and across mount points. Userspace
 * reverses and joins them. bpf_d_path is not available to tracepoint programs. Each step
 * is a bpf_loop callback whose state lives in the scratch map value, not on the stack:
 * values loaded from a map are not tracked precisely, so the verifier sees every
 * iteration as the same state and checks the step once instead of 32 times per call site.
 */
static long walk_step(__u32 index, void *unused)
{
	char *buf = scratch();
	if (!buf)
		return 1;
	struct skn_walk_state *walk = (struct skn_walk_state *)(buf + WALK_STATE);
	struct dentry *dentry = (struct dentry *)walk->dentry;
	struct vfsmount *vfsmnt = (struct vfsmount *)walk->vfsmnt;
	if (walk->dentry == walk->root_dentry && walk->vfsmnt == walk->root_mnt) {
		walk->flags |= SKN_WALK_COMPLETE;
		return 1;
	}
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	int pseudo = dentry == parent && dentry != BPF_CORE_READ(vfsmnt, mnt_root);
	if (!pseudo && (dentry == BPF_CORE_READ(vfsmnt, mnt_root) || dentry == parent)) {
		struct mount *mnt =
			(struct mount *)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt || !up) {
			walk->flags |= SKN_WALK_COMPLETE;
			return 1;
		}
		walk->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		walk->vfsmnt = (__u64)((void *)up + bpf_core_field_offset(struct mount, mnt));
		return 0;
	}
	__u32 off = walk->off;
	if (off > walk->limit || off > HALF - MAX_NAME) {
		walk->flags |= SKN_WALK_TRUNCATED;
		return 1;
	}
	const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
	long n = bpf_probe_read_kernel_str(buf + (off & MASK), MAX_NAME, name);
	if (n <= 0)
		return 1;
	walk->off = off + (__u32)n;
	walk->dentry = (__u64)parent;
	if (pseudo) { /* a dentry of no directory (a memfd, a pipe): its name is the path */
		walk->flags |= SKN_WALK_COMPLETE;
		return 1;
	}
	return 0;
}

static __always_inline __u32 put_path(char *buf, __u32 off, __u16 tag, struct dentry *dentry,
				      struct vfsmount *vfsmnt, struct task_struct *task)
{
	if (!dentry || !vfsmnt || off > HALF - ITEM_ROOM * 2)
		return off;
	struct skn_walk_state *walk = (struct skn_walk_state *)(buf + WALK_STATE);
	walk->dentry = (__u64)dentry;
	walk->vfsmnt = (__u64)vfsmnt;
	walk->root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry);
	walk->root_mnt = (__u64)BPF_CORE_READ(task, fs, root.mnt);
	walk->off = off + 5; /* item header + flags */
	walk->limit = off + ITEM_ROOM * 2 - MAX_NAME;
	walk->flags = 0;
	bpf_loop(MAX_DEPTH, walk_step, NULL, 0);
	__u32 flags = walk->flags;
	__u32 end = walk->off;
	if (end < off + 5 || end > HALF)
		return off; /* cannot happen; keeps the verifier's bounds */
	if (!(flags & SKN_WALK_COMPLETE))
		flags |= SKN_WALK_TRUNCATED;
	*(__u16 *)(buf + (off & MASK)) = tag;
	*(__u16 *)(buf + (off & MASK) + 2) = (__u16)(end - off - 4);
	*(__u8 *)(buf + (off & MASK) + 4) = (__u8)flags;
	return end;
}

static __always_inline __u32 put_cwd(char *buf, __u32 off, __u16 tag, struct task_struct *task)
{
	struct dentry *dentry = BPF_CORE_READ(task, fs, pwd.dentry);
	struct vfsmount *mnt = BPF_CORE_READ(task, fs, pwd.mnt);
	return put_path(buf, off, tag, dentry, mnt, task);
}

/* the directory a relative path is resolved against: the cwd or the file at dirfd */
static __always_inline __u32 put_base(char *buf, __u32 off, __u16 tag, struct task_struct *task,
				      long dirfd, const char *user_path)
{
	char first = '/';
	if (!user_path || bpf_probe_read_user(&first, 1, user_path) != 0 || first == '/')
		return off;
	if ((int)dirfd == AT_FDCWD)
		return put_cwd(buf, off, tag, task);
	struct file *file = fd_file(task, (int)dirfd);
	if (!file)
		return off;
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct vfsmount *mnt = BPF_CORE_READ(file, f_path.mnt);
	return put_path(buf, off, tag, dentry, mnt, task);
}

static __always_inline __u32 put_sock(char *buf, __u32 off, struct task_struct *task, long fd)
{
	if (off > HALF - ITEM_ROOM)
		return off;
	struct file *file = fd_file(task, fd);
	if (!file)
		return off;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return off;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return off;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return off;
	struct skn_sock *info = (struct skn_sock *)(buf + (off & MASK) + 4);
	__builtin_memset(info, 0, sizeof(*info));
	info->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	info->type = (__u16)BPF_CORE_READ(sock, type);
	info->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	info->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (info->family == 2 /* AF_INET */) {
		__be32 laddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 raddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(info->laddr, &laddr, 4);
		__builtin_memcpy(info->raddr, &raddr, 4);
	} else if (info->family == 10 /* AF_INET6 */) {
		BPF_CORE_READ_INTO(&info->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&info->raddr, sk, __sk_common.skc_v6_daddr);
	}
	*(__u16 *)(buf + (off & MASK)) = SKN_ITEM_SOCK;
	*(__u16 *)(buf + (off & MASK) + 2) = sizeof(*info);
	return off + 4 + sizeof(*info);
}

/* -- task facts ----------------------------------------------------------------------- */

static __always_inline __u32 encode_dev(__u32 major, __u32 minor)
{
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

static __always_inline __u32 task_tty(struct task_struct *task)
{
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
	if (!tty)
		return 0;
	int index = BPF_CORE_READ(tty, index);
	int major = BPF_CORE_READ(tty, driver, major);
	int minor = BPF_CORE_READ(tty, driver, minor_start);
	return encode_dev(major, minor + index);
}

/* the pid as the task's own (active) pid namespace sees it */
static __always_inline __u32 pid_vnr(struct pid *pid)
{
	if (!pid)
		return 0;
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};
	bpf_probe_read_kernel(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return upid.nr;
}

static __always_inline __u32 pid_ns_inum(struct pid *pid)
{
	if (!pid)
		return 0;
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};
	bpf_probe_read_kernel(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return BPF_CORE_READ(upid.ns, ns.inum);
}

static __always_inline __u32 pid_nr(struct pid *pid)
{
	if (!pid)
		return 0;
	return BPF_CORE_READ(pid, numbers[0].nr);
}

static __always_inline void fill_task(struct skn_task *out, struct task_struct *task)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);
	struct signal_struct *signal = BPF_CORE_READ(task, signal);
	struct pid *tgid_pid = BPF_CORE_READ(signal, pids[PIDTYPE_TGID]);
	struct pid *thread_pid = BPF_CORE_READ(task, thread_pid);

	out->ppid = BPF_CORE_READ(task, real_parent, tgid);
	out->vpid = pid_vnr(tgid_pid);
	out->vtid = pid_vnr(thread_pid);
	out->sid = pid_nr(BPF_CORE_READ(signal, pids[PIDTYPE_SID]));
	out->vpgid = pid_vnr(BPF_CORE_READ(signal, pids[PIDTYPE_PGID]));
	out->uid = BPF_CORE_READ(cred, euid.val);
	out->gid = BPF_CORE_READ(cred, egid.val);
	out->ruid = BPF_CORE_READ(cred, uid.val);
	out->loginuid = BPF_CORE_READ(task, loginuid.val);
	out->tty = task_tty(task);
	BPF_CORE_READ_INTO(&out->cap_effective, cred, cap_effective);
	BPF_CORE_READ_INTO(&out->cap_permitted, cred, cap_permitted);
	BPF_CORE_READ_INTO(&out->cap_inheritable, cred, cap_inheritable);
	out->pidns = pid_ns_inum(thread_pid);
	out->mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	out->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	out->start_ts = BPF_CORE_READ(task, group_leader, start_boottime);
	BPF_CORE_READ_STR_INTO(&out->comm, task, comm);
}

/* is the executable a memfd, or a file written in the container's upper (writable) layer */
static __always_inline __u32 exe_flags(struct file *exe)
{
	__u32 flags = 0;
	if (!exe)
		return 0;
	const unsigned char *name = BPF_CORE_READ(exe, f_path.dentry, d_name.name);
	char prefix[6] = {};
	bpf_probe_read_kernel(prefix, sizeof(prefix), name);
	if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
	    prefix[4] == 'd' && prefix[5] == ':')
		flags |= SKN_EXE_FROM_MEMFD;
	struct inode *inode = BPF_CORE_READ(exe, f_inode);
	if (inode && BPF_CORE_READ(inode, i_sb, s_magic) == OVERLAYFS_SUPER_MAGIC &&
	    bpf_core_type_exists(struct ovl_inode)) {
		struct ovl_inode *ovl = (struct ovl_inode *)((void *)inode -
						bpf_core_field_offset(struct ovl_inode, vfs_inode));
		if (BPF_CORE_READ(ovl, __upperdentry))
			flags |= SKN_EXE_UPPER_LAYER;
	}
	return flags;
}

static __always_inline void emit_exec(struct task_struct *task, struct pt_regs *regs, long nr,
				      long ret)
{
	char *buf = scratch();
	if (!buf)
		return;
	struct skn_exec *rec = (struct skn_exec *)buf;
	__u64 id = bpf_get_current_pid_tgid();
	rec->hdr.kind = SKN_KIND_EXEC;
	rec->hdr.nr = (__u16)nr;
	rec->hdr.ts = bpf_ktime_get_boot_ns();
	rec->hdr.tgid = id >> 32;
	rec->hdr.tid = (__u32)id;
	rec->hdr.ret = ret;
	fill_task(&rec->task, task);
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	rec->task.exe_flags = exe_flags(exe);
	rec->task.cgroup_id = bpf_get_current_cgroup_id();

	__u32 off = sizeof(*rec);
	unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(mm, arg_end);
	__u32 len = 0;
	if (arg_end > arg_start)
		len = arg_end - arg_start > MAX_ARGV ? MAX_ARGV : (__u32)(arg_end - arg_start);
	barrier_var(len); /* the mask below must stay: the verifier needs the bound */
	len &= MAX_ARGV * 2 - 1;
	if (len > 0 && bpf_probe_read_user(buf + (off & MASK) + 4, len, (void *)arg_start) == 0) {
		*(__u16 *)(buf + (off & MASK)) = SKN_ITEM_ARGV;
		*(__u16 *)(buf + (off & MASK) + 2) = (__u16)len;
		off += 4 + len;
	}
	if (exe) {
		struct dentry *dentry = BPF_CORE_READ(exe, f_path.dentry);
		struct vfsmount *mnt = BPF_CORE_READ(exe, f_path.mnt);
		off = put_path(buf, off, SKN_ITEM_EXEPATH, dentry, mnt, task);
	}
	off = put_cwd(buf, off, SKN_ITEM_CWD, task);
	emit(buf, off);
}

/* -- programs ------------------------------------------------------------------------- */

SEC("tp_btf/sys_exit")
int BPF_PROG(skn_sys_exit, struct pt_regs *regs, long ret)
{
	__u32 nr = (__u32)regs->orig_ax;
	if (nr >= MAX_SYSCALLS)
		return 0;
	__u8 *class_p = bpf_map_lookup_elem(&skn_syscalls, &nr);
	if (!class_p || *class_p == SKN_CLASS_OFF)
		return 0;
	__u8 class = *class_p;
	struct task_struct *task = bpf_get_current_task_btf();
#ifdef __TARGET_ARCH_x86
	if (task->thread_info.status & TS_COMPAT) /* 32-bit syscall numbers differ */
		return 0;
#endif
	__u64 id = bpf_get_current_pid_tgid();
	if (is_self(id >> 32))
		return 0;
	if (class == SKN_CLASS_EXEC) {
		if (ret == 0) /* a failed exec starts no process */
			emit_exec(task, regs, nr, ret);
		return 0;
	}
	char *buf = scratch();
	if (!buf)
		return 0;
	struct skn_syscall *rec = (struct skn_syscall *)buf;
	const struct cred *cred = task->cred;
	rec->hdr.kind = SKN_KIND_SYSCALL;
	rec->hdr.nr = (__u16)nr;
	rec->hdr.ts = bpf_ktime_get_boot_ns();
	rec->hdr.tgid = id >> 32;
	rec->hdr.tid = (__u32)id;
	rec->hdr.ret = ret;
	rec->uid = cred->euid.val;
	rec->gid = cred->egid.val;
	rec->args[0] = regs->di;
	rec->args[1] = regs->si;
	rec->args[2] = regs->dx;
	rec->args[3] = regs->r10;
	rec->args[4] = regs->r8;
	rec->args[5] = regs->r9;
	__u32 off = sizeof(*rec);
	const char *p0 = (const char *)rec->args[0];
	const char *p1 = (const char *)rec->args[1];
	const char *p2 = (const char *)rec->args[2];
	const char *p3 = (const char *)rec->args[3];

	switch (class) {
	case SKN_CLASS_PATH0:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p0, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, AT_FDCWD, p0);
		break;
	case SKN_CLASS_DIRFD_PATH1:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, (long)rec->args[0], p1);
		break;
	case SKN_CLASS_OPENAT2:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, (long)rec->args[0], p1);
		off = put_user_bytes(buf, off, SKN_ITEM_OPEN_HOW, p2, sizeof(struct open_how));
		break;
	case SKN_CLASS_PATH0_PATH1:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p0, MAX_PATH);
		off = put_user_str(buf, off, SKN_ITEM_PATH2, p1, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, AT_FDCWD, p0);
		off = put_base(buf, off, SKN_ITEM_BASE2, task, AT_FDCWD, p1);
		break;
	case SKN_CLASS_RENAMEAT:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		off = put_user_str(buf, off, SKN_ITEM_PATH2, p3, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, (long)rec->args[0], p1);
		off = put_base(buf, off, SKN_ITEM_BASE2, task, (long)rec->args[2], p3);
		break;
	case SKN_CLASS_SYMLINKAT:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p0, MAX_PATH);
		off = put_user_str(buf, off, SKN_ITEM_PATH2, p2, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE2, task, (long)rec->args[1], p2);
		break;
	case SKN_CLASS_CONNECT:
		off = put_sock(buf, off, task, (long)rec->args[0]);
		off = put_user_bytes(buf, off, SKN_ITEM_SOCKADDR, p1, (__u32)rec->args[2]);
		break;
	case SKN_CLASS_SOCK_RET:
		off = put_sock(buf, off, task, ret);
		break;
	case SKN_CLASS_SOCK_FD:
		off = put_sock(buf, off, task, (long)rec->args[0]);
		break;
	case SKN_CLASS_SENDTO:
		off = put_sock(buf, off, task, (long)rec->args[0]);
		off = put_user_bytes(buf, off, SKN_ITEM_SOCKADDR, (const void *)rec->args[4],
				     (__u32)rec->args[5]);
		break;
	case SKN_CLASS_SENDMSG: {
		off = put_sock(buf, off, task, (long)rec->args[0]);
		struct user_msghdr msg = {};
		if (p1 && bpf_probe_read_user(&msg, sizeof(msg), p1) == 0)
			off = put_user_bytes(buf, off, SKN_ITEM_SOCKADDR, msg.msg_name,
					     (__u32)msg.msg_namelen);
		break;
	}
	case SKN_CLASS_STR0:
		off = put_user_str(buf, off, SKN_ITEM_STR, p0, MAX_NAME);
		break;
	case SKN_CLASS_STR1:
		off = put_user_str(buf, off, SKN_ITEM_STR, p1, MAX_NAME);
		break;
	case SKN_CLASS_STR2:
		off = put_user_str(buf, off, SKN_ITEM_STR, p2, MAX_NAME);
		break;
	case SKN_CLASS_MOUNT:
		off = put_user_str(buf, off, SKN_ITEM_STR, p0, MAX_PATH);
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		off = put_user_str(buf, off, SKN_ITEM_STR3, p2, MAX_NAME);
		off = put_base(buf, off, SKN_ITEM_BASE, task, AT_FDCWD, p1);
		break;
	default:
		break;
	}
	emit(buf, off);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(skn_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u32 child_pid = BPF_CORE_READ(child, pid);
	if (child_tgid != child_pid) /* a new thread, not a new process */
		return 0;
	if (is_self(BPF_CORE_READ(parent, tgid)))
		return 0;
	char *buf = scratch();
	if (!buf)
		return 0;
	struct skn_fork *rec = (struct skn_fork *)buf;
	rec->hdr.kind = SKN_KIND_FORK;
	rec->hdr.nr = 0;
	rec->hdr.ts = bpf_ktime_get_boot_ns();
	rec->hdr.tgid = child_tgid;
	rec->hdr.tid = child_pid;
	rec->hdr.ret = 0;
	fill_task(&rec->task, child);
	rec->task.ppid = BPF_CORE_READ(parent, tgid); /* the forking process, before reparenting */
	rec->task.exe_flags = 0;
	rec->task.cgroup_id = bpf_get_current_cgroup_id(); /* the child starts in its parent's */
	emit(buf, sizeof(*rec));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(skn_exit, struct task_struct *task)
{
	/* only once the whole thread group is gone */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (is_self(tgid))
		return 0;
	char *buf = scratch();
	if (!buf)
		return 0;
	struct skn_exit *rec = (struct skn_exit *)buf;
	rec->hdr.kind = SKN_KIND_EXIT;
	rec->hdr.nr = 0;
	rec->hdr.ts = bpf_ktime_get_boot_ns();
	rec->hdr.tgid = tgid;
	rec->hdr.tid = BPF_CORE_READ(task, pid);
	rec->hdr.ret = BPF_CORE_READ(task, exit_code);
	emit(buf, sizeof(*rec));
	return 0;
}
