//! The commands that need no VM: they render text for `main` to print.

use comfy_table::{Table, presets::NOTHING};
use ktstr_domain::plan::manifest::{SchedulerBinary, SchedulerDecl};
use ktstr_domain::shape::constraints::HostBudget;
use ktstr_domain::shape::preset::PRESETS;
use ktstr_domain::verifier_log::collapse::collapse;
use ktstr_domain::verifier_log::vstats::parse_verifier_stats;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    t
}

/// comfy-table pads the last column; trailing blanks only get in the way of `grep`.
fn render(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ktstr presets`: the topology catalogue and which presets the host budget admits.
pub fn presets(host: HostBudget) -> String {
    let mut t = table(&["preset", "shape", "cpus", "numa", "llcs", "smt", "host"]);
    for p in PRESETS {
        let topo = p.topology;
        t.add_row(vec![
            p.name.to_string(),
            topo.to_string(),
            topo.cpus().to_string(),
            topo.numa_nodes.to_string(),
            topo.llcs.to_string(),
            if topo.has_smt() { "yes" } else { "no" }.to_string(),
            if topo.cpus() <= host.max_vcpus {
                "ok"
            } else {
                "over budget"
            }
            .to_string(),
        ]);
    }
    format!(
        "{}\nhost budget: {} vCPUs per VM\n",
        render(&t),
        host.max_vcpus
    )
}

/// `ktstr schedulers`: each declared scheduler and the presets it would be swept across.
pub fn schedulers(decls: &[SchedulerDecl], host: HostBudget) -> String {
    let mut out = String::new();
    for decl in decls {
        let binary = match &decl.binary {
            SchedulerBinary::Path(p) => format!("binary {p}"),
            SchedulerBinary::Package(p) => format!("package {p}"),
        };
        out.push_str(&format!("{}  ({binary})\n", decl.name));
        if !decl.sched_args.is_empty() {
            out.push_str(&format!("  sched_args: {}\n", decl.sched_args.join(" ")));
        }
        let kernels: Vec<String> = decl.kernels.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "  kernels: {}\n",
            if kernels.is_empty() {
                "any".to_string()
            } else {
                kernels.join(", ")
            }
        ));
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        for p in PRESETS {
            match decl.topology.accepts(&p.topology, host) {
                Ok(()) => accepted.push(p.name),
                Err(why) => rejected.push(format!("{} ({why})", p.name)),
            }
        }
        out.push_str(&format!("  presets: {}\n", accepted.join(" ")));
        if !rejected.is_empty() {
            out.push_str(&format!("  left out: {}\n", rejected.join(", ")));
        }
    }
    out
}

/// `ktstr collapse`: a verifier log with unrolled loops collapsed, and its stats.
pub fn collapse_log(log: &str) -> String {
    let mut out = collapse(log).into_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for stats in parse_verifier_stats(log) {
        out.push_str(&format!("verifier stats: {stats}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_domain::plan::manifest::parse_manifest;

    #[test]
    fn presets_mark_what_exceeds_the_host_budget() {
        let out = presets(HostBudget { max_vcpus: 16 });
        let line = |name: &str| {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap()
                .to_string()
        };
        assert!(line("tiny-1llc").contains("1n1l4c1t") && line("tiny-1llc").ends_with("ok"));
        assert!(line("max-cpu").contains("252") && line("max-cpu").contains("over budget"));
        assert!(out.contains("host budget: 16 vCPUs"));
    }

    #[test]
    fn schedulers_lists_accepted_and_left_out_presets() {
        let decls = parse_manifest(
            "[[scheduler]]\nname = \"s\"\npackage = \"p\"\nsched_args = [\"-v\"]\nkernels = [\"6.12\"]\n[scheduler.topology]\nrequires_smt = true\n",
        )
        .unwrap();
        let out = schedulers(&decls, HostBudget { max_vcpus: 8 });
        assert!(out.starts_with("s  (package p)\n"), "{out}");
        assert!(out.contains("  sched_args: -v\n"));
        assert!(out.contains("  kernels: 6.12\n"));
        assert!(out.contains("  presets: smt-2llc\n"), "{out}");
        assert!(out.contains("tiny-1llc (no SMT but requires_smt)"));
        assert!(out.contains("smt-3llc (12 vCPUs > host budget 8)"));
    }

    #[test]
    fn collapse_log_appends_verifier_stats() {
        let log = "0: R1=ctx() R10=fp0\nprocessed 12 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 2 mark_read 0\n";
        let out = collapse_log(log);
        assert!(out.starts_with(log));
        assert!(
            out.ends_with("verifier stats: processed=12  states=2/3\n"),
            "{out}"
        );
    }
}
