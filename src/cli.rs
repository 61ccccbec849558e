//! Command-line interface: flags and the commands they run. `main.rs` calls [`main`].

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tokio::sync::watch;

use crate::commands;
use crate::exit;
use crate::fault::{self, toxiproxy::Toxiproxy};
use crate::pattern::PatternKind;
use crate::report::{self, Format};
use crate::result::RunResult;
use crate::run::{self, RunOptions};
use crate::scenario::{self, FaultKind, LoadOptions, Side};
use crate::verdict::FailOn;

const AFTER_HELP: &str = "\
Exit codes:
  0  expectations met
  1  divergence beyond what the scenario allows (the CI gate)
  2  bad input (scenario file, flags; an endpoint outside loopback without
     allow_remote / --allow-remote)
  3  infrastructure (store, proxy or results directory unusable, a login or
     certificate refused, the run's namespace already there)
  130 interrupted (Ctrl-C / SIGTERM); the result is written with complete: false

Examples:
  dualwrite run scenarios/dynamo-naive.toml
  dualwrite run scenarios/*.toml --results-dir /tmp/results
  dualwrite run scenarios/*.toml --junit junit.xml --fail-on any-divergence
  dualwrite run scenarios/dynamo-naive.toml --repeat 5      (seeds 42..46, one row in compare)
  dualwrite compare results/ --format markdown --baseline results/dynamo-naive/latest
  dualwrite report results/dynamo-naive/latest --html report.html
  dualwrite history results/dynamo-naive/latest --format jepsen > history.jsonl
  dualwrite validate scenarios/*.toml
  dualwrite plan scenarios/dynamo-naive.toml
  dualwrite run staging.toml --allow-remote   (endpoints outside 127.0.0.0/8 need it)
  dualwrite list

Colour: only on a terminal, never when NO_COLOR is set.";

const COMPARE_HELP: &str = "\
Inputs: result.json files, run directories, scenario directories (their latest run),
a results directory (the latest run of each scenario), or quoted globs of these.

Columns (for --columns and --sort): scenario, run_id, runs, store, pattern, faults,
target_tps, achieved_tps, ok, fail, unknown, p50_ms, p99_ms, p999_ms, latency_ratio,
throughput_ratio, orphans, ghosts, duplicates, mismatches, lost_acks, strays,
divergence, ttc_p99_ms, verdict. Ratios need --baseline: latency_ratio = p50 /
baseline p50, throughput_ratio = achieved / baseline achieved.

Capacity per order (shown when a run has it; docs/RESULTS.md, capacity):
wcu_per_order, rcu_per_order, stream_reads_per_order (DynamoDB), mutations_per_order,
batchlog_per_order, paxos_per_order (Cassandra), docs_per_order, write_ops_per_order,
txns_per_order (MongoDB), capacity_source (reported, modelled, server counter...);
with --prices FILE, cost_per_million_orders.

Repeats: the runs of one `run --repeat N` series (same scenario, same repeat group)
make one row: each figure is `mean ±h (min–max)`, h the half-width of the 95 %
interval of the mean (Student's t); CSV adds <col>_min, <col>_max, <col>_ci95_low,
<col>_ci95_high; JSON gives {n, mean, min, max, ci95_low, ci95_high}. A scenario
directory or results directory whose latest run belongs to a series stands for
the whole series. Sorting uses the mean.

Examples:
  dualwrite compare results/
  dualwrite compare 'results/dynamo-*/latest' --format markdown --baseline results/dynamo-naive/latest
  dualwrite compare results/ --sort divergence:desc --columns scenario,pattern,p99_ms,divergence,verdict
  dualwrite compare 'results/dynamo-*' --columns scenario,pattern,wcu_per_order,stream_reads_per_order,capacity_source --prices prices.toml
  dualwrite compare results/ --format csv > runs.csv";

#[derive(Debug, Parser)]
#[command(name = "dualwrite", version, about = "How much data does each dual-write pattern lose or duplicate under faults? Runs it against the real store and counts.", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios against the real store, inject faults, check both sides.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Parse and validate scenario files without running them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Allow endpoints outside the loopback range (as `allow_remote = true`).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Print what a run would create, write (rate x duration), fault and drop, and
    /// where each connection goes; connects to nothing.
    #[command(
        after_help = "Examples:\n  dualwrite plan scenarios/dynamo-naive.toml\n  dualwrite plan staging.toml --allow-remote"
    )]
    Plan {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Allow endpoints outside the loopback range (as `allow_remote = true`).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Patterns x stores, and fault kinds.
    List,
    /// Compare runs side by side: one row per run (from result files only).
    #[command(after_help = COMPARE_HELP)]
    Compare {
        /// Result files, run directories, results directories or globs.
        #[arg(required = true)]
        inputs: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// The run the latency and throughput ratios are relative to.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Sort rows by a column: COL, COL:asc or COL:desc.
        #[arg(long, value_name = "COL")]
        sort: Option<String>,
        /// Comma-separated columns to show, in this order.
        #[arg(long, value_name = "a,b,c")]
        columns: Option<String>,
        /// A price table (TOML: per million capacity units, or per node-hour) that
        /// adds the cost of a million orders; none is built in.
        #[arg(long, value_name = "FILE")]
        prices: Option<PathBuf>,
    },
    /// Rebuild the reports of one run from its directory (HTML, JUnit, summary).
    #[command(
        after_help = "Examples:\n  dualwrite report results/dynamo-naive/latest --html report.html\n  dualwrite report results/dynamo-naive/latest --junit junit.xml --fail-on any-divergence\n  dualwrite report results/dynamo-naive/latest --format json"
    )]
    Report {
        /// A run directory (or its result.json, or a scenario directory: its latest run).
        run: PathBuf,
        /// Write a self-contained HTML report with charts here.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[arg(long, default_value = "expect", value_parser = FailOn::parse, help = FailOn::HELP)]
        fail_on: FailOn,
        /// `table` prints the summary; `json` prints the result document.
        #[arg(long, value_enum, default_value = "table")]
        format: SummaryFormat,
        /// A price table (TOML: per million capacity units, or per node-hour): the
        /// HTML report adds the cost of a million orders; none is built in.
        #[arg(long, value_name = "FILE")]
        prices: Option<PathBuf>,
    },
    /// Export a run's history for other checkers (docs/HISTORY.md).
    #[command(
        after_help = "Examples:\n  dualwrite history results/dynamo-naive/latest --format jepsen > history.jsonl"
    )]
    History {
        /// A run directory holding history.jsonl.
        run: PathBuf,
        #[arg(long, value_enum, default_value = "jepsen")]
        format: HistoryFormat,
        /// Write here instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  dualwrite completions bash > ~/.local/share/bash-completion/completions/dualwrite\n  dualwrite completions zsh > ~/.zfunc/_dualwrite\n  dualwrite completions fish > ~/.config/fish/completions/dualwrite.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Measure the harness: rate accuracy, overhead versus the bare client, driver
    /// ceiling, checker and history cost, pattern-overhead table.
    Bench(crate::bench::BenchArgs),
    /// Remove dualwrite's leftover toxics and re-enable proxies (after a crashed run);
    /// when the Cassandra cluster is up, also heal every fault between its nodes.
    Reset {
        #[arg(
            long,
            default_value = "http://127.0.0.1:8474",
            env = "DUALWRITE_TOXIPROXY"
        )]
        toxiproxy: String,
        /// Local stack state directory (the cluster's state file and pids).
        #[arg(long, default_value = ".stack", env = "DUALWRITE_STATE")]
        stack_state: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Allow endpoints outside the loopback range (as `allow_remote = true` in the
    /// scenario): the run creates, writes and drops its tables there.
    #[arg(long)]
    pub allow_remote: bool,
    /// Where run directories are written.
    #[arg(long, default_value = "results", env = "DUALWRITE_RESULTS")]
    pub results_dir: PathBuf,
    /// Print nothing but errors and the final table.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also print each fault window as applied: planned and real times, and how
    /// long its side took to recover.
    #[arg(long, short)]
    pub verbose: bool,
    /// On Ctrl-C/SIGTERM, still scan both sides and count divergence.
    #[arg(long)]
    pub check_on_interrupt: bool,
    /// Keep the run's tables/collections after the check.
    #[arg(long)]
    pub keep_data: bool,
    /// Local stack state directory (pids of managed servers, for process faults).
    #[arg(long, default_value = ".stack", env = "DUALWRITE_STATE")]
    pub stack_state: PathBuf,
    /// Write an HTML report here (several scenarios: FILE-<scenario>.html).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write JUnit XML here (one test case per scenario), rewritten after each run.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The CI gate: each scenario's [expect] limits, plus zero divergence
    /// everywhere (any-divergence) and/or the availability warnings (unavailable).
    #[arg(long, default_value = "expect", value_parser = FailOn::parse)]
    pub fail_on: FailOn,
    /// `json`: print the comparison of the runs as JSON at the end instead of tables.
    #[arg(long, value_enum, default_value = "table")]
    pub format: SummaryFormat,
    /// Run each scenario N times (1 to 1000) with seeds seed..seed+N-1, one run
    /// directory each; `compare` folds the series into one row with intervals.
    #[arg(long, value_name = "N", value_parser = parse_repeat)]
    pub repeat: Option<u32>,
}

