/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Constants and layouts shared with the Rust loader. src/exit_info.rs hard-codes the
 * exit record layout; the asserts in main.bpf.c keep the two in step.
 */
#ifndef KTSTR_INTF_H
#define KTSTR_INTF_H

/* Guest kernels are built with NR_CPUS=512. */
#define KTSTR_MAX_CPUS 512
#define KTSTR_MAX_LLCS 64

/* LLC i queues on DSQ KTSTR_LLC_DSQ_BASE + i. */
#define KTSTR_LLC_DSQ_BASE 0x100
/* --no-dispatch parks every task here and nothing ever consumes it. */
#define KTSTR_BLACKHOLE_DSQ 0xdead

#define KTSTR_SLICE_NS (5ULL * 1000 * 1000)
/* sched_ext's upper bound for ops.timeout_ms. */
#define KTSTR_TIMEOUT_MS 30000

#define KTSTR_REASON_LEN 128
#define KTSTR_MSG_LEN 1024

/* What ops.exit saw; read by the loader with a map lookup. */
struct ktstr_exit_rec {
	int kind;		/* enum scx_exit_kind, 0 until ops.exit ran */
	unsigned int pad;
	long long exit_code;
	char reason[KTSTR_REASON_LEN];
	char msg[KTSTR_MSG_LEN];
};

#endif /* KTSTR_INTF_H */
