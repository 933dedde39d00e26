// SPDX-License-Identifier: GPL-2.0-only
/*
 * skanse runtime sensor: the kernel half.
 *
 * Four tp_btf programs (no kprobes, no fentry: the sensor must work on kernels that are
 * locked down or built without CONFIG_KPROBES):
 *   sys_exit              the syscalls userspace enabled in `skn_syscalls`, with their
 *                         arguments and return value
 *   sched_process_exec    a successful execve/execveat: the new image (its own program, so
 *                         the kernel's BPF statistics show what an exec costs)
 *   sched_process_fork    a new process (threads are skipped): keeps the process table
 *   sched_process_exit    the last thread of a process exited
 * Everything else is filtered here, in the kernel: a syscall that is not in the table costs
 * one array lookup. Records are built in a per-CPU scratch buffer and copied into that
 * CPU's BPF ring buffer with their exact size, so a short path costs a short record. Every record
 * that passed the filter is counted as produced; a record the ring buffer had no room for
 * is counted as dropped (both per CPU in `skn_counters`), so userspace can prove
 * produced == delivered + dropped.
 *
 * Kernel structures are read by plain loads through the typed (BTF) pointers tp_btf
 * programs receive: the verifier turns them into loads that cannot fault, at the cost of a
 * load. bpf_probe_read_kernel is a helper call, and calls are dear in this VM (return
 * thunks and retpolines): a fork record made some forty of them and took 1.7 us, with
 * loads it takes about 0.4 us. Helpers are left where a pointer has no type: one found in
 * memory by index (a pid's upid below the host level, a file at an fd), one computed with
 * container_of (struct mount, the overlay inode), and the path walks, whose state lives
 * in a map.
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
	SKN_ITEM_KILLED = 14,   /* u32: the kill rule the kernel acted on (bpf_send_signal) */
};

/* skn_syscalls[nr] bit: after this open, look the opened file up in skn_kill_paths */
#define SKN_CHECK_KILL 0x80

/* skn_config.flags */
enum skn_config_flag {
	SKN_KILL_HOST = 1,       /* in-kernel kills reach host processes too (allow_host) */
	SKN_KILL_UPPER_EXEC = 2, /* kill an exec of a file in the overlay's upper layer */
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
	SKN_KILLED = 4,       /* processes sent SIGKILL by the kernel program */
	SKN_COUNTERS = 5,
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
	__u32 flags;     /* enum skn_config_flag */
	__u64 wakeup_ns; /* wake the reader at most this often per CPU (see emit) */
	__u32 upper_exec_rule; /* the kill rule of SKN_KILL_UPPER_EXEC, reported back */
	__u32 reserved;
};

/* a path whose opening kills the opener: the hash of its components (see hash_step) ->
 * the file modes (FMODE_READ 1, FMODE_WRITE 2) the open must have, and the rule */
struct skn_kill_path {
	__u32 fmode;
	__u32 rule;
};

/*
 * One ring buffer per CPU (userspace creates them and sets their size). A single shared
 * ring takes a lock that every CPU contends for; on this kernel it is a resilient spinlock
 * that gives up after a timeout. (Records lost with the buffer nearly empty were first
 * blamed on that lock; the cause found later was the reader's torn consumer position, see
 * ringbuf.py.) A per-CPU ring is only ever written by its own CPU, with preemption off,
 * so its lock is never contended. Userspace merges the rings by timestamp.
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* enforce.py: KILL_PATHS */
	__type(key, __u64);
	__type(value, struct skn_kill_path);
} skn_kill_paths SEC(".maps");

