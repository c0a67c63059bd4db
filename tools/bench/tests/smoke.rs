//! Smoke test of the benchmark harness: every store runs a tiny workload, the report renders,
//! and the engine's rows are correct and clean, so a broken harness (or a broken engine) fails
//! here instead of silently printing nonsense. It checks no speed.

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

    let md = report.markdown();
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
