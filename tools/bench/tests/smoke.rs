//! Smoke test of the benchmark harness: every store runs a tiny workload, the report renders,
//! and the engine's rows are correct and clean, so a broken harness (or a broken engine) fails
//! here instead of silently printing nonsense. It checks no speed.

use tdbstore_bench::ops::EngineOp;
use tdbstore_bench::{run, Config, StoreId};

const UPDATES: u64 = 300;

fn is_engine(s: StoreId) -> bool {
    matches!(s, StoreId::Tdbstore | StoreId::TdbstoreMaint | StoreId::TdbstoreCompact)
}

#[test]
fn every_store_runs_and_the_engine_is_correct() {
    let cfg = Config {
        updates: UPDATES,
        stores: StoreId::ALL.to_vec(),
        mount_keys: 40,
        mount_full: false,
        lifetime_updates: 0,
        op_rounds: 20,
        ops_only: false,
    };
    let report = run(&cfg, &mut |_| {});

    assert_eq!(report.rows.len(), 2 * StoreId::ALL.len(), "a stats and a mixed row per store");
    assert_eq!(report.mount.len(), StoreId::ALL.len(), "a mount row per store");
    for r in &report.rows {
        let what = format!("{} / {}", r.store.id(), r.workload.name());
        assert!(r.ops_completed > 0, "{what}: no operation completed ({:?})", r.first_failure);
        assert!(r.ops >= UPDATES, "{what}: {} ops attempted", r.ops);
        assert_eq!(r.erases_per_sector.len(), 12, "{what}");
        if is_engine(r.store) {
            assert!(r.correct_after_remount, "{what}: {}", r.remount);
            assert_eq!(r.ecc_violations, 0, "{what}");
            assert_eq!(r.ops_completed, r.ops, "{what}: {:?}", r.first_failure);
            assert!(r.write_amplification >= 1.0, "{what}: write amplification {}", r.write_amplification);
            assert!(r.mount_bytes_read.is_some_and(|b| b > 0), "{what}");
            assert_eq!(r.ram_per_key, 8.0, "{what}");
        }
    }
    for m in report.mount.iter().filter(|m| is_engine(m.store)) {
        assert_eq!(m.keys_correct, m.keys, "{}: {:?}", m.store.id(), m.problem);
        assert!(m.bytes_read > 0);
    }

    // Per-operation costs: the capsule's configuration and each engine row, every operation
    // measured and clean (no figure is checked: they are what the benchmark reports).
    let configs = ["capsule", "tdbstore", "tdbstore-maint", "tdbstore-compact"];
    for c in configs {
        let rows: Vec<_> = report.ops.iter().filter(|r| r.config == c).collect();
        let want = if c == "tdbstore" { 6 } else { 7 };
        assert_eq!(rows.len(), want, "{c}: {:?}", rows.iter().map(|r| r.op).collect::<Vec<_>>());
        for r in rows {
            assert_eq!(r.failures, 0, "{c} / {}: {:?}", r.op.name(), r.first_failure);
            assert!(r.samples > 0, "{c} / {}", r.op.name());
        }
    }
    assert!(report.ops.iter().any(|r| r.op == EngineOp::Compaction && r.requests_max > 0));

    let md = report.markdown();
    assert!(md.contains("## Engine: flash requests per operation"));
    assert!(md.contains("Capsule footprint") && md.contains("Not measured in this run"));
    for s in StoreId::ALL {
        assert!(md.contains(&format!("| {} |", s.id())), "{} missing from the table", s.id());
    }
    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(report.rows.len()));
}

#[test]
fn reports_are_deterministic_but_for_host_time() {
    let cfg = Config {
        updates: 50,
        stores: vec![StoreId::Tdbstore, StoreId::SsCache],
        mount_keys: 10,
        mount_full: false,
        lifetime_updates: 0,
        op_rounds: 10,
        ops_only: false,
    };
    let strip = |mut v: serde_json::Value| {
        for r in v["rows"].as_array_mut().expect("rows") {
            r["host_cpu_s"] = serde_json::Value::Null;
        }
        v
    };
    let a = strip(serde_json::from_str(&run(&cfg, &mut |_| {}).json()).expect("JSON"));
    let b = strip(serde_json::from_str(&run(&cfg, &mut |_| {}).json()).expect("JSON"));
    assert_eq!(a, b);
}

/// The capsule row of the per-operation table is meant to run the engine as the Portenta
/// board's component does: its buffer sizes must be the component's defaults.
#[test]
fn the_capsule_configuration_matches_the_component() {
    let component = include_str!("../../../capsules/tdbstore/src/component.rs");
    let constant = |name: &str| -> Option<usize> {
        let line = component.lines().find(|l| l.contains(&format!("pub const {name}: usize = ")))?;
        line.split('=').nth(1)?.trim().trim_end_matches(';').replace('_', "").parse().ok()
    };
    assert_eq!(constant("DEFAULT_WORK_LEN"), Some(tdbstore_bench::stores::CAPSULE_WORK), "DEFAULT_WORK_LEN");
    assert_eq!(constant("DEFAULT_KEYS"), Some(tdbstore_bench::stores::CAPSULE_KEYS), "DEFAULT_KEYS");
}

