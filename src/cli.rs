//! Command-line interface: flags and the commands they run. `main.rs` calls [`main`].

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tokio::sync::watch;

use crate::exit;
use crate::fault::{self, toxiproxy::Toxiproxy};
use crate::pattern::PatternKind;
use crate::report;
use crate::result::Verdict;
use crate::run::{self, RunOptions};
use crate::scenario::{self, FaultKind, Side, SideEndpoint, StoreKind};

const AFTER_HELP: &str = "\
Exit codes:
  0  expectations met
  1  divergence beyond what the scenario allows (the CI gate)
  2  bad input (scenario file, flags)
  3  infrastructure (store, proxy or results directory unusable)
  130 interrupted (Ctrl-C / SIGTERM); the result is written with complete: false

Examples:
  dualwrite run scenarios/dynamo-naive.toml
  dualwrite run scenarios/*.toml --results-dir /tmp/results
  dualwrite validate scenarios/*.toml
  dualwrite list";

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
    },
    /// Patterns x stores, and fault kinds.
    List,
    /// Measure the harness: rate accuracy, overhead versus the bare client, driver
    /// ceiling, checker and history cost, pattern-overhead table.
    Bench(crate::bench::BenchArgs),
    /// Remove dualwrite's leftover toxics and re-enable proxies (after a crashed run).
    Reset {
        #[arg(
            long,
            default_value = "http://127.0.0.1:8474",
            env = "DUALWRITE_TOXIPROXY"
        )]
        toxiproxy: String,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where run directories are written.
    #[arg(long, default_value = "results", env = "DUALWRITE_RESULTS")]
    pub results_dir: PathBuf,
    /// Print nothing but errors and the final table.
    #[arg(long, short)]
    pub quiet: bool,
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
}

/// Runs the command; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::List => {
            print!("{}", list());
            exit::PASS
        }
        Command::Reset { toxiproxy } => reset(&toxiproxy).await,
        Command::Run(args) => run(args).await,
        Command::Bench(args) => crate::bench::main(args).await,
    }
}

fn validate(files: &[PathBuf]) -> i32 {
    let mut code = exit::PASS;
    for f in files {
        match scenario::load(f) {
            Ok(s) => println!(
                "{}: ok ({} / {}, {} ops, {} fault(s))",
                f.display(),
                s.target.store,
                s.pattern.kind,
                s.workload.planned_ops(),
                s.faults.len()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}

pub fn list() -> String {
    let mut out = String::from("pattern         mongodb  dynamodb  cassandra\n");
    for p in PatternKind::ALL {
        out.push_str(&format!("{:<15}", p.name()));
        for s in [
            StoreKind::MongoDb,
            StoreKind::DynamoDb,
            StoreKind::Cassandra,
        ] {
            out.push_str(&format!(
                " {:<9}",
                if p.applies_to(s).is_ok() { "yes" } else { "-" }
            ));
        }
        out.push('\n');
    }
    out.push_str("\nfault kinds: ");
    out.push_str(&FaultKind::NAMES.join(", "));
    out.push('\n');
    out
}

async fn reset(url: &str) -> i32 {
    match fault::restore_all(&Toxiproxy::new(url)).await {
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
    }
}

async fn run(args: RunArgs) -> i32 {
    // Validate every file first: a typo in the fifth file should not wait for four runs.
    let mut scenarios = Vec::new();
    for f in &args.files {
        match scenario::load(f) {
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
    let stack_script = std::env::current_exe()
        .ok()
        .and_then(|_| std::env::var_os("DUALWRITE_STACK_SCRIPT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("scripts/stack"));
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
    for s in scenarios {
        if *interrupt_rx.borrow() {
            break;
        }
        let proxies: Vec<String> = Side::ALL
            .iter()
            .filter_map(|side| match s.target.endpoint(*side) {
                SideEndpoint::Proxy(p) => Some(p.clone()),
                SideEndpoint::Direct(_) => None,
            })
            .collect();
        let toxiproxy_url = s.target.toxiproxy.clone();
        let opts2 = opts.clone();
        let rx = interrupt_rx.clone();
        // Spawned so a panic is caught here and the proxies are still restored.
        let joined = tokio::spawn(async move { run::run_scenario(s, &opts2, rx).await }).await;
        let this = match joined {
            Ok(Ok((result, dir))) => {
                println!("{}", report::table::summary(&result));
                println!("result: {}", dir.result_file().display());
                if result.interrupted.is_some() {
                    exit::INTERRUPTED
                } else {
                    match result.verdict {
                        Verdict::Pass => exit::PASS,
                        Verdict::Fail => exit::DIVERGENCE,
                        Verdict::Error => exit::INFRA,
                    }
                }
            }
            Ok(Err(e)) => {
                // Scenario errors were caught before the run: what is left is the
                // environment (store, proxy, results directory).
                eprintln!("error: {e:#}");
                exit::INFRA
            }
            Err(panic) => {
                let _ = fault::restore(&Toxiproxy::new(&toxiproxy_url), &proxies).await;
                eprintln!("error: internal error (a bug in dualwrite; proxies restored): {panic}");
                exit::INFRA
            }
        };
        code = exit::worst(code, this);
    }
    code
}
