//! The bodies of the reporting commands (`compare`, `report`, `history`,
//! `completions`) and the report outputs of `run`. Every one reads result files
//! only: reports can be rebuilt at any time from `results/`.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

use crate::exit;
use crate::history::History;
use crate::report::capacity::Prices;
use crate::report::compare::{self, CompareOptions};
use crate::report::{self, Format};
use crate::result::{self, RunResult};
use crate::verdict::FailOn;

/// Prints to stdout; a closed pipe (`dualwrite history ... | head`) is success.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Expands `compare` inputs into result files, in the order given:
/// a result file; a run directory (holds `result.json`); a scenario directory
/// (its `latest` run); a results directory (the `latest` run of each scenario);
/// a glob of any of these. A `latest` run of a `--repeat` series stands for
/// every run of the series.
pub fn resolve_inputs(inputs: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let paths: Vec<PathBuf> = if input.contains(['*', '?', '[']) {
            let matched: Vec<PathBuf> = glob::glob(input)
                .with_context(|| format!("bad glob pattern '{input}'"))?
                .filter_map(Result::ok)
                .collect();
            if matched.is_empty() {
                bail!(
                    "'{input}' matches no file; check the pattern (quote it so the shell does not expand it first)"
                );
            }
            matched
        } else {
            vec![PathBuf::from(input)]
        };
        for p in paths {
            files.extend(resolve_one(&p)?);
        }
    }
    Ok(files)
}

fn resolve_one(p: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    if !p.is_dir() {
        bail!(
            "{} does not exist; pass result.json files, run directories or a results directory",
            p.display()
        );
    }
    if p.join("result.json").is_file() {
        return Ok(vec![p.join("result.json")]);
    }
    if p.join("latest").join("result.json").is_file() {
        return Ok(series_of(p));
    }
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(p)
        .with_context(|| format!("cannot list {}", p.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|d| d.join("latest").join("result.json").is_file())
        .collect();
    scenarios.sort();
    if scenarios.is_empty() {
        bail!(
            "{} holds no result.json, no latest run and no scenario directories with one",
            p.display()
        );
    }
    Ok(scenarios.iter().flat_map(|d| series_of(d)).collect())
}

/// The result files of a scenario directory's latest run: the latest alone, or,
/// when it belongs to a `--repeat` series, every run of the series in this
/// directory (by repeat index).
fn series_of(scenario_dir: &Path) -> Vec<PathBuf> {
    let latest = scenario_dir.join("latest").join("result.json");
    let Some(group) = repeat_of(&latest).map(|r| r.group) else {
        return vec![latest];
    };
    // Run ids start with their UTC second, as group ids do: runs of the series
    // cannot be older than the group, so older directories are not read.
    let since = group.get(..16).unwrap_or("");
    let mut members: Vec<(u32, PathBuf)> = std::fs::read_dir(scenario_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n != "latest" && n.get(..16).unwrap_or("") >= since)
        })
        .map(|e| e.path().join("result.json"))
        .filter_map(|f| match repeat_of(&f) {
            Some(r) if r.group == group => Some((r.index, f)),
            _ => None,
        })
        .collect();
    if members.is_empty() {
        return vec![latest];
    }
    members.sort();
    members.into_iter().map(|(_, f)| f).collect()
}

/// The `repeat` of a result file, reading nothing else of it.
fn repeat_of(file: &Path) -> Option<result::Repeat> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        repeat: Option<result::Repeat>,
    }
    let text = std::fs::read_to_string(file).ok()?;
    serde_json::from_str::<Head>(&text).ok()?.repeat
}

/// Arguments of `dualwrite compare`, already parsed by clap.
pub struct CompareArgs<'a> {
    pub inputs: &'a [String],
    pub format: Format,
    pub baseline: Option<&'a Path>,
    pub sort: Option<&'a str>,
    pub columns: Option<&'a str>,
    /// `--prices FILE`: a price table turning capacity into money.
    pub prices: Option<&'a Path>,
}

pub fn compare(args: CompareArgs) -> i32 {
    let built = (|| -> anyhow::Result<String> {
        let mut opts = CompareOptions::parse(args.columns, args.sort)?;
        opts.prices = args.prices.map(Prices::load).transpose()?;
        let runs = resolve_inputs(args.inputs)?
            .iter()
            .map(|f| RunResult::read(f))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let baseline = match args.baseline {
            Some(b) => Some(RunResult::read(&resolve_one(b)?[0])?),
            None => None,
        };
        let cmp = compare::compare(&runs, baseline.as_ref(), &opts);
        Ok(report::render(&cmp, args.format, report::color_enabled()))
    })();
    match built {
        Ok(text) => {
            print_out(&text);
            exit::PASS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::BAD_INPUT
        }
    }
}

