//! The campaign: cut power at every mutating flash request of every workload, and check.
//!
//! For one workload on one configuration ([`run_workload`]):
//!
//! 1. Build the pre-state on a fresh simulator and keep its image as the snapshot
//!    (`setup`: the oracle must agree with what the store then shows).
//! 2. Run the operation uncut from the snapshot, counting its mutating requests (N); every
//!    step's result must be the oracle's and the remounted state its final state (`uncut`);
//!    a workload meant to compact must have compacted (`coverage`).
//! 3. For every k in 0..N and both [`Cut::Before`] and [`Cut::Halfway`]: restore the snapshot,
//!    cut power at request k, run the operation, power on and mount with fresh buffers.
//!    Then check (each check has a name, used in [`Violation::check`]):
//!    - `mount`: mount succeeds; `mount-writes`: it programs and erases nothing (unless it
//!      formats a blank region); `mount-reads`: it reads at most 3 areas plus a sector;
//!    - `state`: what a user sees is the state before the interrupted step or after it
//!      (after it only, if the step was acknowledged), with every earlier acknowledged step
//!      durable and nothing else changed: keys, flags, values, reserved data;
//!      `iterate`: iteration works; `readback`: every listed key reads cleanly;
//!      `absent`: a key that is not listed is `NotFound`; `write-once`: write-once keys
//!      refuse overwrite and removal without writing;
//!    - `probe`: a set of a fresh key succeeds and shows after a further remount;
//!      `maintain`: then `maintain_all` succeeds and changes nothing a user sees;
//!    - `double-program`: the simulator never saw a unit programmed twice (ECC violation),
//!      at any point of the run;
//!    - `mbed-oracle`: at every such remount, the independent Mbed reader
//!      ([`mbed_disagreement`]) decodes the image and sees the same keys, flags, values and
//!      reserved data as the engine (a compact-record image: a store with no keys);
//!    - second cuts: for every request j of that probe set (or a sample, see
//!      [`SecondCuts`]), cut again, power on, remount: the probe is all-or-nothing and the
//!      recovered state intact, under the same checks; then (`deep_second`) one more set and
//!      remount must work;
//!    - `cut-fired`, `determinism`: the cut hit the request it was aimed at, and every step
//!      before it behaved as in the uncut run (otherwise the campaign is not measuring what
//!      it claims).
//!
//! The uncut run's final state goes through the same probe, maintenance and second cuts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flash_sim::{Cut, FlashSim};
use tdbstore::{Error, IndexEntry, WRITE_ONCE};

use crate::config::{Budget, Config, Sabotage, SecondCuts};
use crate::flash::{open, Fault, Flash, Store};
use crate::model::{read_state, Entry, State, Step};
use crate::workload::{pattern, Workload};

/// A cut point: the request index (from the start of the cut operation) and the kind.
pub type CutPoint = (u64, Cut);

/// One failed check.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Configuration name.
    pub config: String,
    /// Workload name.
    pub workload: String,
    /// The cut in the operation, if any.
    pub first: Option<CutPoint>,
    /// The cut in the recovery write, if any.
    pub second: Option<CutPoint>,
    /// Which check failed (see the module docs).
    pub check: &'static str,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cut = |c: Option<CutPoint>| match c {
            Some((k, Cut::Before)) => format!("op {k} before"),
            Some((k, Cut::Halfway)) => format!("op {k} halfway"),
            None => "none".into(),
        };
        write!(
            f,
            "[{}] {} / {}: first cut {}, second cut {}: {}",
            self.check,
            self.config,
            self.workload,
            cut(self.first),
            cut(self.second),
            self.detail
        )
    }
}

