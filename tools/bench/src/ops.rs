//! What one operation costs the engine in flash requests: get, set, add, update, delete,
//! the idle maintenance after each, and one full compaction.
//!
//! A store gets a realistic live set first: the `mixed` workload's keys `key000`..`key199`
//! with values of 16..=256 bytes, then [`HISTORY`] random overwrites, so the log holds dead
//! records. Then `rounds` rounds, each: get a random key, set a random key, add a new key,
//! update a random key, delete the key just added (values 16..=256 random bytes, SplitMix64
//! seed 42, the same sequence for every configuration). Finally one full compaction of what
//! is left (the live set, and whatever dead records the log holds by then), after which every
//! key is read back.
//!
//! Every operation is counted by the [`crate::flash::Counting`] wrapper the engine's flash
//! sits in: read, program and erase requests (copies between the engine and the caller's
//! buffers are not flash requests) and the bytes they move. A write that has to compact first
//! carries the compaction's requests, so means and maxima include them; the median is the
//! common case. For configurations that maintain between operations, that work is its own row.

use std::collections::BTreeMap;

use flash_sim::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::flash::{self, Requests};
use crate::stores::{Backend, EngineBackend, EngineStore, Kv, ADD_UPDATE};
use crate::workload::{key, percentile, MIXED_KEYS, SEED, VALUE_LEN};

/// Random overwrites of the live set before anything is measured.
pub const HISTORY: u64 = 1_000;

/// The operations measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineOp {
    /// Read a present key's value.
    Get,
    /// Write a present key's value (`set`, no condition).
    Set,
    /// Write a new key's value; the key must be absent.
    Add,
    /// Write a present key's value; the key must be present.
    Update,
    /// Remove a present key.
    Delete,
    /// Idle-time maintenance after each of the user operations above (maintained
    /// configurations only).
    Maintain,
    /// One full compaction, asked for (`Op::Compact`, the capsule's garbage collection).
    Compaction,
}

impl EngineOp {
    /// In table order.
    pub const ALL: [EngineOp; 7] = [
        EngineOp::Get,
        EngineOp::Set,
        EngineOp::Add,
        EngineOp::Update,
        EngineOp::Delete,
        EngineOp::Maintain,
        EngineOp::Compaction,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            EngineOp::Get => "get",
            EngineOp::Set => "set",
            EngineOp::Add => "add",
            EngineOp::Update => "update",
            EngineOp::Delete => "delete",
            EngineOp::Maintain => "idle maintenance (per user op)",
            EngineOp::Compaction => "compaction (full)",
        }
    }
}

/// The costs of one operation in one configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpRow {
    /// Configuration (an engine store id, or `capsule`).
    pub config: String,
    /// Operation.
    pub op: EngineOp,
    /// Operations measured.
    pub samples: u64,
    /// Operations that failed (or, for the compaction, keys that did not read back after it).
    pub failures: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Flash requests (read + program + erase) per operation: median.
    pub requests_p50: u64,
    /// Mean.
    pub requests_mean: f64,
    /// Maximum.
    pub requests_max: u64,
    /// Read requests per operation, mean.
    pub reads_mean: f64,
    /// Program requests per operation, mean.
    pub programs_mean: f64,
    /// Erase requests per operation, mean.
    pub erases_mean: f64,
    /// Bytes read per operation: median.
    pub bytes_read_p50: u64,
    /// Mean.
    pub bytes_read_mean: f64,
    /// Maximum.
    pub bytes_read_max: u64,
    /// Bytes programmed per operation, mean.
    pub bytes_programmed_mean: f64,
    /// Simulated device time per operation, mean, ms.
    pub sim_ms_mean: f64,
}

/// How the per-operation table was made, for its heading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsSetup {
    /// Rounds of get/set/add/update/delete.
    pub rounds: u64,
    /// Overwrites before measuring.
    pub history: u64,
    /// Keys live at the compaction.
    pub live_keys: usize,
    /// Their key + value bytes.
    pub live_bytes: u64,
    /// How *add* and *update* reach the engine ([`crate::stores::ADD_UPDATE`]).
    #[serde(default)]
    pub add_update: String,
}

/// One configuration of the per-operation table, for the notes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpsConfigNote {
    /// Its name in the table.
    pub config: String,
    /// How it is set up.
    pub setup: String,
}

/// One measured operation.
#[derive(Clone, Copy, Default)]
struct Sample {
    req: Requests,
    ns: u64,
}

#[derive(Default)]
struct Samples {
    list: Vec<Sample>,
    failures: u64,
    first: Option<String>,
}

impl Samples {
    fn fail(&mut self, what: String) {
        self.failures += 1;
        self.first.get_or_insert(what);
    }

    fn row(&self, config: &str, op: EngineOp) -> OpRow {
        let n = self.list.len().max(1) as f64;
        let mean = |f: fn(&Sample) -> u64| self.list.iter().map(f).sum::<u64>() as f64 / n;
        let sorted = |f: fn(&Sample) -> u64| {
            let mut v: Vec<u64> = self.list.iter().map(f).collect();
            v.sort_unstable();
            v
        };
        let req = sorted(|s| s.req.total());
        let read = sorted(|s| s.req.bytes_read);
        OpRow {
            config: config.to_string(),
            op,
            samples: self.list.len() as u64,
            failures: self.failures,
            first_failure: self.first.clone(),
            requests_p50: percentile(&req, 50),
            requests_mean: mean(|s| s.req.total()),
            requests_max: req.last().copied().unwrap_or(0),
            reads_mean: mean(|s| s.req.reads),
            programs_mean: mean(|s| s.req.programs),
            erases_mean: mean(|s| s.req.erases),
            bytes_read_p50: percentile(&read, 50),
            bytes_read_mean: mean(|s| s.req.bytes_read),
            bytes_read_max: read.last().copied().unwrap_or(0),
            bytes_programmed_mean: mean(|s| s.req.bytes_programmed),
            sim_ms_mean: mean(|s| s.ns) / 1e6,
        }
    }
}