/* cgroup v2 ids of containers: in-kernel kills act only there (unless SKN_KILL_HOST).
 * cgroup ids are never reused and nobody says when a container's cgroup goes: LRU, so the
 * cgroups of containers long gone make room for new ones (the lookup below keeps a live
 * container's entry recent). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} skn_kill_cgroups SEC(".maps");

/*
 * A process that shares its file table with another process (clone with CLONE_FILES and
 * without CLONE_THREAD) hands every descriptor it opens to that process: killing the
 * opener left the other one holding the open file, to read at leisure. When the opener's
 * table has more users than the opener has threads, sys_exit tail-calls skn_kill_sharers,
 * which sends SIGKILL to every task using that table too. It needs the task iterator
 * (6.7), bpf_task_acquire (6.2) and bpf_send_signal_task (6.13): userspace loads it, and fills this slot, only
 * where the kernel has both; elsewhere the tail call falls through and the opener alone is
 * killed (docs/runtime.md says so).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} skn_tail SEC(".maps");

/* per CPU: the file table skn_kill_sharers is to empty of tasks, set just before the tail
 * call (preemption is off in between) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} skn_sharers SEC(".maps");

/* per CPU: the timestamp of the last record that woke the reader */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} skn_wakeup SEC(".maps");

/* where a walk up the dentry tree stands (see walk_up) */
struct skn_walk_pos {
	__u64 dentry;
	__u64 vfsmnt;
	__u64 mnt_root; /* vfsmnt->mnt_root, read once per mount rather than per step */
	__u64 root_dentry;
	__u64 root_mnt;
};

/* the state of a path walk (see put_path), kept after the record area of the scratch */
struct skn_walk_state {
	struct skn_walk_pos pos;
	__u32 off;
	__u32 limit;
	__u32 flags;
};

#define WALK_STATE SCRATCH_SIZE
#define HASH_NAME 64 /* longest component a kill path may have, plus its NUL */

/* the state of a hashing walk (see hash_step) */
struct skn_hash_state {
	struct skn_walk_pos pos;
	__u64 hash;
	__u32 flags;
	__u32 pad;
	char name[HASH_NAME];
};

