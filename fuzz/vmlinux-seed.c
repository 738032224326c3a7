/* A kernel's worth of what ktstr's guest-memory walker reads from vmlinux, and nothing
 * else: the seed of the `vmlinux` fuzz target (see fuzz/README.md). */
struct xarray { unsigned int xa_lock; unsigned int xa_flags; void *xa_head; };
struct idr { struct xarray idr_rt; unsigned int idr_base; unsigned int idr_next; };
struct xa_node { unsigned char shift; unsigned char offset; unsigned char count;
                 unsigned char nr_values; void *parent; void *array; void *slots[64]; };
struct bpf_ksym { unsigned long start; unsigned long end; char name[512]; };
struct bpf_prog_aux { unsigned int refcnt; unsigned int used_map_cnt; unsigned int id;
                      unsigned int verified_insns; struct bpf_ksym ksym; char name[16]; };
struct bpf_prog { unsigned short pages; unsigned short flags; unsigned int type;
                  struct bpf_prog_aux *aux; };
static struct idr prog_idr;
unsigned long page_offset_base;
unsigned long phys_base;
unsigned long init_top_pgt[512];
unsigned int pgdir_shift;
char _text[1];
char _end[1];
struct bpf_prog *ktstr_seed_prog(void) { static struct bpf_prog p; p.aux = 0; (void)prog_idr; return &p; }
