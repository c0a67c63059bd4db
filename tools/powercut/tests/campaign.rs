//! The campaign at the test budget must find nothing, and must find deliberate defects.
//!
//! `quick_campaign_finds_no_violation` runs every workload on the small geometries (and two
//! on the real Portenta units) with sampled second cuts; the full campaign is the binary's
//! `--full`. The sabotage tests break the campaign on purpose (a wrong oracle, a flash that
//! loses a write, a flash that programs a unit twice) and require the matching check to
//! fire, so a campaign that checks nothing cannot pass. Failures explained by the engine
//! bugs in `tests/engine_bugs.rs` are counted apart (`KNOWN_BUGS`); the ignored tests at the
//! end run without that tolerance and fail until the engine is fixed.

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
    let budget = Budget::quick();
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

/// The test budget with no tolerance for known engine bugs.
#[test]
fn quick_campaign_strict() {
    let mut budget = Budget::quick();
    budget.tolerate_known = false;
    let report = campaign::run(&budget, |_| {});
    assert_eq!(report.violations(), 0, "{}", report.render());
}

/// The workloads that reproduced the engine bugs of `tests/engine_bugs.rs`, on every small
/// configuration, with no tolerance.
#[test]
fn known_bug_workloads_strict() {
    let mut budget = Budget::quick();
    budget.plan.retain(|(c, _)| c.name != "portenta-128K");
    for (c, w) in &mut budget.plan {
        *w = workload::known_bugs(c);
    }
    budget.tolerate_known = false;
    let report = campaign::run(&budget, |_| {});
    assert_eq!(report.violations(), 0, "{}", report.render());
}