/* one scratch buffer per CPU (userspace sets max_entries to the number of CPUs) */
struct skn_buf {
	char data[SCRATCH_SIZE];
	struct skn_walk_state walk;
	struct skn_hash_state hash;
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
 * Copy the record to the ring buffer; a full buffer is a counted drop. A wakeup is an
 * irq_work, a self-IPI, which in a VM is an exit to the hypervisor: measured here it cost
 * 7-10 us per record when every record woke an idle reader. So a record wakes the reader
 * only if this CPU's last wakeup is `wakeup_ns` old (50 ms): the first record after a
 * quiet spell is seen at once, and under load the reader, which never sleeps longer than
 * that after it found records, is woken at most 20 times a second per CPU.
 */
static __always_inline void emit(char *buf, __u32 size)
{
	__u32 zero = 0;
	count(SKN_PRODUCED);
	((struct skn_hdr *)buf)->size = size;
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 ts = ((struct skn_hdr *)buf)->ts;
	__u64 *last = bpf_map_lookup_elem(&skn_wakeup, &zero);
	struct skn_config *config = bpf_map_lookup_elem(&skn_config, &zero);
	/* signed: a fork record's time (the child's start) can precede the last one's */
	if (last && config && (__s64)(ts - *last) >= (__s64)config->wakeup_ns) {
		flags = BPF_RB_FORCE_WAKEUP;
		*last = ts;
	}
	__u32 cpu = bpf_get_smp_processor_id();
	void *ring = bpf_map_lookup_elem(&skn_rings, &cpu);
	if (!ring) {
		count(SKN_DROPPED);
		return;
	}
	if (bpf_ringbuf_output(ring, buf, size & MASK, flags) == 0)
		return;
	__u64 used = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 total = bpf_ringbuf_query(ring, BPF_RB_RING_SIZE);
	if (used + size + 64 < total) {
		/* room, but the reservation failed: a moment's view of the consumer position
		 * (a torn one did this, see ringbuf.py) or the lock; twice more before a loss */
		count(SKN_RETRIED);
		if (bpf_ringbuf_output(ring, buf, size & MASK, flags) == 0)
			return;
		if (bpf_ringbuf_output(ring, buf, size & MASK, flags) == 0)
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
	struct fdtable *fdt = task->files->fdt;
	if (!fdt || (unsigned long)fd >= fdt->max_fds)
		return NULL;
	struct file **array = fdt->fd;
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &array[fd]); /* by index: no typed load */
	return file;
}

/* dentry->d_parent and dentry->d_name.name, adjacent in every layout seen (d_name is a
 * qstr: hash_len, then name), so one read instead of two */
struct skn_dentry_head {
	__u64 parent;
	__u64 hash_len;
	__u64 name;
};

static __always_inline int read_dentry_head(struct skn_dentry_head *head, __u64 dentry)
{
	__u32 parent_at = bpf_core_field_offset(struct dentry, d_parent);
	__u32 name_at = bpf_core_field_offset(struct dentry, d_name.name);
	if (name_at == parent_at + 16)
		return bpf_probe_read_kernel(head, sizeof(*head), (void *)(dentry + parent_at));
	head->parent = (__u64)BPF_CORE_READ((struct dentry *)dentry, d_parent);
	head->name = (__u64)BPF_CORE_READ((struct dentry *)dentry, d_name.name);
	return 0;
}

/*
 * The path of (dentry, vfsmnt) as components, leaf first, walking up to the task's root
 * (so a process in a container sees its own paths) and across mount points. Userspace
 * reverses and joins them. bpf_d_path is not available to tracepoint programs. Each step
 * is a bpf_loop callback whose state lives in the scratch map value, not on the stack:
 * values loaded from a map are not tracked precisely, so the verifier sees every
 * iteration as the same state and checks the step once instead of 32 times per call site.
 * The price is that the pointers are plain numbers there, read with helpers: two per
 * component (the dentry's parent and name pointer together, then the name), two more per
 * mount point crossed.
 */
enum skn_step {
	SKN_STEP_NAME = 0,  /* head.name is the next component; then go to head.parent */
	SKN_STEP_MOUNT = 1, /* crossed to the parent mount: walk on */
	SKN_STEP_ROOT = 2,  /* reached the root */
	SKN_STEP_PSEUDO = 3, /* a dentry of no directory (memfd, pipe): head.name is the path */
	SKN_STEP_FAIL = 4,
};

/* one step up from pos->dentry, shared by the path walk and the hashing walk */
static __always_inline int walk_up(struct skn_walk_pos *pos, struct skn_dentry_head *head)
{
	__u64 dentry = pos->dentry;
	if (dentry == pos->root_dentry && pos->vfsmnt == pos->root_mnt)
		return SKN_STEP_ROOT;
	if (read_dentry_head(head, dentry) != 0)
		return SKN_STEP_FAIL;
	if (dentry == head->parent && dentry != pos->mnt_root)
		return SKN_STEP_PSEUDO;
	if (dentry == pos->mnt_root || dentry == head->parent) {
		struct mount *mnt = (struct mount *)(pos->vfsmnt -
						     bpf_core_field_offset(struct mount, mnt));
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt || !up)
			return SKN_STEP_ROOT;
		pos->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		pos->vfsmnt = (__u64)up + bpf_core_field_offset(struct mount, mnt);
		pos->mnt_root = (__u64)BPF_CORE_READ(up, mnt.mnt_root);
		return SKN_STEP_MOUNT;
	}
	return SKN_STEP_NAME;
}

static long walk_step(__u32 index, void *unused)
{
	char *buf = scratch();
	if (!buf)
		return 1;
	struct skn_walk_state *walk = (struct skn_walk_state *)(buf + WALK_STATE);
	struct skn_dentry_head head = {};
	int step = walk_up(&walk->pos, &head);
	if (step == SKN_STEP_ROOT) {
		walk->flags |= SKN_WALK_COMPLETE;
		return 1;
	}
	if (step == SKN_STEP_FAIL)
		return 1;
	if (step == SKN_STEP_MOUNT)
		return 0;
	__u32 off = walk->off;
	if (off > walk->limit || off > HALF - MAX_NAME) {
		walk->flags |= SKN_WALK_TRUNCATED;
		return 1;
	}
	long n = bpf_probe_read_kernel_str(buf + (off & MASK), MAX_NAME, (void *)head.name);
	if (n <= 0)
		return 1;
	walk->off = off + (__u32)n;
	walk->pos.dentry = head.parent;
	if (step == SKN_STEP_PSEUDO) { /* its name is the path */
		walk->flags |= SKN_WALK_COMPLETE;
		return 1;
	}
	return 0;
}