/// Results for one workload on one configuration.
#[derive(Clone, Debug, Default)]
pub struct WorkloadReport {
    /// Configuration name.
    pub config: String,
    /// Workload name.
    pub workload: String,
    /// Mutating requests of the uncut operation (N).
    pub ops: u64,
    /// First cut points tried (2 N).
    pub first_cuts: u64,
    /// Second cut points tried (cuts during recovery writes).
    pub second_cuts: u64,
    /// First cuts after which the pre-operation state was found (also when the operation
    /// changes nothing a user sees, like a compaction).
    pub old: u64,
    /// First cuts after which the post-operation state was found (and it differs).
    pub new: u64,
    /// Most bytes a single mount read.
    pub max_mount_read: u64,
    /// Images (one per checked remount) the independent Mbed reader decoded and compared.
    pub mbed_images: u64,
    /// Of those, images where Mbed read the old area's head (master record or reserved data)
    /// that a compaction committed past and a cut kept from being erased; each agreed with
    /// the engine after maintenance.
    pub mbed_old_heads: u64,
    /// Number of violations (all of them, even those not kept in `violations`).
    pub violation_count: u64,
    /// Violations per check name.
    pub by_check: std::collections::BTreeMap<&'static str, u64>,
    /// Failed checks attributed to a known engine bug (see [`KNOWN_BUGS`]), per bug id.
    pub known: std::collections::BTreeMap<&'static str, u64>,
    /// A few of those, in detail.
    pub known_examples: Vec<Violation>,
    /// The first violations, in detail.
    pub violations: Vec<Violation>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Violations kept in detail per workload (all are counted).
const KEEP: usize = 20;

/// An engine bug this campaign found, reproduced in `tests/engine_bugs.rs`, and the failed
/// checks it explains. With [`Budget::tolerate_known`] such failures are counted apart from
/// the violations, so the campaign can still tell whether anything else is wrong.
#[derive(Clone, Copy, Debug)]
pub struct KnownBug {
    /// Short id.
    pub id: &'static str,
    /// The check it fails.
    pub check: &'static str,
    /// Text the violation's detail contains.
    pub needle: &'static str,
    /// What goes wrong.
    pub summary: &'static str,
}

impl KnownBug {
    /// Whether `v` is this bug.
    pub fn matches(&self, v: &Violation) -> bool {
        v.check == self.check && v.detail.contains(self.needle)
    }
}

/// The engine bugs whose failures a tolerant campaign counts apart. Remove an entry once
/// the engine is fixed.
pub const KNOWN_BUGS: &[KnownBug] = &[
    // Empty: every engine bug this campaign found is fixed, and `tests/engine_bugs.rs` keeps
    // a reproduction of each as a regression test.
];

/// Results of a whole campaign.
#[derive(Clone, Debug, Default)]
pub struct CampaignReport {
    /// One per (configuration, workload), in plan order.
    pub reports: Vec<WorkloadReport>,
    /// Wall time.
    pub elapsed: Duration,
}

impl CampaignReport {
    /// Total violations.
    pub fn violations(&self) -> u64 {
        self.reports.iter().map(|r| r.violation_count).sum()
    }

    /// Total first cut points tried.
    pub fn first_cuts(&self) -> u64 {
        self.reports.iter().map(|r| r.first_cuts).sum()
    }

    /// Total second cut points tried.
    pub fn second_cuts(&self) -> u64 {
        self.reports.iter().map(|r| r.second_cuts).sum()
    }

    /// Total images the independent Mbed reader checked.
    pub fn mbed_images(&self) -> u64 {
        self.reports.iter().map(|r| r.mbed_images).sum()
    }

    /// Per configuration: (name, workload runs, first cut points, second cut points,
    /// images the Mbed reader checked, violations), in plan order.
    pub fn per_config(&self) -> Vec<(String, usize, u64, u64, u64, u64)> {
        let mut out: Vec<(String, usize, u64, u64, u64, u64)> = Vec::new();
        for r in &self.reports {
            let i = match out.iter().position(|c| c.0 == r.config) {
                Some(i) => i,
                None => {
                    out.push((r.config.clone(), 0, 0, 0, 0, 0));
                    out.len() - 1
                }
            };
            let c = &mut out[i];
            c.1 += 1;
            c.2 += r.first_cuts;
            c.3 += r.second_cuts;
            c.4 += r.mbed_images;
            c.5 += r.violation_count;
        }
        out
    }