/// The run directory of a result file or directory argument.
fn run_dir_of(p: &Path) -> PathBuf {
    if p.is_dir() {
        if p.join("result.json").is_file() {
            p.to_path_buf()
        } else {
            p.join("latest")
        }
    } else {
        p.parent().unwrap_or(Path::new(".")).to_path_buf()
    }
}

/// Writes the HTML report of one run (reading `scenario.toml` beside its result).
pub fn write_html(r: &RunResult, run_dir: &Path, out: &Path) -> anyhow::Result<()> {
    write_html_priced(r, run_dir, out, None)
}

/// [`write_html`] with costs from a price table.
pub fn write_html_priced(
    r: &RunResult,
    run_dir: &Path,
    out: &Path,
    prices: Option<&Prices>,
) -> anyhow::Result<()> {
    let scenario = std::fs::read_to_string(run_dir.join("scenario.toml")).ok();
    let html = report::html::render_priced(r, scenario.as_deref(), prices);
    write_output(out, html.as_bytes())
        .with_context(|| format!("cannot write the HTML report {}", out.display()))
}

pub fn write_junit(runs: &[RunResult], policy: FailOn, out: &Path) -> anyhow::Result<()> {
    write_output(out, report::junit::render(runs, policy).as_bytes())
        .with_context(|| format!("cannot write the JUnit file {}", out.display()))
}

/// Writes a report file the user named, making its directory first: a missing
/// `reports/` must not turn a finished run into an infrastructure error.
pub fn write_output(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    result::write_atomic(out, bytes)
}

/// Arguments of `dualwrite report`.
pub struct ReportArgs<'a> {
    pub run: &'a Path,
    pub html: Option<&'a Path>,
    pub junit: Option<&'a Path>,
    pub fail_on: FailOn,
    pub json: bool,
    /// `--prices FILE`: costs in the HTML report and the summary.
    pub prices: Option<&'a Path>,
}

pub fn report(args: ReportArgs) -> i32 {
    let dir = run_dir_of(args.run);
    let r = match RunResult::read(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    let prices = match args.prices.map(Prices::load).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    let written = (|| -> anyhow::Result<()> {
        if let Some(out) = args.html {
            write_html_priced(&r, &dir, out, prices.as_ref())?;
            eprintln!("html: {}", out.display());
        }
        if let Some(out) = args.junit {
            write_junit(std::slice::from_ref(&r), args.fail_on, out)?;
            eprintln!("junit: {}", out.display());
        }
        Ok(())
    })();
    if let Err(e) = written {
        eprintln!("error: {e:#}");
        return exit::INFRA;
    }
    if args.json {
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&r).unwrap_or_default()
        ));
    } else if args.html.is_none() && args.junit.is_none() {
        println!("{}", report::table::summary(&r));
    }
    crate::verdict::exit_code(&r, args.fail_on)
}

/// `dualwrite history RUN_DIR --format jepsen`: the neutral JSON-lines history.
pub fn history(run: &Path, out: Option<&Path>) -> i32 {
    let dir = run_dir_of(run);
    let file = dir.join("history.jsonl");
    let entries = match History::read_jsonl(&file) {
        Ok((_, entries)) => entries,
        Err(e) => {
            eprintln!(
                "error: cannot read {}: {e} (pass a run directory holding history.jsonl)",
                file.display()
            );
            return exit::BAD_INPUT;
        }
    };
    // The readers' reads, when the run had `[readers]`.
    let reads_file = dir.join("reads.jsonl");
    let reads = if reads_file.is_file() {
        match crate::reader::entry::read_jsonl(&reads_file) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", reads_file.display());
                return exit::BAD_INPUT;
            }
        }
    } else {
        Vec::new()
    };
    let text = report::jepsen::export(&entries, &reads);
    match out {
        Some(path) => match write_output(path, text.as_bytes()) {
            Ok(()) => exit::PASS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                exit::INFRA
            }
        },
        None => {
            print_out(&text);
            exit::PASS
        }
    }
}

/// Rewrites `summary.md` and `summary.json` in the results directory: called after
/// every run of a multi-scenario `run`, so a crash later loses nothing.
pub fn write_summary(results_dir: &Path, runs: &[RunResult]) -> anyhow::Result<()> {
    let cmp = compare::compare(runs, None, &CompareOptions::default());
    result::write_atomic(
        &results_dir.join("summary.md"),
        report::markdown::comparison(&cmp).as_bytes(),
    )?;
    result::write_atomic(
        &results_dir.join("summary.json"),
        report::json::comparison(&cmp).as_bytes(),
    )
    .with_context(|| format!("cannot write the summary in {}", results_dir.display()))
}

/// Where the HTML report of one of several runs goes: `report.html` ->
/// `report-<scenario>.html`.
pub fn html_path_for(out: &Path, scenario: &str, several: bool) -> PathBuf {
    if !several {
        return out.to_path_buf();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("report");
    out.with_file_name(format!("{stem}-{scenario}.html"))
}