/* `root` is the task's fs->root, read once by the caller for both of an event's walks */
static __always_inline __u32 put_path(char *buf, __u32 off, __u16 tag, struct dentry *dentry,
				      struct vfsmount *vfsmnt, struct dentry *mnt_root,
				      struct path *root)
{
	if (!dentry || !vfsmnt || off > HALF - ITEM_ROOM * 2)
		return off;
	struct skn_walk_state *walk = (struct skn_walk_state *)(buf + WALK_STATE);
	walk->pos.dentry = (__u64)dentry;
	walk->pos.vfsmnt = (__u64)vfsmnt;
	walk->pos.mnt_root = (__u64)mnt_root;
	walk->pos.root_dentry = (__u64)root->dentry;
	walk->pos.root_mnt = (__u64)root->mnt;
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

static __always_inline __u32 put_cwd(char *buf, __u32 off, __u16 tag, struct fs_struct *fs)
{
	struct vfsmount *mnt = fs->pwd.mnt;
	return put_path(buf, off, tag, fs->pwd.dentry, mnt, mnt->mnt_root, &fs->root);
}

/*
 * In-kernel kills. The opened file's path, as the kernel resolved it (symbolic links,
 * `//`, `..` and bind mounts already followed), is walked up to the task's root like
 * walk_step does and hashed rather than copied: each component's FNV-1a 64 hash, folded
 * leaf first as H = (H ^ h(component)) * FNV_PRIME from the FNV offset. Userspace folds
 * the kill paths' components the same way (skanse.runtime.enforce.path_hash). A component
 * of HASH_NAME bytes or more cannot be in a kill path and ends the walk without a match.
 */
#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static long hash_step(__u32 index, void *unused)
{
	char *buf = scratch();
	if (!buf)
		return 1;
	struct skn_hash_state *st = &((struct skn_buf *)buf)->hash;
	struct skn_dentry_head head = {};
	int step = walk_up(&st->pos, &head);
	if (step == SKN_STEP_ROOT) {
		st->flags |= SKN_WALK_COMPLETE;
		return 1;
	}
	if (step == SKN_STEP_MOUNT)
		return 0;
	if (step != SKN_STEP_NAME)
		return 1; /* a pseudo file (memfd, pipe) is never a kill path */
	long n = bpf_probe_read_kernel_str(st->name, HASH_NAME, (void *)head.name);
	if (n <= 1 || n >= HASH_NAME)
		return 1;
	__u64 h = FNV_OFFSET;
	for (int i = 0; i < HASH_NAME - 1; i++) {
		if (i >= n - 1)
			break;
		h ^= (__u8)st->name[i];
		h *= FNV_PRIME;
	}
	st->hash = (st->hash ^ h) * FNV_PRIME;
	st->pos.dentry = head.parent;
	return 0;
}

/* whether in-kernel kills may act on the current task */
static __always_inline int kill_in_scope(struct skn_config *config, __u32 tgid)
{
	if (tgid <= 1)
		return 0;
	if (config->flags & SKN_KILL_HOST)
		return 1;
	__u64 cgroup = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&skn_kill_cgroups, &cgroup) != NULL;
}

static __always_inline __u32 put_killed(char *buf, __u32 off, __u32 rule)
{
	if (off > HALF - 8)
		return off;
	*(__u16 *)(buf + (off & MASK)) = SKN_ITEM_KILLED;
	*(__u16 *)(buf + (off & MASK) + 2) = 4;
	*(__u32 *)(buf + (off & MASK) + 4) = rule;
	return off + 8;
}