    /// The report as a table, then the violations in detail, then the totals.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{:<16} {:<14} {:>6} {:>8} {:>9} {:>6} {:>6} {:>9} {:>10} {:>8}\n",
            "config", "workload", "ops", "cuts", "2nd-cuts", "old", "new", "mount-rd", "violations", "time"
        );
        for r in &self.reports {
            s.push_str(&format!(
                "{:<16} {:<14} {:>6} {:>8} {:>9} {:>6} {:>6} {:>9} {:>10} {:>7.1}s\n",
                r.config,
                r.workload,
                r.ops,
                r.first_cuts,
                r.second_cuts,
                r.old,
                r.new,
                r.max_mount_read,
                r.violation_count,
                r.elapsed.as_secs_f64()
            ));
        }
        for r in &self.reports {
            for v in &r.violations {
                s.push_str(&format!("VIOLATION {v}\n"));
            }
            if r.violation_count > r.violations.len() as u64 {
                s.push_str(&format!(
                    "... and {} more violations in {} / {}\n",
                    r.violation_count - r.violations.len() as u64,
                    r.config,
                    r.workload
                ));
            }
        }
        let mut by_check: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in &self.reports {
            for (c, n) in &r.by_check {
                *by_check.entry(c).or_default() += n;
            }
        }
        let mut known: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in &self.reports {
            for (c, n) in &r.known {
                *known.entry(c).or_default() += n;
            }
        }
        for (id, n) in &known {
            let bug = KNOWN_BUGS.iter().find(|b| b.id == *id);
            s.push_str(&format!(
                "KNOWN ENGINE BUG {id}: {n} failed checks, not counted below ({})\n",
                bug.map_or("", |b| b.summary)
            ));
            if let Some(v) = self
                .reports
                .iter()
                .flat_map(|r| &r.known_examples)
                .find(|v| KNOWN_BUGS.iter().any(|b| b.id == *id && b.matches(v)))
            {
                s.push_str(&format!("  e.g. {v}\n"));
            }
        }
        if !by_check.is_empty() {
            let list: Vec<String> = by_check.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            s.push_str(&format!("violations by check: {}\n", list.join(", ")));
        }
        s.push_str("per configuration:\n");
        s.push_str(&format!(
            "  {:<22} {:>5} {:>9} {:>9} {:>11} {:>10}\n",
            "config", "runs", "cuts", "2nd-cuts", "mbed-images", "violations"
        ));
        for (name, runs, cuts, second, images, violations) in self.per_config() {
            s.push_str(&format!(
                "  {name:<22} {runs:>5} {cuts:>9} {second:>9} {images:>11} {violations:>10}\n"
            ));
        }
        s.push_str(&format!(
            "total: {} configurations, {} workload runs, {} cut points, {} second cut points, {} images \
             checked by the Mbed reader ({} read an old area's head until maintenance), {} violations, \
             {:.1}s\n",
            self.per_config().len(),
            self.reports.len(),
            self.first_cuts(),
            self.second_cuts(),
            self.mbed_images(),
            self.reports.iter().map(|r| r.mbed_old_heads).sum::<u64>(),
            self.violations(),
            self.elapsed.as_secs_f64()
        ));
        s
    }
}

/// Runs `f` on a store over `flash` opened with fresh buffers (filled with junk, so the
/// engine cannot rely on their contents), and gives the flash back.
pub fn with_store<R>(cfg: &Config, flash: Flash, f: impl FnOnce(&mut Store<'_>) -> R) -> (Flash, R) {
    let mut work = vec![0xA5u8; cfg.work_len];
    let mut index = vec![IndexEntry { hash: 0x5A5A_5A5A, offset: 0xFFFF_FFF0 }; cfg.index_len];
    let mut s = open(flash, cfg.options, &mut work, &mut index);
    let r = f(&mut s);
    (s.into_flash(), r)
}

/// What running a list of steps did.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome {
    /// One result per step started (a remount's result is its mount's).
    pub results: Vec<Result<(), Error>>,
    /// The step during which power was lost, if it was.
    pub cut_in: Option<usize>,
    /// Mutating requests since counting started.
    pub ops: u64,
    /// Compactions done by the counted steps.
    pub compactions: u32,
    /// Something went wrong outside the steps (a mount or a warm-up step failed).
    pub failure: Option<String>,
}

/// Mounts `flash`, runs `warmup` uncut, then starts counting (and arms `cut` and `fault`)
/// and runs `steps` until they end or power is lost. [`Step::Remount`] mounts again with
/// fresh buffers.
///
/// With `cut_mount`, counting starts before the first mount, whose result is that of
/// `steps[0]` (a [`Step::Remount`]).
pub fn run_steps(
    cfg: &Config,
    flash: Flash,
    warmup: &[Step],
    steps: &[Step],
    cut: Option<CutPoint>,
    fault: Option<Fault>,
    cut_mount: bool,
) -> (Flash, RunOutcome) {
    let mut out = RunOutcome::default();
    let mut flash = flash;
    let mut i = 0;
    let mut first = true;
    let arm = |s: &mut Store<'_>| {
        let sim = &mut s.flash_mut().sim;
        sim.reset_op_counter();
        if let Some((k, how)) = cut {
            sim.cut_power_at(k, how);
        }
        s.flash_mut().set_fault(fault);
    };
    loop {
        let (f, stop) = with_store(cfg, flash, |s| {
            if first && cut_mount {
                // The first mount is step 0, and counted.
                arm(s);
                let r = s.mount().map(|_| ());
                out.results.push(r);
                if !s.flash().sim.is_powered() {
                    out.cut_in = Some(0);
                    return true;
                }
                if let Err(e) = r {
                    out.failure = Some(format!("first mount failed: {e:?}"));
                    return true;
                }
                i = 1;
            } else if let Err(e) = s.mount() {
                if first {
                    out.failure = Some(format!("mount before the operation failed: {e:?}"));
                } else {
                    out.results.push(Err(e));
                    out.failure = Some(format!("remount (step {i}) failed: {e:?}"));
                }
                return true;
            } else if first {
                for w in warmup {
                    if let Err(e) = w.run(s) {
                        out.failure = Some(format!("warm-up step {w} failed: {e:?}"));
                        return true;
                    }
                }
                arm(s);
            } else {
                // This mount was the remount step `i`.
                out.results.push(Ok(()));
                i += 1;
            }
            let c0 = s.store().info().compactions;
            while i < steps.len() {
                if steps[i] == Step::Remount {
                    out.compactions += s.store().info().compactions - c0;
                    return false;
                }
                let r = steps[i].run(s);
                out.results.push(r);
                if !s.flash().sim.is_powered() {
                    out.cut_in = Some(i);
                    return true;
                }
                i += 1;
            }
            out.compactions += s.store().info().compactions - c0;
            true
        });
        flash = f;
        first = false;
        if stop {
            break;
        }
    }
    flash.set_fault(None);
    flash.sim.cancel_cut();
    out.ops = flash.sim.mutating_ops();
    (flash, out)
}

