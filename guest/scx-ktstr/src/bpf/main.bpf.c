// SPDX-License-Identifier: GPL-2.0
/*
 * scx-ktstr: a small LLC-aware sched_ext scheduler with knobs that break it on purpose.
 *
 * One DSQ per LLC. A waking task goes straight to an idle CPU of its LLC when there is
 * one; otherwise it queues on its LLC's DSQ, which CPUs of that LLC drain first and
 * other LLCs steal from.
 */
#include "ktstr.bpf.h"

/* sched_ext kfuncs are GPL-only. */
char _license[] SEC("license") = "GPL";

/*
 * Topology, written by the loader before load. .rodata is frozen, so the verifier
 * knows these values and its walk (verified_insns) follows the topology.
 */
const volatile u32 nr_llcs = 1;
const volatile u32 cpu_llc[KTSTR_MAX_CPUS];
/* The CPUs of LLC l are llc_cpus[llc_first[l] .. llc_first[l] + llc_size[l]). */
const volatile u32 llc_cpus[KTSTR_MAX_CPUS];
const volatile u32 llc_first[KTSTR_MAX_LLCS];
const volatile u32 llc_size[KTSTR_MAX_LLCS];
/* CPUs in the largest LLC: the idle scan's bound. */
const volatile u32 llc_span = 1;

/* Knobs, see the loader's --help. */
const volatile bool fail_verify;
const volatile bool verify_loop;
const volatile bool no_dispatch;
const volatile u64 error_after_dispatches;

/* Tasks parked in the black hole so far: --die/--wedge-after-attach act on the first. */
u64 nr_parked;
/* Tasks dispatched so far, counted only for --error-after-dispatches. */
u64 nr_dispatched;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct ktstr_exit_rec);
} exit_rec SEC(".maps");

/* The loader parses the record by these offsets (src/exit_info.rs). */
_Static_assert(__builtin_offsetof(struct ktstr_exit_rec, kind) == 0, "exit rec layout");
_Static_assert(__builtin_offsetof(struct ktstr_exit_rec, exit_code) == 8, "exit rec layout");
_Static_assert(__builtin_offsetof(struct ktstr_exit_rec, reason) == 16, "exit rec layout");
_Static_assert(__builtin_offsetof(struct ktstr_exit_rec, msg) == 144, "exit rec layout");
_Static_assert(sizeof(struct ktstr_exit_rec) == 1168, "exit rec layout");

static __always_inline u32 llc_of(s32 cpu)
{
	u32 idx = cpu, llc;

	if (idx >= KTSTR_MAX_CPUS)
		return 0;
	/*
	 * The mask is a no-op after the check, but clang may index with a register the
	 * check did not bound; the mask bounds whichever register it picks.
	 */
	llc = cpu_llc[idx & (KTSTR_MAX_CPUS - 1)];
	/* Touching a DSQ that ops.init never created would eject the scheduler. */
	return llc < nr_llcs ? llc : 0;
}

/*
 * Claims an idle CPU of @llc that @p may run on; -1 if none.
 *
 * A plain bounded loop, not bpf_for(): the verifier walks a bounded loop once per
 * iteration, so its work grows with the largest LLC (llc_span), while an open-coded
 * iterator converges after a pass or two whatever the bound. Scanning only the LLC's
 * own CPUs keeps that walk linear in the LLC's size: a scan over every CPU of a
 * 128-CPU machine went past the verifier's 1M-instruction limit.
 */
static __always_inline s32 pick_idle_in_llc(struct task_struct *p, u32 llc)
{
	u32 i, first, size;

	llc &= KTSTR_MAX_LLCS - 1;
	first = llc_first[llc];
	size = llc_size[llc];
	for (i = 0; i < llc_span && i < KTSTR_MAX_CPUS; i++) {
		u32 slot = first + i, cpu;

		if (i >= size)
			break;
		/* The mask bounds the index for the verifier; hide it from clang's folding. */
		barrier_var(slot);
		cpu = llc_cpus[slot & (KTSTR_MAX_CPUS - 1)];
		if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		if (scx_bpf_test_and_clear_cpu_idle(cpu))
			return cpu;
	}
	return -1;
}

/*
 * --fail-verify / --verify-loop: a store through NULL, which the verifier rejects.
 * barrier_var() hides the NULL from clang, which would otherwise treat the store as
 * unreachable and drop it.
 */
static __always_inline void poison(void)
{
	/* volatile: every unrolled copy reloads and stores it, so all copies compile alike. */
	volatile u64 acc = 0;
	u64 *bad = NULL;
	int i;

	if (verify_loop) {
		/* Eight identical blocks in the verifier log, for cycle collapse. */
#pragma unroll
		for (i = 0; i < 8; i++) {
			u64 t = bpf_ktime_get_ns();

			acc ^= t;
			acc += t >> 3;
		}
	}
	barrier_var(bad);
	*bad = acc;
}

/*
 * --error-after-dispatches: the Nth task dispatched makes the scheduler report an error.
 * Only the *_erring programs count, and the loader puts them in the ops only for that knob:
 * the programs every other run loads are the same instructions as without the knob.
 */