/* after a successful open: SIGKILL before the syscall returns if the file is a kill path */
static __always_inline __u32 kill_on_open(char *buf, __u32 off, struct task_struct *task,
					  long fd, __u32 tgid)
{
	__u32 zero = 0;
	struct skn_config *config = bpf_map_lookup_elem(&skn_config, &zero);
	if (!config || !kill_in_scope(config, tgid))
		return off;
	struct file *file = fd_file(task, fd);
	if (!file)
		return off;
	struct path path = {};
	if (BPF_CORE_READ_INTO(&path, file, f_path) != 0)
		return off;
	struct skn_hash_state *st = &((struct skn_buf *)buf)->hash;
	struct fs_struct *fs = task->fs;
	st->pos.dentry = (__u64)path.dentry;
	st->pos.vfsmnt = (__u64)path.mnt;
	st->pos.mnt_root = (__u64)BPF_CORE_READ(path.mnt, mnt_root);
	st->pos.root_dentry = (__u64)fs->root.dentry;
	st->pos.root_mnt = (__u64)fs->root.mnt;
	st->hash = FNV_OFFSET;
	st->flags = 0;
	bpf_loop(MAX_DEPTH, hash_step, NULL, 0);
	if (!(st->flags & SKN_WALK_COMPLETE))
		return off;
	__u64 key = st->hash;
	struct skn_kill_path *target = bpf_map_lookup_elem(&skn_kill_paths, &key);
	if (!target)
		return off;
	__u32 fmode = BPF_CORE_READ(file, f_mode);
	if ((fmode & target->fmode) != target->fmode)
		return off;
	bpf_send_signal(9); /* SIGKILL, delivered before the return to user space */
	count(SKN_KILLED);
	/* threads share the table with their process; any user beyond them is another
	 * process, which keeps the descriptor after the opener dies */
	struct files_struct *files = task->files;
	if (files && files->count.counter > task->signal->nr_threads) {
		__u64 *sharers = bpf_map_lookup_elem(&skn_sharers, &zero);
		if (sharers)
			*sharers = (__u64)files;
	}
	return put_killed(buf, off, target->rule);
}

/* the directory a relative path is resolved against: the cwd or the file at dirfd;
 * `first` is the path's first byte, already copied into the record */