/// The cut points for the second cuts of a recovery write with `n` requests.
fn pick(n: u64, how: SecondCuts) -> Vec<u64> {
    match how {
        SecondCuts::All => (0..n).collect(),
        SecondCuts::Sample(m) if n as usize <= m || m < 2 => (0..n.min(m as u64)).collect(),
        SecondCuts::Sample(m) => {
            let mut v: Vec<u64> = (0..m as u64).map(|i| i * (n - 1) / (m as u64 - 1)).collect();
            v.dedup();
            v
        }
    }
}

const PROBE_KEY: &[u8] = b"zz-probe";
const PROBE2_KEY: &[u8] = b"zz-probe-2";

fn with_key(s: &State, key: &[u8], value: Vec<u8>) -> State {
    let mut n = s.clone();
    n.keys.insert(key.to_vec(), Entry { flags: 0, value });
    n
}

/// The state of one workload's run.
struct Ctx<'a> {
    cfg: &'a Config,
    wl: &'a Workload,
    second_cuts: SecondCuts,
    deep_second: bool,
    fault: Option<Fault>,
    report: WorkloadReport,
    at: (Option<CutPoint>, Option<CutPoint>),
    probe_value: Vec<u8>,
    /// Every key the workload names (looked up one by one if iteration fails).
    universe: Vec<Vec<u8>>,
    tolerate_known: bool,
}

