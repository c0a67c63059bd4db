//! The campaign at the test budget must find nothing, and must find deliberate defects.
//!
//! `quick_campaign_finds_no_violation` runs every workload on the small geometries (and
//! most on the real Portenta units), plus a sample of the geometry matrix (every read unit /
//! program unit pair once), with sampled second cuts and the independent Mbed reader
//! checking every image; the full campaign, the whole matrix included, is the binary's
//! `--full`. The sabotage tests break the campaign on purpose (a wrong oracle, a flash that
//! loses a write, a flash that programs a unit twice) and require the matching check to
//! fire, so a campaign that checks nothing cannot pass. No failure is tolerated as a known
//! engine bug: every bug of `tests/engine_bugs.rs` is fixed.

use tdbstore_powercut::campaign::{self, run_workload};
use tdbstore_powercut::config::{Budget, Config, Sabotage, SecondCuts};
use tdbstore_powercut::workload;

fn one(cfg: Config, name: &str, sabotage: Option<Sabotage>) -> campaign::WorkloadReport {
    let wl = workload::all(&cfg, &[7], 12).into_iter().find(|w| w.name == name).expect("workload exists");
    let budget = Budget {
        plan: vec![],
        second_cuts: SecondCuts::Sample(3),
        deep_second: true,
        jobs: 1,
        sabotage,
        tolerate_known: true,
    };
    run_workload(&cfg, &wl, &budget)
}

#[test]
fn quick_campaign_finds_no_violation() {
    let mut budget = Budget::quick();
    budget.tolerate_known = false;
    let workloads: usize = budget.plan.iter().map(|(_, w)| w.len()).sum();
    let report = campaign::run(&budget, |_| {});
    print!("{}", report.render());
    assert_eq!(report.reports.len(), workloads, "every workload ran");
    for name in [
        "new-key",
        "overwrite",
        "remove",
        "incremental",
        "gc-set",
        "reserved-set",
        "write-once",
        "compact",
        "reset",
        "maintain",
        "maintain-full",
        "random-s1",
    ] {
        assert!(report.reports.iter().any(|r| r.workload == name), "{name} ran");
    }
    for r in &report.reports {
        assert!(
            r.ops > 0 && r.first_cuts == 2 * r.ops,
            "{} / {}: every request cut both ways",
            r.config,
            r.workload
        );
    }
    assert!(report.reports.iter().any(|r| r.config == "portenta-128K"), "the real 32 B / 128 KiB units ran");
    // The matrix sample: every (read unit, program unit) pair, both sector sizes, both
    // formats, an area filled to its last byte; the Mbed reader checked every image.
    for (read, program) in [(1, 1), (1, 8), (4, 8), (8, 8), (1, 32), (4, 32), (8, 32), (16, 32), (32, 32)]
        .into_iter()
        .chain([(1, 256), (4, 256), (8, 256), (16, 256), (32, 256)])
    {
        let name = format!("r{read}p{program}/");
        assert!(report.reports.iter().any(|r| r.config.starts_with(&name)), "{name} ran");
    }
    for part in ["/128K", "/4K", "-compact", "-mbed"] {
        assert!(report.reports.iter().any(|r| r.config.contains(part)), "a {part} configuration ran");
    }
    assert!(report.reports.iter().any(|r| r.workload == "fill-end"), "an area was filled to its end");
    // Sectors smaller than the area head, and one exactly as large.
    for name in ["r1p256/256Bx64-mbed", "r4p64/256Bx32-mbed", "r8p8/64Bx128-mbed"] {
        for w in ["compact", "reset", "fill-end"] {
            assert!(report.reports.iter().any(|r| r.config == name && r.workload == w), "{name} / {w} ran");
        }
    }
    assert!(report.reports.iter().all(|r| r.mbed_images > 0), "the Mbed reader checked every run's images");
    println!(
        "matrix sample: {} configurations; {} images checked by the Mbed reader",
        report.per_config().len(),
        report.mbed_images()
    );
    assert!(report.second_cuts() > report.first_cuts(), "second cuts ran");
    assert_eq!(report.violations(), 0, "violations:\n{}", report.render());
}

#[test]
fn a_clean_workload_passes_every_check() {
    let r = one(Config::small_p8(), "overwrite", None);
    assert!(r.first_cuts > 0 && r.second_cuts > 0);
    assert_eq!(r.violation_count, 0, "{:?}", r.violations);
    assert!(r.old > 0, "some cuts found the old value");
}