/// A footprint file that is missing, or says the kernel could not be built, is reported as
/// not measured, with the reason; a measured one shows its figures.
#[test]
fn footprint_reports_what_was_measured_or_why_not() {
    use tdbstore_bench::footprint::Footprint;
    let missing = Footprint::load(std::path::Path::new("/nonexistent/kv-footprint.json"));
    assert!(Footprint::markdown(Some(&missing)).contains("Not measured in this run"));
    let why: Footprint =
        serde_json::from_str(r#"{"unavailable": "the pinned Tock sources do not resolve here"}"#)
            .expect("JSON");
    assert!(Footprint::markdown(Some(&why)).contains("the pinned Tock sources do not resolve here"));
    let measured: Footprint = serde_json::from_str(
        r#"{"board": "portenta_h7", "target": "thumbv7em-none-eabi", "unavailable": null,
            "kernel": {"flash": 1000, "ram": 500},
            "flash": {"capsule": 10, "engine": 20, "flash_driver": 5, "symbols": 900},
            "ram": {"unavailable": null, "engine_state": {"type": "tdbstore::engine::Store", "bytes": 7},
                    "items": [{"layer": "tdbstore_kv", "type": "x::TdbStoreKv<y>", "short": "TdbStoreKv<…>",
                               "bytes": 8, "static_bytes": 12, "site": "main.rs:1"},
                              {"layer": "kv_syscall", "type": "[u8; 64]", "short": "[u8; 64]",
                               "bytes": 64, "static_bytes": 65, "site": "main.rs:2"},
                              {"layer": "upstream", "type": "[u8; 9]", "short": "[u8; 9]",
                               "bytes": 9, "static_bytes": 10, "site": "main.rs:3"}]}}"#,
    )
    .expect("JSON");
    assert_eq!(measured.capsule_ram(), Some(77));
    let md = Footprint::markdown(Some(&measured));
    assert!(md.contains("**30 B**") && md.contains("**77 B**"), "{md}");
}

/// `--ops-only` runs the per-operation measurement alone; a "before" file is shown beside it
/// (every row, every footprint figure), and a missing one is reported as such.
#[test]
fn before_figures_are_shown_beside_this_run_or_reported_missing() {
    use tdbstore_bench::baseline::{Baseline, Before};
    use tdbstore_bench::footprint::Footprint;

    let cfg = Config {
        stores: vec![StoreId::Tdbstore],
        op_rounds: 5,
        ops_only: true,
        lifetime_updates: 0,
        ..Config::default()
    };
    let mut report = run(&cfg, &mut |_| {});
    assert!(report.rows.is_empty() && report.mount.is_empty(), "--ops-only ran workloads");
    assert_eq!(report.ops.iter().filter(|r| r.config == "capsule").count(), 7);

    report.before = Before::Missing("results/before-x.json: No such file".into());
    let md = report.markdown();
    assert!(md.contains("No *before* figures: results/before-x.json: No such file"), "{md}");

    // A baseline written from this run reads back and fills the comparison.
    let footprint: Footprint = serde_json::from_str(
        r#"{"board": "portenta_h7", "target": "thumbv7em-none-eabi", "unavailable": null,
            "kernel": {"flash": 1000, "ram": 500},
            "flash": {"capsule": 10, "syscall_driver": 3, "engine": 20, "flash_driver": 5, "symbols": 900},
            "ram": null}"#,
    )
    .expect("JSON");
    let b = Baseline {
        commit: "0123456789abcdef".into(),
        subject: "old".into(),
        how: "by hand".into(),
        provenance: String::new(),
        ops_setup: report.ops_setup.clone(),
        ops_configs: report.ops_configs.clone(),
        ops: report.ops.clone(),
        footprint: Some(footprint),
    };
    let dir = std::env::temp_dir().join(format!("tdbstore-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("before.json");
    std::fs::write(&path, b.json()).expect("write");
    report.before = Before::load(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert!(report.before.baseline().is_some(), "{:?}", report.before);
    let md = report.markdown();
    assert!(md.contains("### Before and after the engine restructure"), "{md}");
    assert!(md.contains("commit `0123456`"), "{md}");
    for r in &report.ops {
        let p50 = tdbstore_bench::numbers::thousands(r.requests_p50);
        let row = format!("| {} | {} | {p50} → {p50} |", r.config, r.op.name());
        assert!(md.contains(&row), "{row} missing:\n{md}");
    }
    assert!(!md.contains("**The set-ups differ**"), "{md}");
    assert!(md.contains("| **flash: engine + store capsule** (budget 16,384) | 30 | not measured |"), "{md}");
    assert!(md.contains("| flash: engine + store capsule + syscall driver | 33 | not measured |"), "{md}");
    let missing = Before::load(std::path::Path::new("/nonexistent/before.json"));
    assert!(matches!(missing, Before::Missing(ref why) if why.starts_with("/nonexistent/before.json: ")));
}

/// A store gets the longer lifetime run when that run, scaled up from its table run, fits the
/// time bound: the same choice for `--quick` as for a full run.
#[test]
fn the_lifetime_run_is_chosen_by_its_extrapolated_time() {
    use tdbstore_bench::{lifetime_run_fits, LIFETIME_RUN_MAX_S};
    let per_update = LIFETIME_RUN_MAX_S / 2_000_000.0;
    for updates in [10_000, 100_000] {
        let t = per_update * updates as f64;
        assert!(lifetime_run_fits(t / 2.0, updates, 2_000_000), "{updates}");
        assert!(!lifetime_run_fits(t * 2.0, updates, 2_000_000), "{updates}");
    }
    assert!(!lifetime_run_fits(0.0, 2_000_000, 2_000_000), "no longer run than the table's");
    assert!(!lifetime_run_fits(0.0, 0, 2_000_000));
}