impl Ctx<'_> {
    fn violation(&mut self, check: &'static str, detail: String) {
        let v = Violation {
            config: self.cfg.name.clone(),
            workload: self.wl.name.clone(),
            first: self.at.0,
            second: self.at.1,
            check,
            detail,
        };
        if let Some(bug) = KNOWN_BUGS.iter().find(|b| self.tolerate_known && b.matches(&v)) {
            *self.report.known.entry(bug.id).or_default() += 1;
            if self.report.known_examples.len() < 2 {
                self.report.known_examples.push(v);
            }
            return;
        }
        self.report.violation_count += 1;
        *self.report.by_check.entry(check).or_default() += 1;
        if self.report.violations.len() < KEEP {
            self.report.violations.push(v);
        }
    }

    /// False (and a violation) if the simulator has seen a double program.
    fn no_double_program(&mut self, f: &Flash, phase: &str) -> bool {
        let n = f.sim.stats().double_programs;
        if n > 0 {
            self.violation("double-program", format!("{n} unit(s) programmed twice ({phase})"));
            return false;
        }
        true
    }

    /// Mounts with fresh buffers and checks the state is one of `acceptable`.
    fn recover(&mut self, flash: Flash, acceptable: &[&State], phase: &str) -> (Flash, Option<State>) {
        let area = self.cfg.area_size() as u64;
        let read_bound = 3 * area + self.cfg.geometry.erase_size as u64;
        let universe = std::mem::take(&mut self.universe);
        let read0 = flash.sim.stats().bytes_read;
        let ops0 = flash.sim.mutating_ops();
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let (f, state) = with_store(self.cfg, flash, |s| {
            let m = s.mount();
            let read = s.flash().sim.stats().bytes_read - read0;
            let writes = s.flash().sim.mutating_ops() - ops0;
            self.report.max_mount_read = self.report.max_mount_read.max(read);
            if read > read_bound {
                problems
                    .push(("mount-reads", format!("{phase}: mount read {read} bytes (bound {read_bound})")));
            }
            let formatted = match m {
                Ok(info) => info.formatted,
                Err(e) => {
                    problems.push(("mount", format!("{phase}: mount failed: {e:?}")));
                    return None;
                }
            };
            // Formatting a blank region is the one write a mount may make.
            if writes > 0 && !formatted {
                problems
                    .push(("mount-writes", format!("{phase}: mount made {writes} program/erase request(s)")));
            }
            let mut known: Vec<&[u8]> = vec![PROBE_KEY, PROBE2_KEY];
            known.extend(universe.iter().map(Vec::as_slice));
            for want in acceptable {
                known.extend(want.keys.keys().map(Vec::as_slice));
            }
            let (st, errs) = read_state(s, &known);
            for e in errs {
                let check = if e.starts_with("iterate:") { "iterate" } else { "readback" };
                problems.push((check, format!("{phase}: {e}")));
            }
            // The Mbed-faithful oracle reads the same image.
            self.report.mbed_images += 1;
            if let Some(d) = mbed_disagreement(self.cfg, s.flash().sim.image(), &st) {
                // A cut between a compaction's commit and the erase of the old area's head
                // (a reset's, or one at the version wrap) leaves that head for Mbed to read
                // until this engine's first maintenance step erases it: counted apart, and
                // it must be gone after maintenance.
                let active = s.store().info().active_area;
                if old_head_explains(self.cfg, s.flash().sim.image(), active) {
                    self.report.mbed_old_heads += 1;
                    let after =
                        s.maintain_all().map(|()| mbed_disagreement(self.cfg, s.flash().sim.image(), &st));
                    match after {
                        Ok(None) => {}
                        Ok(Some(d2)) => problems
                            .push(("mbed-oracle", format!("{phase}: {d}; still after maintenance: {d2}"))),
                        Err(e) => {
                            problems.push(("mbed-oracle", format!("{phase}: {d}; maintenance failed: {e:?}")))
                        }
                    }
                } else {
                    problems.push(("mbed-oracle", format!("{phase}: {d}")));
                }
            }
            for want in acceptable {
                for k in want.keys.keys().filter(|k| !st.keys.contains_key(*k)) {
                    match s.get_info(k) {
                        Err(Error::NotFound) => {}
                        r => problems.push((
                            "absent",
                            format!(
                                "{phase}: unlisted key {:?}: get_info gave {r:?}",
                                String::from_utf8_lossy(k)
                            ),
                        )),
                    }
                }
            }
            let before = s.flash().sim.mutating_ops();
            for (k, e) in st.keys.iter().filter(|(_, e)| e.flags & WRITE_ONCE != 0) {
                let name = String::from_utf8_lossy(k);
                let set = s.set(k, b"overwrite", 0);
                let rm = s.remove(k);
                if set != Err(Error::WriteProtected) || rm != Err(Error::WriteProtected) {
                    problems.push((
                        "write-once",
                        format!(
                            "{phase}: write-once {name:?} ({}B): set gave {set:?}, remove gave {rm:?}",
                            e.value.len()
                        ),
                    ));
                }
            }
            if s.flash().sim.mutating_ops() != before {
                problems.push(("write-once", format!("{phase}: refused writes programmed or erased flash")));
            }
            Some(st)
        });
        self.universe = universe;
        for (c, d) in problems {
            self.violation(c, d);
        }
        let Some(state) = state else { return (f, None) };
        if !acceptable.contains(&&state) {
            let detail = match acceptable {
                [one] => format!("{phase}: {}", state.diff(one)),
                [a, b] => format!(
                    "{phase}: neither old nor new: vs old: {}; vs new: {}; got {}",
                    state.diff(a),
                    state.diff(b),
                    state.summary()
                ),
                _ => format!("{phase}: unexpected state {}", state.summary()),
            };
            self.violation("state", detail);
            return (f, None);
        }
        (f, Some(state))
    }

    /// Maintenance (standby erases, pre-erases, compaction of a torn tail) after a probe
    /// write: it must not change what a user sees.
    fn maintenance(&mut self, f: Flash, want: &State) {
        let (f, r) = with_store(self.cfg, f, |s| s.mount().and_then(|_| s.maintain_all()));
        if let Err(e) = r {
            self.violation("maintain", format!("maintain_all after recovery failed: {e:?}"));
            return;
        }
        if self.no_double_program(&f, "maintenance after recovery") {
            let (f, _) = self.recover(f, &[want], "after maintenance following the probe");
            self.no_double_program(&f, "remount after maintenance");
        }
    }

    /// The probe write after a recovery, its remount, and the second cuts inside it.
    fn probe(&mut self, recovered: Flash, state: &State) {
        let value = self.probe_value.clone();
        let with_probe = with_key(state, PROBE_KEY, value.clone());
        let (f, (r, n)) = with_store(self.cfg, recovered.clone(), |s| {
            if let Err(e) = s.mount() {
                return (Err(e), 0);
            }
            s.flash_mut().sim.reset_op_counter();
            let r = s.set(PROBE_KEY, &value, 0);
            (r, s.flash().sim.mutating_ops())
        });
        if let Err(e) = r {
            self.violation("probe", format!("set of a fresh key after recovery failed: {e:?}"));
            return;
        }
        if !self.no_double_program(&f, "probe write") {
            return;
        }
        let (f, m) = self.recover(f, &[&with_probe], "after the probe write");
        if m.is_none() || !self.no_double_program(&f, "remount after the probe") {
            return;
        }
        self.maintenance(f, &with_probe);
        let first = self.at.0;
        for j in pick(n, self.second_cuts) {
            for how in [Cut::Before, Cut::Halfway] {
                self.at = (first, Some((j, how)));
                self.report.second_cuts += 1;
                let (mut f, (r, powered)) = with_store(self.cfg, recovered.clone(), |s| {
                    if let Err(e) = s.mount() {
                        return (Err(e), true);
                    }
                    s.flash_mut().sim.reset_op_counter();
                    s.flash_mut().sim.cut_power_at(j, how);
                    let r = s.set(PROBE_KEY, &value, 0);
                    (r, s.flash().sim.is_powered())
                });
                if powered {
                    self.violation(
                        "cut-fired",
                        format!("probe set has {n} requests, cut {j} did not fire: {r:?}"),
                    );
                    continue;
                }
                f.sim.power_on();
                f.sim.cancel_cut();
                if !self.no_double_program(&f, "probe write cut") {
                    continue;
                }
                let acceptable: Vec<&State> =
                    if r.is_ok() { vec![&with_probe] } else { vec![state, &with_probe] };
                let (f, m) = self.recover(f, &acceptable, "after the second cut");
                let Some(m) = m else { continue };
                if !self.no_double_program(&f, "remount after the second cut") || !self.deep_second {
                    continue;
                }
                let v2 = pattern(0x2222, 77);
                let (f, r) = with_store(self.cfg, f, |s| s.mount().and_then(|_| s.set(PROBE2_KEY, &v2, 0)));
                if let Err(e) = r {
                    self.violation("probe", format!("set after the second cut's recovery failed: {e:?}"));
                    continue;
                }
                let want = with_key(&m, PROBE2_KEY, v2);
                let (f, _) = self.recover(f, &[&want], "after a write following the second cut");
                self.no_double_program(&f, "write after the second cut");
            }
        }
        self.at = (first, None);
    }
}