/// Runs `f` on the store and returns what it cost.
fn measure<'b, T>(s: &mut EngineStore<'b>, f: impl FnOnce(&mut EngineStore<'b>) -> T) -> (Sample, T) {
    let (r0, t0) = (s.requests(), s.time_ns());
    let out = f(s);
    (Sample { req: s.requests().since(&r0), ns: s.time_ns() - t0 }, out)
}

/// One user operation, then (if the configuration maintains) its idle maintenance.
fn step(
    s: &mut EngineStore<'_>,
    maintain: bool,
    op: EngineOp,
    by_op: &mut BTreeMap<EngineOp, Samples>,
    f: &mut dyn FnMut(&mut EngineStore<'_>) -> Result<(), String>,
) {
    let (sample, r) = measure(s, |s| f(s));
    let e = by_op.entry(op).or_default();
    e.list.push(sample);
    if let Err(err) = r {
        e.fail(err);
    }
    if maintain {
        let (sample, r) = measure(s, |s| s.idle());
        let e = by_op.entry(EngineOp::Maintain).or_default();
        e.list.push(sample);
        if let Err(err) = r {
            e.fail(err);
        }
    }
}

/// The per-operation rows of one configuration, in [`EngineOp::ALL`] order, and the setup.
pub fn run(b: &EngineBackend, rounds: u64) -> (Vec<OpRow>, OpsSetup) {
    let mut by_op: BTreeMap<EngineOp, Samples> = BTreeMap::new();
    let mut setup =
        OpsSetup { rounds, history: HISTORY, add_update: ADD_UPDATE.to_string(), ..OpsSetup::default() };
    let mut bufs = b.new_bufs();
    let mut s = match b.open(flash::target(), &mut bufs) {
        Ok(s) => s,
        Err(e) => {
            let mut failed = Samples::default();
            failed.fail(format!("open: {e}"));
            return (vec![failed.row(b.label(), EngineOp::Get)], setup);
        }
    };
    let mut rng = SplitMix64::new(SEED);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut value = || {
        let mut v = vec![0u8; rng.between(VALUE_LEN.0, VALUE_LEN.1)];
        rng.fill(&mut v);
        v
    };
    let mut setup_failure = s.format().err().map(|e| format!("format: {e}"));

    // The live set and its history (not measured).
    for i in 0..MIXED_KEYS as u64 + HISTORY {
        let k = key(if i < MIXED_KEYS as u64 { i as usize } else { (i % MIXED_KEYS as u64) as usize });
        let v = value();
        match s.set(&k, &v).and_then(|()| s.idle()) {
            Ok(()) => {
                model.insert(k, v);
            }
            Err(e) => {
                setup_failure.get_or_insert(format!("history write {i}: {e}"));
            }
        }
    }

    let mut picker = SplitMix64::new(SEED ^ 0x5EED);
    let mut out = vec![0u8; 1024];
    let maintain = b.maintain;
    for round in 0..rounds {
        let k = key(picker.below(MIXED_KEYS as u64) as usize);
        let want = model.get(&k).cloned();
        step(&mut s, maintain, EngineOp::Get, &mut by_op, &mut |s| match s.get(&k, &mut out)? {
            Some(n) if Some(&out[..n]) == want.as_deref() => Ok(()),
            got => Err(format!("get {}: {got:?} bytes, not the last value", String::from_utf8_lossy(&k))),
        });

        for op in [EngineOp::Set, EngineOp::Update] {
            let k = key(picker.below(MIXED_KEYS as u64) as usize);
            let v = value();
            let mut ok = false;
            step(&mut s, maintain, op, &mut by_op, &mut |s| {
                let r = if op == EngineOp::Set { s.set(&k, &v) } else { s.update(&k, &v) };
                ok = r.is_ok();
                r
            });
            if ok {
                model.insert(k, v);
            }
        }

        let added = format!("add{round:06}").into_bytes();
        let v = value();
        step(&mut s, maintain, EngineOp::Add, &mut by_op, &mut |s| s.add(&added, &v));
        step(&mut s, maintain, EngineOp::Delete, &mut by_op, &mut |s| s.remove(&added));
    }

    // One full compaction of the store as it is now.
    setup.live_keys = model.len();
    setup.live_bytes = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let (sample, r) = measure(&mut s, |s| s.compact());
    let c = by_op.entry(EngineOp::Compaction).or_default();
    c.list.push(sample);
    if let Err(e) = r {
        c.fail(format!("compact: {e}"));
    }
    for (k, v) in &model {
        match s.get(k, &mut out) {
            Ok(Some(n)) if &out[..n] == v.as_slice() => {}
            got => c.fail(format!("after the compaction, {}: {got:?}", String::from_utf8_lossy(k))),
        }
    }
    if let Some(f) = setup_failure {
        // A store that could not be set up measures nothing meaningful: say so on every row.
        for e in by_op.values_mut() {
            e.fail(format!("set-up: {f}"));
        }
    }
    let rows = EngineOp::ALL.iter().filter_map(|op| by_op.get(op).map(|e| e.row(b.label(), *op))).collect();
    (rows, setup)
}
