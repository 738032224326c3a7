//! The GitHub Actions workflow in docs/ci.md is parsed and checked: its shards, artifact
//! names and `ktstr` command lines fit together, and ktstr's own command-line parser
//! accepts every command it runs.

use clap::Parser as _;
use ktstr::cli::Cli;
use yaml_rust2::{Yaml, YamlLoader};

/// The one ```yaml block of docs/ci.md.
fn workflow() -> Yaml {
    let doc = include_str!("../../docs/ci.md");
    let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = doc[start..].find("\n```").expect("the block ends");
    let mut docs = YamlLoader::load_from_str(&doc[start..start + len]).expect("valid YAML");
    docs.remove(0)
}

fn steps(job: &Yaml) -> &Vec<Yaml> {
    job["steps"].as_vec().expect("a job has steps")
}

/// The step of `job` whose `run` holds `needle`, and that run text.
fn run_with<'a>(job: &'a Yaml, needle: &str) -> &'a str {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("no step runs `{needle}`"))
}

/// The line of `run` that starts with `ktstr <sub>`.
fn ktstr_line<'a>(run: &'a str, sub: &str) -> &'a str {
    run.lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("ktstr {sub}")))
        .unwrap_or_else(|| panic!("no `ktstr {sub}` line in {run}"))
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn accepted(words: &[String]) {
    if let Err(e) = Cli::try_parse_from(words) {
        panic!("ktstr refuses {words:?}: {e}");
    }
}

/// The `with` value `key` of the step using `action`.
fn with_of<'a>(job: &'a Yaml, action: &str, key: &str) -> &'a str {
    steps(job)
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .and_then(|s| s["with"][key].as_str())
        .unwrap_or_else(|| panic!("no {action} step with {key}"))
}

#[test]
fn the_documented_workflow_shards_merges_and_compares_consistently() {
    let wf = workflow();
    let sweep = &wf["jobs"]["sweep"];
    let merge = &wf["jobs"]["merge"];
    let shards: Vec<i64> = sweep["strategy"]["matrix"]["shard"]
        .as_vec()
        .expect("a shard matrix")
        .iter()
        .map(|s| s.as_i64().unwrap())
        .collect();
    let n = shards.len() as i64;
    assert_eq!(shards, (1..=n).collect::<Vec<_>>(), "shards count from 1");

    // Each shard's sweep: accepted, and its partition is its own K of N.
    let line = ktstr_line(run_with(sweep, "ktstr verifier"), "verifier");
    for k in &shards {
        let shard = words(&line.replace("${{ matrix.shard }}", &k.to_string()));
        accepted(&shard);
        let at = shard.iter().position(|w| w == "--partition").unwrap();
        assert_eq!(shard[at + 1], format!("hash:{k}/{n}"));
    }
    let verifier = words(line);
    let output = &verifier[verifier.iter().position(|w| w == "--output").unwrap() + 1];
    assert!(verifier.windows(2).any(|w| w == ["--format", "json"]));
    assert_eq!(with_of(sweep, "actions/upload-artifact", "path"), output);

    // The merge job takes every shard's artifact and merges each of them.
    assert_eq!(merge["needs"].as_str(), Some("sweep"));
    let uploaded = with_of(sweep, "actions/upload-artifact", "name");
    let pattern = with_of(merge, "actions/download-artifact", "pattern");
    let into = with_of(merge, "actions/download-artifact", "path");
    assert_eq!(
        uploaded.replace("${{ matrix.shard }}", "*"),
        pattern,
        "the download pattern matches every shard's artifact"
    );
    let run = run_with(merge, "ktstr report");
    let report = words(ktstr_line(run, "report"));
    for k in &shards {
        let dir = format!(
            "{into}/{}",
            uploaded.replace("${{ matrix.shard }}", &k.to_string())
        );
        assert!(report.contains(&dir), "{dir} not merged: {report:?}");
    }
    // Without a baseline and with the one the base branch uploaded.
    let baseline_flags = run
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("if [ -d baseline ]; then baseline=\"")
        })
        .and_then(|rest| rest.split('"').next())
        .expect("the baseline flags");
    let without: Vec<String> = report
        .iter()
        .filter(|w| *w != "$baseline")
        .cloned()
        .collect();
    accepted(&without);
    let mut with = without.clone();
    with.extend(baseline_flags.split_whitespace().map(String::from));
    accepted(&with);
    assert!(with.windows(2).any(|w| w == ["--baseline", "baseline"]));

    // The merged results are the artifact the next pull request downloads as baseline.
    let merged = &report[report.iter().position(|w| w == "--output").unwrap() + 1];
    assert_eq!(with_of(merge, "actions/upload-artifact", "path"), merged);
    let results_name = with_of(merge, "actions/upload-artifact", "name");
    let fetch = run_with(merge, "gh run download");
    assert!(
        fetch.contains(&format!("-n {results_name} -D baseline")),
        "{fetch}"
    );
}