/// Most runs of one scenario `--repeat` accepts.
pub const MAX_REPEAT: u32 = 1000;

fn parse_repeat(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_REPEAT).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a number of runs; give --repeat a whole number from 1 to {MAX_REPEAT} (e.g. --repeat 5)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    /// JSON lines of invoke / ok / fail / info records.
    Jepsen,
}

/// Runs the command; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate {
            files,
            allow_remote,
        } => validate(&files, LoadOptions { allow_remote }),
        Command::Plan {
            files,
            allow_remote,
        } => plan(&files, LoadOptions { allow_remote }),
        Command::List => {
            print!("{}", list());
            exit::PASS
        }
        Command::Reset {
            toxiproxy,
            stack_state,
        } => reset(&toxiproxy, &stack_state).await,
        Command::Run(args) => run(args).await,
        Command::Compare {
            inputs,
            format,
            baseline,
            sort,
            columns,
            prices,
        } => commands::compare(commands::CompareArgs {
            inputs: &inputs,
            format,
            baseline: baseline.as_deref(),
            sort: sort.as_deref(),
            columns: columns.as_deref(),
            prices: prices.as_deref(),
        }),
        Command::Report {
            run,
            html,
            junit,
            fail_on,
            format,
            prices,
        } => commands::report(commands::ReportArgs {
            run: &run,
            html: html.as_deref(),
            junit: junit.as_deref(),
            fail_on,
            json: format == SummaryFormat::Json,
            prices: prices.as_deref(),
        }),
        Command::History {
            run,
            format: HistoryFormat::Jepsen,
            output,
        } => commands::history(&run, output.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "dualwrite",
                &mut std::io::stdout(),
            );
            exit::PASS
        }
        Command::Bench(args) => crate::bench::main(args).await,
    }
}