static __always_inline __u32 put_base(char *buf, __u32 off, __u16 tag, struct task_struct *task,
				      long dirfd, char first)
{
	if (first == '/' || first == 0)
		return off;
	struct fs_struct *fs = task->fs;
	if ((int)dirfd == AT_FDCWD)
		return put_cwd(buf, off, tag, fs);
	struct file *file = fd_file(task, (int)dirfd);
	if (!file)
		return off;
	struct path path = {};
	if (BPF_CORE_READ_INTO(&path, file, f_path) != 0)
		return off;
	return put_path(buf, off, tag, path.dentry, path.mnt, BPF_CORE_READ(path.mnt, mnt_root),
			&fs->root);
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

static __always_inline __u32 task_tty(struct signal_struct *signal)
{
	struct tty_struct *tty = signal->tty;
	if (!tty)
		return 0;
	struct tty_driver *driver = tty->driver;
	return encode_dev(driver->major, driver->minor_start + tty->index);
}

/*
 * Pids by namespace level: numbers[level] holds the pid as the namespace at that level sees
 * it. numbers[0] (the host) is a constant index, a plain load; a deeper level indexes a
 * flexible array, which only a helper can read.
 */
static __always_inline void read_upid(struct pid *pid, __u32 level, __u32 *nr, __u64 *ns)
{
	if (level == 0) {
		*nr = pid->numbers[0].nr;
		*ns = (__u64)pid->numbers[0].ns;
		return;
	}
	struct upid upid = {};
	bpf_probe_read_kernel(&upid, sizeof(upid), (void *)((__u64)pid +
		bpf_core_field_offset(struct pid, numbers) + (level & 31) * sizeof(upid)));
	*nr = upid.nr;
	*ns = (__u64)upid.ns;
}

/* a pid as the namespace (`ns`, at `level`) sees it; 0 when it cannot, as /proc shows it */
static __always_inline __u32 pid_in(struct pid *pid, __u32 level, __u64 ns)
{
	if (!pid || level > pid->level)
		return 0;
	__u32 nr = 0;
	__u64 at = 0;
	read_upid(pid, level, &nr, &at);
	return at == ns ? nr : 0;
}

static __always_inline __u64 read_cap(const kernel_cap_t *cap)
{
	if (bpf_core_field_exists(cap->val)) /* a u64 since 6.3 */
		return cap->val;
	__u64 value = 0; /* two u32 before: the same 8 bytes */
	bpf_probe_read_kernel(&value, sizeof(value), cap);
	return value;
}

static __always_inline void fill_task(struct skn_task *out, struct task_struct *task)
{
	const struct cred *cred = task->cred;
	struct signal_struct *signal = task->signal;
	struct nsproxy *nsproxy = task->nsproxy;

	out->ppid = task->real_parent->tgid;
	/* a fork record is a new process and an exec leaves one thread, so the thread's pid
	 * is the process's (vtid == vpid); the task's own (active) pid namespace is the
	 * deepest level of that pid */
	struct pid *pid = task->thread_pid;
	__u32 level = pid->level;
	__u64 own_ns = 0;
	read_upid(pid, level, &out->vpid, &own_ns);
	out->pidns = level == 0 ? pid->numbers[0].ns->ns.inum
				: BPF_CORE_READ((struct pid_namespace *)own_ns, ns.inum);
	out->vtid = out->vpid;
	struct pid *session = signal->pids[PIDTYPE_SID];
	out->sid = session ? session->numbers[0].nr : 0;
	/* as that namespace sees the group: 0 when the group's leader is outside it */
	out->vpgid = pid_in(signal->pids[PIDTYPE_PGID], level, own_ns);
	out->uid = cred->euid.val;
	out->gid = cred->egid.val;
	out->ruid = cred->uid.val;
	out->loginuid = task->loginuid.val;
	out->tty = task_tty(signal);
	out->cap_effective = read_cap(&cred->cap_effective);
	out->cap_permitted = read_cap(&cred->cap_permitted);
	out->cap_inheritable = read_cap(&cred->cap_inheritable);
	out->mntns = nsproxy ? nsproxy->mnt_ns->ns.inum : 0;
	out->netns = nsproxy ? nsproxy->net_ns->ns.inum : 0;
	out->start_ts = task->group_leader->start_boottime;
	/* both callers' tasks have the current task's name: the child at fork, or current */
	bpf_get_current_comm(out->comm, sizeof(out->comm));
}

/* is the executable a memfd, or a file written in the container's upper (writable) layer */
static __always_inline __u32 exe_flags(struct file *exe)
{
	__u32 flags = 0;
	if (!exe)
		return 0;
	const unsigned char *name = exe->f_path.dentry->d_name.name;
	char prefix[6] = {};
	bpf_probe_read_kernel(prefix, sizeof(prefix), name);
	if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
	    prefix[4] == 'd' && prefix[5] == ':')
		flags |= SKN_EXE_FROM_MEMFD;
	struct inode *inode = exe->f_inode;
	if (inode && inode->i_sb->s_magic == OVERLAYFS_SUPER_MAGIC &&
	    bpf_core_type_exists(struct ovl_inode)) {
		struct ovl_inode *ovl = (struct ovl_inode *)((__u64)inode -
						bpf_core_field_offset(struct ovl_inode, vfs_inode));
		if (BPF_CORE_READ(ovl, __upperdentry))
			flags |= SKN_EXE_UPPER_LAYER;
	}
	return flags;
}

static __always_inline void emit_exec(struct task_struct *task, long nr)
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
	rec->hdr.ret = 0;
	fill_task(&rec->task, task);
	struct mm_struct *mm = task->mm;
	struct file *exe = mm->exe_file;
	rec->task.exe_flags = exe_flags(exe);
	rec->task.cgroup_id = bpf_get_current_cgroup_id();
	__u32 zero = 0;
	struct skn_config *config = bpf_map_lookup_elem(&skn_config, &zero);
	int killed = 0;
	if (config && (config->flags & SKN_KILL_UPPER_EXEC) &&
	    (rec->task.exe_flags & SKN_EXE_UPPER_LAYER) && kill_in_scope(config, rec->hdr.tgid)) {
		bpf_send_signal(9); /* the new image never runs an instruction */
		count(SKN_KILLED);
		killed = 1;
	}

	__u32 off = sizeof(*rec);
	unsigned long arg_start = mm->arg_start;
	unsigned long arg_end = mm->arg_end;
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
	struct fs_struct *fs = task->fs;
	if (exe) {
		struct vfsmount *mnt = exe->f_path.mnt;
		off = put_path(buf, off, SKN_ITEM_EXEPATH, exe->f_path.dentry, mnt, mnt->mnt_root,
			       &fs->root);
	}
	off = put_cwd(buf, off, SKN_ITEM_CWD, fs);
	if (killed && config)
		off = put_killed(buf, off, config->upper_exec_rule);
	emit(buf, off);
}