/// What the independent Mbed reader (`mbed-reader`, written from `docs/format.md`, with
/// Mbed's rules: `>=` at the area end, key size < 128, the scan stopping at the first invalid
/// record) sees in `image`, against what the engine showed (`st`): the same keys, flags and
/// values, and the same reserved data; and that Mbed's own garbage collection of the image
/// fits (B10, B11: `mbed_reader::Image::gc`). A compact-record store must read to Mbed as a store
/// with no keys. `None` when they agree.
pub fn mbed_disagreement(cfg: &Config, image: &[u8], st: &State) -> Option<String> {
    let g = cfg.geometry;
    let img = mbed_reader::Image::new(image, g.program_size, g.erase_size);
    let m = img.mount();
    let mbed_reader::Mount::Store(ms) = m else {
        return Some(format!("the Mbed reader does not mount the image: {m:?}"));
    };
    if cfg.options.record_format == tdbstore::format::RecordFormat::Mbed {
        // An image Mbed reads but cannot compact traps it at its next collection (B10).
        if let trap @ (mbed_reader::Gc::MediaFull { .. } | mbed_reader::Gc::LostAtEnd { .. }) = img.gc(&ms) {
            return Some(format!(
                "Mbed's own garbage collection of the image fails (log end {}): {trap:?}",
                ms.free_offset
            ));
        }
    }
    let mut theirs = State::default();
    for (k, (flags, value)) in ms.user_keys() {
        theirs.keys.insert(k, Entry { flags, value });
    }
    theirs.reserved = ms.reserved.as_ref().map(|(_, d)| d.clone());
    match cfg.options.record_format {
        tdbstore::format::RecordFormat::Mbed => {
            let mut ours = st.clone();
            ours.reserved = st.reserved.clone();
            (theirs != ours).then(|| {
                format!(
                    "Mbed would see {} (log end {}, area {} of version {}): {}",
                    theirs.summary(),
                    ms.free_offset,
                    ms.active,
                    ms.version,
                    theirs.diff(&ours)
                )
            })
        }
        tdbstore::format::RecordFormat::Compact => {
            let empty = theirs.keys.is_empty() && ms.revision == tdbstore::format::COMPACT_REVISION;
            if !empty {
                return Some(format!(
                    "a compact store reads to Mbed as revision {}: {}",
                    ms.revision,
                    theirs.summary()
                ));
            }
            (theirs.reserved != st.reserved).then(|| format!("reserved data: Mbed {:?}", theirs.diff(st)))
        }
    }
}

