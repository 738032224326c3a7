/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Declarations scx-ktstr needs from sched_ext, written against Linux 6.12.
 *
 * Types come from a newer kernel's vmlinux.h; CO-RE relocates every field access, so
 * layout differences against the running kernel do not matter. Kfunc prototypes are
 * declared here instead of taken from vmlinux.h because names and signatures moved
 * after 6.12.
 */
#ifndef KTSTR_BPF_H
#define KTSTR_BPF_H

/* vmlinux.h's kfunc prototypes describe the newer kernel; use ours below. */
#define BPF_NO_KFUNC_PROTOTYPES
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "intf.h"

/* Kfuncs present under these names from 6.12 on. */
s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
bool scx_bpf_test_and_clear_cpu_idle(s32 cpu) __ksym;
void scx_bpf_kick_cpu(s32 cpu, u64 flags) __ksym;
s32 scx_bpf_task_cpu(const struct task_struct *p) __ksym;
bool bpf_cpumask_test_cpu(u32 cpu, const struct cpumask *cpumask) __ksym;
void scx_bpf_error_bstr(char *fmt, unsigned long long *data, u32 data__sz) __ksym;

/* scx_bpf_error() with one u64 argument: the kernel formats it like bpf_snprintf(). */
#define ktstr_error_u64(fmt, arg)					\
	({								\
		static char ___fmt[] = fmt;				\
		unsigned long long ___arg[1] = { (arg) };		\
		scx_bpf_error_bstr(___fmt, ___arg, sizeof(___arg));	\
	})

/*
 * Insert / consume were renamed in 6.13 and insert started returning bool in 6.19.
 * libbpf drops the "___suffix" when resolving, so each flavour binds only where the
 * kernel's prototype matches; the rest resolve to NULL (weak) and their calls are
 * dead code to the verifier.
 */
void scx_bpf_dispatch___v612(struct task_struct *p, u64 dsq_id, u64 slice,
			     u64 enq_flags) __ksym __weak;
void scx_bpf_dsq_insert___void(struct task_struct *p, u64 dsq_id, u64 slice,
			       u64 enq_flags) __ksym __weak;
bool scx_bpf_dsq_insert___bool(struct task_struct *p, u64 dsq_id, u64 slice,
			       u64 enq_flags) __ksym __weak;
bool scx_bpf_consume___v612(u64 dsq_id) __ksym __weak;
bool scx_bpf_dsq_move_to_local___v613(u64 dsq_id) __ksym __weak;

/* Newest name first: older names still exist for a while but log deprecation warnings. */
static __always_inline void ktstr_dsq_insert(struct task_struct *p, u64 dsq_id,
					     u64 slice, u64 enq_flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert___bool))
		scx_bpf_dsq_insert___bool(p, dsq_id, slice, enq_flags);
	else if (bpf_ksym_exists(scx_bpf_dsq_insert___void))
		scx_bpf_dsq_insert___void(p, dsq_id, slice, enq_flags);
	else
		scx_bpf_dispatch___v612(p, dsq_id, slice, enq_flags);
}

static __always_inline bool ktstr_dsq_consume(u64 dsq_id)
{
	if (bpf_ksym_exists(scx_bpf_dsq_move_to_local___v613))
		return scx_bpf_dsq_move_to_local___v613(dsq_id);
	return scx_bpf_consume___v612(dsq_id);
}

/* sched_ext callbacks are struct_ops programs named after the op they implement. */
#define KTSTR_OP(name, args...) \
	SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define KTSTR_OP_SLEEPABLE(name, args...) \
	SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

#endif /* KTSTR_BPF_H */