/* -- programs ------------------------------------------------------------------------- */

/* the first byte of the string item that starts at `item` (0 when none was written) */
static __always_inline char item_first(char *buf, __u32 item, __u32 end)
{
	if (end <= item + 4)
		return 0;
	return buf[(item & MASK) + 4];
}

SEC("tp_btf/sys_exit")
int BPF_PROG(skn_sys_exit, struct pt_regs *regs, long ret)
{
	__u32 nr = (__u32)regs->orig_ax;
	if (nr >= MAX_SYSCALLS)
		return 0;
	__u8 *class_p = bpf_map_lookup_elem(&skn_syscalls, &nr);
	if (!class_p || *class_p == SKN_CLASS_OFF)
		return 0;
	__u8 class = *class_p & ~SKN_CHECK_KILL;
	__u8 check_kill = *class_p & SKN_CHECK_KILL;
	if (class == SKN_CLASS_EXEC) /* recorded by skn_exec, on success only */
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
#ifdef __TARGET_ARCH_x86
	if (task->thread_info.status & TS_COMPAT) /* 32-bit syscall numbers differ */
		return 0;
#endif
	__u64 id = bpf_get_current_pid_tgid();
	if (is_self(id >> 32))
		return 0;
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
	__u32 at, at2;
	char first, first2;
	const char *p0 = (const char *)rec->args[0];
	const char *p1 = (const char *)rec->args[1];
	const char *p2 = (const char *)rec->args[2];
	const char *p3 = (const char *)rec->args[3];

	switch (class) {
	case SKN_CLASS_PATH0:
		at = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH, p0, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, AT_FDCWD, item_first(buf, at, off));
		break;
	case SKN_CLASS_DIRFD_PATH1:
		at = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, (long)rec->args[0],
			       item_first(buf, at, off));
		break;
	case SKN_CLASS_OPENAT2:
		at = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE, task, (long)rec->args[0],
			       item_first(buf, at, off));
		off = put_user_bytes(buf, off, SKN_ITEM_OPEN_HOW, p2, sizeof(struct open_how));
		break;
	case SKN_CLASS_PATH0_PATH1:
		at = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH, p0, MAX_PATH);
		first = item_first(buf, at, off);
		at2 = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH2, p1, MAX_PATH);
		first2 = item_first(buf, at2, off);
		off = put_base(buf, off, SKN_ITEM_BASE, task, AT_FDCWD, first);
		off = put_base(buf, off, SKN_ITEM_BASE2, task, AT_FDCWD, first2);
		break;
	case SKN_CLASS_RENAMEAT:
		at = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		first = item_first(buf, at, off);
		at2 = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH2, p3, MAX_PATH);
		first2 = item_first(buf, at2, off);
		off = put_base(buf, off, SKN_ITEM_BASE, task, (long)rec->args[0], first);
		off = put_base(buf, off, SKN_ITEM_BASE2, task, (long)rec->args[2], first2);
		break;
	case SKN_CLASS_SYMLINKAT:
		off = put_user_str(buf, off, SKN_ITEM_PATH, p0, MAX_PATH);
		at2 = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH2, p2, MAX_PATH);
		off = put_base(buf, off, SKN_ITEM_BASE2, task, (long)rec->args[1],
			       item_first(buf, at2, off));
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
		at = off;
		off = put_user_str(buf, off, SKN_ITEM_PATH, p1, MAX_PATH);
		first = item_first(buf, at, off);
		off = put_user_str(buf, off, SKN_ITEM_STR3, p2, MAX_NAME);
		off = put_base(buf, off, SKN_ITEM_BASE, task, AT_FDCWD, first);
		break;
	default:
		break;
	}
	if (check_kill && ret >= 0) {
		__u32 zero = 0;
		__u64 *sharers = bpf_map_lookup_elem(&skn_sharers, &zero);
		if (sharers)
			*sharers = 0;
		off = kill_on_open(buf, off, task, ret, id >> 32);
		emit(buf, off);
		if (sharers && *sharers)
			bpf_tail_call(ctx, &skn_tail, 0); /* skn_kill_sharers; no-op when not loaded */
		return 0;
	}
	emit(buf, off);
	return 0;
}