/// Whether what Mbed reads in `image` comes from the area that is not the engine's
/// `active` one: Mbed picks the other area (the version wrap, B5), or takes its reserved data
/// from there (Mbed reads area 0's first).
fn old_head_explains(cfg: &Config, image: &[u8], active: u8) -> bool {
    let g = cfg.geometry;
    match mbed_reader::Image::new(image, g.program_size, g.erase_size).mount() {
        mbed_reader::Mount::Store(ms) => ms.active != active || ms.reserved.is_some_and(|(a, _)| a != active),
        _ => false,
    }
}

/// Every key a workload's steps name.
fn universe(wl: &Workload) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = wl
        .setup
        .iter()
        .chain(&wl.warmup)
        .chain(&wl.op)
        .filter_map(|s| match s {
            Step::Set { key, .. }
            | Step::Remove { key }
            | Step::Incremental { key, .. }
            | Step::Abandon { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Builds the pre-state image; returns it with the oracle's state after setup and warm-up.
fn build(cfg: &Config, wl: &Workload) -> Result<(Flash, State), String> {
    let flash = Flash::new(FlashSim::new(cfg.geometry));
    if wl.cut_mount {
        return Ok((flash, State::default()));
    }
    let (flash, out) = run_steps(cfg, flash, &[], &wl.setup, None, None, false);
    if let Some(f) = out.failure {
        return Err(format!("setup: {f}"));
    }
    let mut model = State::default();
    for (step, r) in wl.setup.iter().zip(&out.results) {
        let p = step.predict(&model);
        if p.as_ref().err() != r.as_ref().err() {
            return Err(format!("setup step {step}: got {r:?}, oracle says {:?}", p.as_ref().err()));
        }
        if let Ok(n) = p {
            model = n;
        }
    }
    if flash.sim.stats().double_programs > 0 {
        return Err("setup programmed a unit twice".into());
    }
    let (flash, st) = with_store(cfg, flash, |s| {
        s.mount().map_err(|e| format!("{e:?}"))?;
        match read_state(s, &[]) {
            (st, e) if e.is_empty() => Ok(st),
            (_, e) => Err(e.join("; ")),
        }
    });
    match st {
        Ok(st) if st == model => {}
        Ok(st) => return Err(format!("setup state differs from the oracle: {}", st.diff(&model))),
        Err(e) => return Err(format!("setup remount: {e}")),
    }
    for step in &wl.warmup {
        if let Ok(n) = step.predict(&model) {
            model = n;
        }
    }
    Ok((flash, model))
}

/// Runs one workload on one configuration: every cut point, every check.
pub fn run_workload(cfg: &Config, wl: &Workload, budget: &Budget) -> WorkloadReport {
    let start = Instant::now();
    let mut cx = Ctx {
        cfg,
        wl,
        second_cuts: cfg.second_cuts.unwrap_or(budget.second_cuts),
        deep_second: budget.deep_second,
        fault: None,
        report: WorkloadReport { config: cfg.name.clone(), workload: wl.name.clone(), ..Default::default() },
        at: (None, None),
        probe_value: pattern(0x1111, 100),
        universe: universe(wl),
        tolerate_known: budget.tolerate_known,
    };
    run_into(&mut cx, budget.sabotage);
    cx.report.elapsed = start.elapsed();
    cx.report
}

fn run_into(cx: &mut Ctx<'_>, sabotage: Option<Sabotage>) {
    let (cfg, wl) = (cx.cfg, cx.wl);
    let (snapshot, pre) = match build(cfg, wl) {
        Ok(x) => x,
        Err(e) => return cx.violation("setup", e),
    };
    // The oracle: the state before each step and its predicted result.
    let mut models = vec![pre];
    let mut predictions = Vec::new();
    for step in &wl.op {
        let p = step.predict(models.last().unwrap_or(&State::default()));
        let next = p.clone().unwrap_or_else(|_| models[models.len() - 1].clone());
        predictions.push(p.map(|_| ()));
        models.push(next);
    }
    match sabotage {
        Some(Sabotage::WrongExpectation) => sabotage_models(&mut models),
        Some(Sabotage::LostWrite) => {
            let (_, clean) = run_steps(cfg, snapshot.clone(), &wl.warmup, &wl.op, None, None, wl.cut_mount);
            cx.fault = Some(Fault::DropProgram(clean.ops.saturating_sub(1)));
        }
        Some(Sabotage::DoubleProgram) => cx.fault = Some(Fault::Reprogram(0)),
        None => {}
    }

    // The uncut run.
    let (f, uncut) = run_steps(cfg, snapshot.clone(), &wl.warmup, &wl.op, None, cx.fault, wl.cut_mount);
    cx.report.ops = uncut.ops;
    if let Some(e) = &uncut.failure {
        cx.violation("uncut", e.clone());
    }
    for (i, (got, want)) in uncut.results.iter().zip(&predictions).enumerate() {
        if got != want {
            cx.violation("uncut", format!("step {i} ({}) returned {got:?}, oracle says {want:?}", wl.op[i]));
        }
    }
    if wl.expect_compaction && uncut.compactions == 0 {
        cx.violation("coverage", "the operation was meant to compact but did not".into());
    }
    if cx.no_double_program(&f, "uncut operation") {
        let last = models[models.len() - 1].clone();
        let (f, m) = cx.recover(f, &[&last], "after the uncut operation");
        if let Some(m) = m {
            cx.probe(f, &m);
        }
    }

    // Every first cut.
    for k in 0..uncut.ops {
        for how in [Cut::Before, Cut::Halfway] {
            cx.at = (Some((k, how)), None);
            cx.report.first_cuts += 1;
            let (mut f, out) =
                run_steps(cfg, snapshot.clone(), &wl.warmup, &wl.op, Some((k, how)), cx.fault, wl.cut_mount);
            if let Some(e) = &out.failure {
                cx.violation("uncut", e.clone());
                continue;
            }
            let Some(i) = out.cut_in else {
                cx.violation("cut-fired", format!("operation has {} requests, cut did not fire", uncut.ops));
                continue;
            };
            if let Some(j) = (0..i).find(|&j| out.results.get(j) != uncut.results.get(j)) {
                cx.violation(
                    "determinism",
                    format!("step {j} returned {:?}, uncut {:?}", out.results[j], uncut.results.get(j)),
                );
                continue;
            }
            f.sim.power_on();
            if !cx.no_double_program(&f, "cut operation") {
                continue;
            }
            let (before, after) = (&models[i], &models[i + 1]);
            let acknowledged = matches!(out.results.get(i), Some(Ok(())));
            let acceptable: Vec<&State> = if acknowledged { vec![after] } else { vec![before, after] };
            let (f, m) = cx.recover(f, &acceptable, "after the cut");
            let Some(m) = m else { continue };
            if !cx.no_double_program(&f, "remount after the cut") {
                continue;
            }
            if m == *before {
                cx.report.old += 1;
            } else {
                cx.report.new += 1;
            }
            cx.probe(f, &m);
        }
    }
}

/// Makes the oracle wrong: the value of the key the operation changes (or a bogus key) is
/// altered in every state after the first step.
fn sabotage_models(models: &mut [State]) {
    let (first, rest) = models.split_at_mut(1);
    for m in rest {
        let changed = m.keys.iter().find(|(k, e)| first[0].keys.get(*k) != Some(e)).map(|(k, _)| k.clone());
        match changed.and_then(|k| m.keys.get_mut(&k)) {
            Some(e) if !e.value.is_empty() => {
                let last = e.value.len() - 1;
                e.value[last] ^= 0x01;
            }
            Some(e) => e.flags ^= tdbstore::REQUIRE_CONFIDENTIALITY,
            None => {
                m.keys.insert(b"sabotage".to_vec(), Entry { flags: 0, value: vec![1] });
            }
        }
    }
}

/// Runs a whole budget on `budget.jobs` threads; `progress` sees each report as it finishes.
pub fn run(budget: &Budget, progress: impl Fn(&WorkloadReport) + Sync) -> CampaignReport {
    let start = Instant::now();
    let mut jobs: Vec<(usize, usize)> = Vec::new();
    for (ci, (_, wls)) in budget.plan.iter().enumerate() {
        for wi in 0..wls.len() {
            jobs.push((ci, wi));
        }
    }
    // Longest first: big areas and long operations.
    let weight = |&(ci, wi): &(usize, usize)| {
        let (c, w) = (&budget.plan[ci].0, &budget.plan[ci].1[wi]);
        u64::from(c.area_size()) * (w.op.len() as u64 + 4)
    };
    let mut order = jobs.clone();
    order.sort_by_key(|j| std::cmp::Reverse(weight(j)));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<WorkloadReport>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..budget.jobs.max(1) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(ci, wi)) = order.get(n) else { break };
                let (cfg, wls) = &budget.plan[ci];
                let r = run_workload(cfg, &wls[wi], budget);
                progress(&r);
                let slot = jobs.iter().position(|&j| j == (ci, wi)).unwrap_or(0);
                if let Ok(mut d) = done.lock() {
                    d[slot] = Some(r);
                }
            });
        }
    });
    let reports = done.into_inner().unwrap_or_default().into_iter().flatten().collect();
    CampaignReport { reports, elapsed: start.elapsed() }
}
