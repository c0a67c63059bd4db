//! `tdbstore-bench`: runs the benchmark, prints the Markdown table and writes
//! `results/results.md`, `results/results.json` and `results/erases-stats-<store>.svg`.
//!
//! ```text
//! cargo run --release -p tdbstore-bench [-- --updates N | --quick] [--only STORE[,STORE]]
//!     [--reference] [--out DIR]
//! ```
//!
//! Stores: tdbstore, tdbstore-maint, ss-nocache, ss-cache, ekv, tickv (`--only tdbstore`
//! selects both engine rows, `--only ss` both sequential-storage rows). `--reference` adds
//! ekv-4b, ekv on a 4-byte-program variant of the flash (not the target; opt-in).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tdbstore_bench::{plot, run, Config, StoreId};

/// Benchmark the TDBStore engine against sequential-storage, ekv and TicKV on a simulated
/// STM32H7 flash.
#[derive(Parser, Debug)]
#[command(name = "tdbstore-bench", version)]
struct Cli {
    /// Updates per workload.
    #[arg(long, default_value_t = 100_000, conflicts_with = "quick")]
    updates: u64,
    /// Smoke run: 10,000 updates.
    #[arg(long)]
    quick: bool,
    /// Only these stores (comma-separated or repeated): tdbstore, tdbstore-maint, ss-nocache,
    /// ss-cache, ekv, tickv; a prefix before a `-` selects a family (tdbstore, ss).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also run the reference rows, which are not on the target flash (ekv-4b: ekv on a
    /// 4-byte-program variant of it).
    #[arg(long)]
    reference: bool,
    /// Where results go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
}

/// Which command and source produced the figures, so a reader can tell stale results: the
/// command line, the commit, whether the tree had uncommitted changes, and the date (UTC).
fn provenance() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)tools/bench/results"]) {
        Some(s) if !s.is_empty() => " with uncommitted changes",
        _ => "",
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = if args.is_empty() {
        "`make bench` (`cargo run --release -p tdbstore-bench`)".to_string()
    } else {
        format!("`cargo run --release -p tdbstore-bench -- {}`", args.join(" "))
    };
    let date = git(&["log", "-1", "--format=%cd", "--date=format:%Y-%m-%d"]).unwrap_or_default();
    format!("Produced by {command} at commit `{commit}`{dirty} (commit date {date}).")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let every: Vec<StoreId> = StoreId::ALL.into_iter().chain(StoreId::REFERENCE).collect();
    for f in &cli.only {
        if !every.iter().any(|s| s.matches(f)) {
            let known: Vec<&str> = every.iter().map(|s| s.id()).collect();
            eprintln!("error: unknown store {f:?} (known: {})", known.join(", "));
            return ExitCode::from(2);
        }
    }
    // Reference rows run when asked for: by --reference, or by their exact name.
    let stores: Vec<StoreId> = every
        .into_iter()
        .filter(|s| !StoreId::REFERENCE.contains(s) || cli.reference || cli.only.iter().any(|f| f == s.id()))
        .filter(|s| cli.only.is_empty() || cli.only.iter().any(|f| s.matches(f)))
        .collect();
    let cfg = Config { updates: if cli.quick { 10_000 } else { cli.updates }, stores, ..Config::default() };
    let mut report = run(&cfg, &mut |what| eprintln!("running {what} ..."));
    report.provenance = provenance();
    let md = report.markdown();
    print!("{md}");

    if let Err(e) = std::fs::create_dir_all(&cli.out) {
        eprintln!("error: {}: {e}", cli.out.display());
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    let mut write = |name: &str, text: &str| {
        let p = cli.out.join(name);
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("error: {}: {e}", p.display());
            ok = false;
        }
    };
    write("results.md", &md);
    write("results.json", &report.json());
    for r in report.rows.iter().filter(|r| r.workload == tdbstore_bench::workload::Workload::Stats) {
        let p = cli.out.join(format!("erases-stats-{}.svg", r.store.id()));
        let title = format!(
            "{}: erases per sector after `stats` ({} updates{})",
            r.store.id(),
            tdbstore_bench::report::thousands(cfg.updates),
            if r.failures > 0 { "; the run had errors" } else { "" }
        );
        if let Err(e) = plot::erase_chart(&p, &title, &r.erases_per_sector) {
            eprintln!("error: {e}");
            ok = false;
        }
    }
    eprintln!("results written to {}", cli.out.display());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
