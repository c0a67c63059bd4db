//! `tdbstore-bench`: runs the benchmark, prints the Markdown table and writes
//! `results/results.md`, `results/results.json` and `results/erases-stats-<store>.svg`.
//!
//! ```text
//! cargo run --release -p tdbstore-bench [-- --updates N | --quick] [--only STORE[,STORE]]
//!     [--reference] [--ops-only] [--out DIR] [--footprint FILE] [--before FILE | --no-before]
//!     [--write-baseline FILE --baseline-how TEXT]
//! ```
//!
//! `make bench` builds the Portenta kernel first and passes `--footprint` the capsule's
//! measured flash and RAM (`make -C boards/portenta_h7 kv-footprint`); without it the
//! report says the footprint was not measured.
//!
//! The per-operation table and the footprint are shown beside the "before" figures of
//! `results/before-59fd729.json` (see [`tdbstore_bench::baseline`]); `--write-baseline` writes
//! such a file from this run (`tools/bench/scripts/before.sh` does, on the older commit).
//!
//! Stores: tdbstore, tdbstore-maint, ss-nocache, ss-cache, ekv, tickv (`--only tdbstore`
//! selects both engine rows, `--only ss` both sequential-storage rows). `--reference` adds
//! ekv-4b, ekv on a 4-byte-program variant of the flash (not the target; opt-in).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tdbstore_bench::baseline::{Baseline, Before, BEFORE_FILE};
use tdbstore_bench::footprint::Footprint;
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
    /// The capsule's footprint on the Portenta H7, as `kv_footprint.py` writes it (`make
    /// bench` makes it); without it the report says the footprint was not measured.
    #[arg(long)]
    footprint: Option<PathBuf>,
    /// Only the engine's per-operation costs (no workloads, no mount test); `--only` still
    /// selects the engine configurations.
    #[arg(long)]
    ops_only: bool,
    /// The "before" figures to show beside this run's (the report says so if the file is
    /// missing).
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(BEFORE_FILE))]
    before: PathBuf,
    /// Show no "before" figures.
    #[arg(long, conflicts_with = "before")]
    no_before: bool,
    /// Also write this run's per-operation rows and footprint as a baseline file (what
    /// `--before` reads), with the commit the tree is at.
    #[arg(long)]
    write_baseline: Option<PathBuf>,
    /// For `--write-baseline`: how the figures were produced (commands, glue), stored in the file.
    #[arg(long, default_value = "")]
    baseline_how: String,
}

/// The output of `git args` in this crate's directory.
fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Which command and source produced the figures, so a reader can tell stale results: the
/// command line, the commit, whether the tree had uncommitted changes, and the date (UTC).
fn provenance() -> String {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = match git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":/",
        ":(top,exclude)tools/bench/results",
    ]) {
        Some(s) if !s.is_empty() => " with uncommitted changes",
        _ => "",
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `make bench` names itself (it passes the footprint file it made).
    let command = if let Ok(c) = std::env::var("TDBSTORE_BENCH_COMMAND") {
        c
    } else if args.is_empty() {
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
    let cfg = Config {
        updates: if cli.quick { 10_000 } else { cli.updates },
        stores,
        ops_only: cli.ops_only,
        ..Config::default()
    };
    let t0 = std::time::Instant::now();
    let mut report = run(&cfg, &mut |what| eprintln!("running {what} ..."));
    report.host_s = t0.elapsed().as_secs_f64();
    report.footprint = cli.footprint.as_deref().map(Footprint::load);
    report.provenance = provenance();
    if !cli.no_before {
        report.before = Before::load(&cli.before);
    }
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
    if let Some(p) = &cli.write_baseline {
        let b = Baseline {
            commit: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            subject: git(&["log", "-1", "--format=%s"]).unwrap_or_default(),
            how: cli.baseline_how.clone(),
            provenance: report.provenance.clone(),
            ops_setup: report.ops_setup.clone(),
            ops_configs: report.ops_configs.clone(),
            ops: report.ops.clone(),
            footprint: report.footprint.clone(),
        };
        if let Err(e) = std::fs::write(p, b.json()) {
            eprintln!("error: {}: {e}", p.display());
            ok = false;
        } else {
            eprintln!("baseline written to {}", p.display());
        }
    }
    for r in report.rows.iter().filter(|r| r.workload == tdbstore_bench::workload::Workload::Stats) {
        let p = cli.out.join(format!("erases-stats-{}.svg", r.store.id()));
        let title = format!(
            "{}: erases per sector after `stats` ({} updates{})",
            r.store.id(),
            tdbstore_bench::numbers::thousands(cfg.updates),
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
