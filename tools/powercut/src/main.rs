//! `powercut`: runs the power-cut campaign and prints what it tried and what it found.
//!
//! Exit codes: 0 when no check failed, 1 when some did, 2 on bad arguments.

use std::process::ExitCode;

use clap::Parser;
use tdbstore_powercut::{campaign, Budget, SecondCuts};

/// Cut power at every mutating flash request of every workload and check the store survives.
#[derive(Parser, Debug)]
#[command(name = "powercut", version)]
struct Args {
    /// The full campaign: every configuration (including the real 32 B / 128 KiB Portenta
    /// units), longer random sequences, every second cut. Without it, the test budget.
    #[arg(long)]
    full: bool,
    /// Only the geometry matrix (every configuration of it, as in --full).
    #[arg(long)]
    matrix: bool,
    /// Only workloads whose name contains this.
    #[arg(long)]
    workload: Option<String>,
    /// Only configurations whose name contains this.
    #[arg(long)]
    config: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Second cuts per first cut: a number, or "all" (for every configuration, overriding
    /// the sampling of the large matrix configurations).
    #[arg(long)]
    second_cuts: Option<String>,
    /// Also run the workloads that reproduce known engine bugs (they fail until fixed).
    #[arg(long)]
    known_bugs: bool,
    /// Count failures explained by known engine bugs as violations too.
    #[arg(long)]
    strict: bool,
    /// Print each workload's line as soon as it finishes.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("powercut: {e}");
            ExitCode::from(2)
        }
    }
}

fn try_main() -> Result<bool, String> {
    let args = Args::parse();
    let mut budget = if args.full { Budget::full() } else { Budget::quick() };
    if args.matrix {
        budget.plan = Budget::full_matrix();
    }
    if args.known_bugs {
        budget.add_known_bugs();
    }
    budget.tolerate_known = !args.strict;
    if let Some(w) = &args.workload {
        budget.filter_workloads(w);
    }
    if let Some(c) = &args.config {
        budget.filter_configs(c);
    }
    if let Some(j) = args.jobs {
        budget.jobs = j.max(1);
    }
    if let Some(s) = &args.second_cuts {
        budget.second_cuts = match s.as_str() {
            "all" => SecondCuts::All,
            n => SecondCuts::Sample(n.parse().map_err(|_| format!("--second-cuts: not a number: {n}"))?),
        };
        // Given on the command line, it holds for every configuration.
        for (c, _) in &mut budget.plan {
            c.second_cuts = None;
        }
    }
    if budget.plan.is_empty() {
        return Err("no workload matches the filters".into());
    }
    let runs: usize = budget.plan.iter().map(|(_, w)| w.len()).sum();
    println!(
        "power-cut campaign ({}): {} configurations, {} workload runs, second cuts {:?}, {} threads",
        if args.full { "full" } else { "test budget" },
        budget.plan.len(),
        runs,
        budget.second_cuts,
        budget.jobs
    );
    let verbose = args.verbose;
    let report = campaign::run(&budget, |r| {
        if verbose {
            eprintln!(
                "done: {} / {}: {} ops, {} cuts, {} second cuts, {} violations, {:.1}s",
                r.config,
                r.workload,
                r.ops,
                r.first_cuts,
                r.second_cuts,
                r.violation_count,
                r.elapsed.as_secs_f64()
            );
        }
    });
    print!("{}", report.render());
    Ok(report.violations() == 0)
}