#[test]
fn a_wrong_oracle_is_caught() {
    let r = one(Config::small_p8(), "new-key", Some(Sabotage::WrongExpectation));
    assert!(r.by_check.get("state").copied().unwrap_or(0) > 0, "{r:?}");
    let r = one(Config::scaled_p32(), "reset", Some(Sabotage::WrongExpectation));
    assert!(r.by_check.get("state").copied().unwrap_or(0) > 0, "{r:?}");
}

#[test]
fn a_lost_write_is_caught() {
    let r = one(Config::small_p8(), "overwrite", Some(Sabotage::LostWrite));
    assert!(r.by_check.get("state").copied().unwrap_or(0) > 0, "{r:?}");
    let lost =
        r.violations.iter().find(|v| v.first.is_none()).expect("the uncut run's durability check fires");
    assert!(lost.detail.contains("after the uncut operation"), "{lost}");
}

#[test]
fn a_double_program_is_caught() {
    let r = one(Config::scaled_p32(), "new-key", Some(Sabotage::DoubleProgram));
    assert!(r.by_check.get("double-program").copied().unwrap_or(0) > 0, "{r:?}");
}

/// The workloads that reproduced the engine bugs of `tests/engine_bugs.rs`, on every small
/// configuration, with no tolerance.
#[test]
fn known_bug_workloads_strict() {
    let mut budget = Budget::quick();
    budget.plan.retain(|(c, _)| ["p8/4K", "p32/4K", "p1/4K", "p32/4K-compact"].contains(&c.name.as_str()));
    for (c, w) in &mut budget.plan {
        *w = workload::known_bugs(c);
    }
    budget.tolerate_known = false;
    let report = campaign::run(&budget, |_| {});
    assert_eq!(report.violations(), 0, "{}", report.render());
}

/// The Mbed-reader check can fail: it agrees with the engine's state of an image, and
/// notices a value, a key or reserved data the engine would show differently.
#[test]
fn the_mbed_oracle_notices_a_difference() {
    use flash_sim::FlashSim;
    use tdbstore_powercut::campaign::{mbed_disagreement, with_store};
    use tdbstore_powercut::flash::Flash;
    use tdbstore_powercut::model::{Entry, State};
    let cfg = Config::small_p8();
    let (f, r) = with_store(&cfg, Flash::new(FlashSim::new(cfg.geometry)), |s| {
        s.mount()?;
        s.set(b"k", b"v", tdbstore::WRITE_ONCE)?;
        s.reserved_data_set(b"r")
    });
    r.expect("writes");
    let mut st = State::default();
    st.keys.insert(b"k".to_vec(), Entry { flags: tdbstore::WRITE_ONCE, value: b"v".to_vec() });
    st.reserved = Some(b"r".to_vec());
    assert_eq!(mbed_disagreement(&cfg, f.sim.image(), &st), None);
    let mut wrong = st.clone();
    wrong.keys.insert(b"k".to_vec(), Entry { flags: tdbstore::WRITE_ONCE, value: b"w".to_vec() });
    assert!(mbed_disagreement(&cfg, f.sim.image(), &wrong).is_some(), "a value");
    let mut wrong = st.clone();
    wrong.keys.insert(b"j".to_vec(), Entry { flags: 0, value: vec![] });
    assert!(mbed_disagreement(&cfg, f.sim.image(), &wrong).is_some(), "a key");
    let mut wrong = st.clone();
    wrong.keys.insert(b"k".to_vec(), Entry { flags: 0, value: b"v".to_vec() });
    assert!(mbed_disagreement(&cfg, f.sim.image(), &wrong).is_some(), "flags");
    let mut wrong = st;
    wrong.reserved = None;
    assert!(mbed_disagreement(&cfg, f.sim.image(), &wrong).is_some(), "reserved data");
}

/// The matrix `--full` runs (`Budget::full_matrix`): every configuration gets workloads, and all but
/// the byte-unit ones on 128 KiB sectors fill an area to its last byte.
#[test]
fn the_full_matrix_covers_every_configuration() {
    let plan = Budget::full_matrix();
    assert_eq!(plan.len(), 112 + Config::head_spanning().len());
    for (c, w) in &plan {
        assert!(!w.is_empty(), "{} has no workload", c.name);
        let bytes_large = c.geometry.program_size == 1 && c.geometry.erase_size > 4096;
        assert_eq!(w.iter().any(|w| w.name == "fill-end"), !bytes_large, "{}", c.name);
    }
}