static __always_inline void count_dispatch(bool erring)
{
	u64 n;

	if (!erring)
		return;
	n = __sync_fetch_and_add(&nr_dispatched, 1) + 1;
	if (n == error_after_dispatches)
		ktstr_error_u64("ktstr: %llu tasks dispatched (--error-after-dispatches)", n);
}

static __always_inline s32 select_cpu(struct task_struct *p, s32 prev_cpu, bool erring)
{
	s32 cpu;

	/* Leave placement to ops.enqueue, which parks the task for good. */
	if (no_dispatch)
		return prev_cpu;

	if (bpf_cpumask_test_cpu(prev_cpu, p->cpus_ptr) &&
	    scx_bpf_test_and_clear_cpu_idle(prev_cpu)) {
		ktstr_dsq_insert(p, SCX_DSQ_LOCAL, KTSTR_SLICE_NS, 0);
		count_dispatch(erring);
		return prev_cpu;
	}

	cpu = pick_idle_in_llc(p, llc_of(prev_cpu));
	if (cpu >= 0) {
		ktstr_dsq_insert(p, SCX_DSQ_LOCAL, KTSTR_SLICE_NS, 0);
		count_dispatch(erring);
		return cpu;
	}
	return prev_cpu;
}

s32 KTSTR_OP(ktstr_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	return select_cpu(p, prev_cpu, false);
}

s32 KTSTR_OP(ktstr_select_cpu_erring, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	return select_cpu(p, prev_cpu, true);
}

void KTSTR_OP(ktstr_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 idle;
	u32 llc;

	if (no_dispatch) {
		ktstr_dsq_insert(p, KTSTR_BLACKHOLE_DSQ, KTSTR_SLICE_NS, enq_flags);
		__sync_fetch_and_add(&nr_parked, 1);
		return;
	}

	llc = llc_of(scx_bpf_task_cpu(p));
	ktstr_dsq_insert(p, KTSTR_LLC_DSQ_BASE + llc, KTSTR_SLICE_NS, enq_flags);

	/* Wake an idle CPU of the LLC rather than wait for a busy one to dispatch. */
	idle = pick_idle_in_llc(p, llc);
	if (idle >= 0)
		scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
}

static __always_inline void dispatch(s32 cpu, bool erring)
{
	u32 home, i;

	if (fail_verify || verify_loop)
		poison();

	/* Nothing ever leaves the black hole. */
	if (no_dispatch)
		return;

	/* Own LLC first, then the others in ring order. */
	home = llc_of(cpu);
	for (i = 0; i < nr_llcs && i < KTSTR_MAX_LLCS; i++) {
		u32 llc = home + i;

		if (llc >= nr_llcs)
			llc -= nr_llcs;
		if (ktstr_dsq_consume(KTSTR_LLC_DSQ_BASE + llc)) {
			count_dispatch(erring);
			return;
		}
	}
}

void KTSTR_OP(ktstr_dispatch, s32 cpu, struct task_struct *prev)
{
	dispatch(cpu, false);
}

void KTSTR_OP(ktstr_dispatch_erring, s32 cpu, struct task_struct *prev)
{
	dispatch(cpu, true);
}

s32 KTSTR_OP_SLEEPABLE(ktstr_init)
{
	s32 ret;
	u32 i;

	for (i = 0; i < nr_llcs && i < KTSTR_MAX_LLCS; i++) {
		ret = scx_bpf_create_dsq(KTSTR_LLC_DSQ_BASE + i, -1);
		if (ret)
			return ret;
	}
	if (no_dispatch)
		return scx_bpf_create_dsq(KTSTR_BLACKHOLE_DSQ, -1);
	return 0;
}

void KTSTR_OP(ktstr_exit, struct scx_exit_info *ei)
{
	struct ktstr_exit_rec *rec;
	u32 zero = 0;

	rec = bpf_map_lookup_elem(&exit_rec, &zero);
	if (!rec)
		return;
	rec->exit_code = ei->exit_code;
	bpf_probe_read_kernel_str(rec->reason, sizeof(rec->reason), ei->reason);
	bpf_probe_read_kernel_str(rec->msg, sizeof(rec->msg), ei->msg);
	/* kind last: the loader takes a non-zero kind as a complete record. */
	asm volatile("" ::: "memory");
	rec->kind = ei->kind;
}

SEC(".struct_ops.link")
struct sched_ext_ops ktstr_ops = {
	.select_cpu	= (void *)ktstr_select_cpu,
	.enqueue	= (void *)ktstr_enqueue,
	.dispatch	= (void *)ktstr_dispatch,
	.init		= (void *)ktstr_init,
	.exit		= (void *)ktstr_exit,
	/* Only tasks that opt into SCHED_EXT are ours, so a broken knob never starves init. */
	.flags		= SCX_OPS_SWITCH_PARTIAL,
	/* The longest sched_ext allows, so --no-dispatch stays attached through a probe. */
	.timeout_ms	= KTSTR_TIMEOUT_MS,
	.name		= "ktstr",
};