fn validate(files: &[PathBuf], opts: LoadOptions) -> i32 {
    let mut code = exit::PASS;
    for f in files {
        match scenario::load_with(f, opts) {
            Ok(s) => {
                let readers = s.readers.as_ref().map_or(String::new(), |r| {
                    let delays: Vec<String> = r
                        .delays
                        .iter()
                        .map(|d| scenario::fmt_duration(*d))
                        .collect();
                    format!(", readers at {}", delays.join("/"))
                });
                println!(
                    "{}: ok ({} ({}) / {}, {} ops, {} fault(s){readers})",
                    f.display(),
                    s.target.stores_label(),
                    s.target.servers_label(),
                    s.pattern_name(),
                    s.workload.planned_ops(),
                    s.faults.len()
                );
                for w in &s.warnings {
                    println!("  warning: {w}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}

fn plan(files: &[PathBuf], opts: LoadOptions) -> i32 {
    let mut code = exit::PASS;
    for (i, f) in files.iter().enumerate() {
        match scenario::load_with(f, opts) {
            Ok(s) => {
                if i > 0 {
                    println!();
                }
                print!("{}", crate::plan::render(&s));
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}

/// Patterns × stores, the servers of each store and its own fault kinds: all
/// read from the store registry.
pub fn list() -> String {
    let stores = crate::store::REGISTRY;
    let mut out = format!("{:<15}", "pattern");
    for s in stores {
        out.push_str(&format!(" {:<10}", s.name));
    }
    out.push('\n');
    for p in PatternKind::ALL {
        out.push_str(&format!("{:<15}", p.name()));
        for s in stores {
            out.push_str(&format!(
                " {:<10}",
                if p.on(s).is_ok() { "yes" } else { "-" }
            ));
        }
        out.push('\n');
    }
    out.push_str("\nstores:\n");
    for s in stores {
        let servers: Vec<String> = s
            .servers
            .iter()
            .map(|v| match &v.local {
                Some(l) if l.in_memory => format!("{} (local, in memory)", v.name),
                Some(_) => format!("{} (local)", v.name),
                None => v.name.to_string(),
            })
            .collect();
        out.push_str(&format!("  {:<10} {}\n", s.name, s.about));
        out.push_str(&format!("  {:<10} servers: {}\n", "", servers.join(", ")));
        if !s.holds_primary {
            // Its pattern column reads "-": the columns are the primary store.
            out.push_str(&format!(
                "  {:<10} holds the secondary side only: of naive, outbox and streams, beside another primary store\n",
                ""
            ));
        }
        if !s.fault_kinds.is_empty() {
            out.push_str(&format!(
                "  {:<10} own faults: {}\n",
                "",
                s.fault_kinds.join(", ")
            ));
        }
        let Some(r) = &s.reads else {
            out.push_str(&format!(
                "  {:<10} reads: none ([readers] not supported)\n",
                ""
            ));
            continue;
        };
        let mut options: Vec<String> = Vec::new();
        if !r.consistency.is_empty() {
            options.push(format!("consistency {}", r.consistency.join("/")));
        }
        for (server, levels) in r.read_concern {
            options.push(format!("read_concern {} on {server}", levels.join("/")));
        }
        if !r.read_preference.is_empty() {
            options.push(format!("read_preference {}", r.read_preference.join("/")));
        }
        for server in r.coordinator_servers {
            options.push(format!("coordinator (a node) on {server}"));
        }
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(" ({})", options.join("; "))
        };
        out.push_str(&format!("  {:<10} reads: {}{options}\n", "", r.how));
    }
    out.push_str("\nfault kinds: ");
    out.push_str(&FaultKind::NAMES.join(", "));
    out.push('\n');
    out
}

async fn reset(url: &str, stack_state: &std::path::Path) -> i32 {
    let proxies = match fault::restore_all(&Toxiproxy::new(url)).await {
        Ok(fixed) if fixed.is_empty() => {
            println!("proxies clean: no dualwrite toxics, all enabled");
            exit::PASS
        }
        Ok(fixed) => {
            for line in fixed {
                println!("{line}");
            }
            exit::PASS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::INFRA
        }
    };
    // The cluster's faults live in its namespaces and processes, not in Toxiproxy:
    // a run killed mid-partition leaves them behind until this.
    let cluster = match fault::cluster::reset(stack_state).await {
        Ok(fixed) => {
            for line in fixed {
                println!("{line}");
            }
            exit::PASS
        }
        Err(e) => {
            eprintln!("error: healing the Cassandra cluster: {e:#}");
            exit::INFRA
        }
    };
    exit::worst(proxies, cluster)
}

async fn run(args: RunArgs) -> i32 {
    // Validate every file first: a typo in the fifth file should not wait for four runs.
    let mut scenarios = Vec::new();
    let load = LoadOptions {
        allow_remote: args.allow_remote,
    };
    let repeat = args.repeat.unwrap_or(1);
    for f in &args.files {
        match scenario::load_with(f, load) {
            Ok(s) if s.seed.checked_add(u64::from(repeat - 1)).is_none() => {
                eprintln!(
                    "error: {}: seed {} + --repeat {repeat} runs past the largest seed; lower `seed` or --repeat",
                    f.display(),
                    s.seed
                );
                return exit::BAD_INPUT;
            }
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    let (interrupt_tx, interrupt_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_fut = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_fut => {}
        }
        eprintln!("\ninterrupted: stopping the load and restoring proxies");
        let _ = interrupt_tx.send(true);
    });
    // Resolved against the stack's own record at set-up (fault::process).
    let stack_script = PathBuf::from("scripts/stack");
    let opts = RunOptions {
        results_dir: args.results_dir.clone(),
        quiet: args.quiet,
        verbose: args.verbose,
        check_on_interrupt: args.check_on_interrupt,
        keep_data: args.keep_data,
        stack_state: args.stack_state.clone(),
        stack_script,
    };
    let mut code = exit::PASS;
    let several = scenarios.len() > 1 || repeat > 1;
    let json = args.format == SummaryFormat::Json;
    let mut finished: Vec<RunResult> = Vec::new();
    // Each scenario `repeat` times, seeds counting up from its own; the
    // interrupt is checked between runs, so Ctrl-C ends the series after the
    // run it interrupted.
    let runs = scenarios.iter().flat_map(|s| {
        let group = args.repeat.map(|_| run::new_run_id("").0);
        (0..repeat).map(move |i| {
            let mut s = s.clone();
            s.seed += u64::from(i);
            let rep = group.clone().map(|group| crate::result::Repeat {
                index: i + 1,
                of: repeat,
                group,
            });
            (s, rep)
        })
    });
    // A series whose run could not start or finish for the environment (proxies
    // held by another run, a store down) stops there: the next runs would only
    // fail the same way.
    let mut stopped_group: Option<String> = None;
    for (s, rep) in runs {
        if *interrupt_rx.borrow() {
            break;
        }
        if let Some(r) = &rep
            && stopped_group.as_ref() == Some(&r.group)
        {
            continue;
        }
        let this_repeat = rep.clone();
        let proxies: Vec<String> = Side::ALL
            .iter()
            .flat_map(|side| s.target.proxies(*side))
            .collect();
        let toxiproxy_url = s.target.toxiproxy.clone();
        let opts2 = opts.clone();
        let rx = interrupt_rx.clone();
        // Spawned so a panic is caught here and the proxies are still restored.
        let joined = tokio::spawn(async move { run::run_repeat(s, &opts2, rep, rx).await }).await;
        let this = match joined {
            Ok(Ok((result, dir))) => {
                if !json {
                    // A series prints a line per run; its summary is the table at the end.
                    if result.repeat.is_some() {
                        println!("{}", report::repeats::line(&result));
                    } else {
                        println!("{}", report::table::summary(&result));
                    }
                    println!("result: {}", dir.result_file().display());
                }
                let this = crate::verdict::exit_code(&result, args.fail_on);
                finished.push(result);
                let r = finished.last().expect("just pushed");
                let outputs = run_outputs(&args, r, &dir.path, &finished, several);
                if let Err(e) = outputs {
                    eprintln!("error: {e:#}");
                    exit::worst(this, exit::INFRA)
                } else {
                    this
                }
            }
            Ok(Err(failed)) => {
                // Scenario errors were caught before the run: what is left is the
                // environment (store, proxy, results directory).
                eprintln!("error: {:#}", failed.error);
                // The error result on disk still belongs in the summary and JUnit.
                if let Some(written) = failed.written {
                    let (result, dir) = *written;
                    if !json {
                        if result.repeat.is_some() {
                            println!("{}", report::repeats::line(&result));
                        }
                        println!("result: {}", dir.result_file().display());
                    }
                    finished.push(result);
                    let r = finished.last().expect("just pushed");
                    if let Err(e) = run_outputs(&args, r, &dir.path, &finished, several) {
                        eprintln!("error: {e:#}");
                    }
                }
                exit::INFRA
            }
            Err(panic) => {
                let _ = fault::restore(&Toxiproxy::new(&toxiproxy_url), &proxies).await;
                eprintln!("error: internal error (a bug in dualwrite; proxies restored): {panic}");
                exit::INFRA
            }
        };
        if this == exit::INFRA
            && let Some(r) = this_repeat.filter(|r| r.index < r.of)
        {
            eprintln!(
                "error: stopping the series after repeat {}/{} (an infrastructure error); runs {}..{} not started",
                r.index,
                r.of,
                r.index + 1,
                r.of
            );
            stopped_group = Some(r.group);
        }
        code = exit::worst(code, this);
    }
    let cmp = report::compare::compare(&finished, None, &Default::default());
    if json {
        commands::print_out(&report::render(&cmp, Format::Json, false));
    } else if several {
        println!(
            "{}",
            report::table::comparison(&cmp, report::color_enabled())
        );
    }
    code
}

/// The report files of `run`, rewritten after each run so a crash loses nothing.
fn run_outputs(
    args: &RunArgs,
    r: &RunResult,
    run_dir: &std::path::Path,
    finished: &[RunResult],
    several: bool,
) -> anyhow::Result<()> {
    if let Some(out) = &args.html {
        // One file per run of a series too: `report-<scenario>-<index>.html`.
        let name = match &r.repeat {
            Some(x) => format!("{}-{}", r.scenario.name, x.index),
            None => r.scenario.name.clone(),
        };
        commands::write_html(r, run_dir, &commands::html_path_for(out, &name, several))?;
    }
    if let Some(out) = &args.junit {
        commands::write_junit(finished, args.fail_on, out)?;
    }
    if several {
        commands::write_summary(&args.results_dir, finished)?;
    }
    Ok(())
}