/* kfuncs of skn_kill_sharers (weak: the object still loads where the kernel lacks them,
 * with that program not loaded) */
extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task,
			     unsigned int flags) __weak __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __weak __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __weak __ksym;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __weak __ksym;
extern void bpf_task_release(struct task_struct *p) __weak __ksym;
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __weak __ksym;

/*
 * Tail-called by skn_sys_exit (never attached) after it killed an opener whose file table
 * other processes share: SIGKILL to every one of them, before they can use the descriptor
 * (one in the middle of a syscall finishes that call, then dies on its way out). Walking
 * every thread costs, but only at such a kill.
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(skn_kill_sharers, struct pt_regs *regs, long ret)
{
	__u32 zero = 0;
	__u64 *sharers = bpf_map_lookup_elem(&skn_sharers, &zero);
	if (!sharers || !*sharers)
		return 0;
	__u64 files = *sharers;
	*sharers = 0;
	__u32 self = bpf_get_current_pid_tgid() >> 32;
	struct bpf_iter_task it;
	struct task_struct *t;
	bpf_iter_task_new(&it, NULL, BPF_TASK_ITER_ALL_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		if ((__u64)t->files == files && t->tgid != self) {
			struct task_struct *held = bpf_task_acquire(t); /* the kfunc wants a reference */
			if (held) {
				bpf_send_signal_task(held, 9, PIDTYPE_TGID, 0);
				bpf_task_release(held);
			}
		}
	}
	bpf_iter_task_destroy(&it);
	return 0;
}

/*
 * A successful execve/execveat, once the new image is in place (credentials committed,
 * comm, mm and exe_file set): the same moment sys_exit would see, minus the failures,
 * which never reach this tracepoint. The syscall still runs, so its number and the
 * compat flag are those of the exec call.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(skn_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *task = bpf_get_current_task_btf();
#ifdef __TARGET_ARCH_x86
	if (task->thread_info.status & TS_COMPAT) /* a 32-bit exec, skipped as at sys_exit */
		return 0;
#endif
	if (is_self(task->tgid))
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	emit_exec(task, regs->orig_ax);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(skn_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 child_tgid = child->tgid;
	__u32 child_pid = child->pid;
	if (child_tgid != child_pid) /* a new thread, not a new process */
		return 0;
	__u32 parent_tgid = parent->tgid;
	if (is_self(parent_tgid))
		return 0;
	char *buf = scratch();
	if (!buf)
		return 0;
	struct skn_fork *rec = (struct skn_fork *)buf;
	rec->hdr.kind = SKN_KIND_FORK;
	rec->hdr.nr = 0;
	/* copy_process stamped the child moments ago with the same clock (boot time); a
	 * clock read costs a helper call through the clocksource, 120 ns in this VM */
	rec->hdr.ts = child->start_boottime;
	rec->hdr.tgid = child_tgid;
	rec->hdr.tid = child_pid;
	rec->hdr.ret = 0;
	fill_task(&rec->task, child);
	rec->task.ppid = parent_tgid; /* the forking process, before reparenting */
	rec->task.exe_flags = 0;
	rec->task.cgroup_id = bpf_get_current_cgroup_id(); /* the child starts in its parent's */
	emit(buf, sizeof(*rec));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(skn_exit, struct task_struct *task)
{
	/* only once the whole thread group is gone */
	if (task->signal->live.counter != 0)
		return 0;
	__u32 tgid = task->tgid;
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
	rec->hdr.tid = task->pid;
	rec->hdr.ret = task->exit_code;
	emit(buf, sizeof(*rec));
	return 0;
}
