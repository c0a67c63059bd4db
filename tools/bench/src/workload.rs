//! The workloads and what is measured around them.
//!
//! - `stats`: Arduino's FlashKeyValue tutorial loop: get the 12-byte value of key `stats`,
//!   increment its counter, set it; `updates` times.
//! - `mixed`: keys `key000`..`key199`, each written once with a value of 16..=256 random
//!   bytes, then `updates` random overwrites (SplitMix64, seed 42: key, length and bytes).
//! - mount cost: 400 keys, then overwrites until the engine's active area is full, then a
//!   reboot: mount plus the first get.
//!
//! Every run uses a fresh target flash. Failures are recorded and the run goes on. After a
//! workload the device is "rebooted" (the store is dropped and opened again with empty RAM
//! state) and every key's last value is read back. A set that failed may or may not have
//! taken effect, so either value is accepted for that key until the next successful set.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::flash::{self, ENDURANCE};
use crate::stores::{Backend, Kv, Ram};
use crate::StoreId;
use flash_sim::SplitMix64;
use serde::Serialize;

/// Workload names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// 100,000 x get/increment/set of one 12-byte value.
    Stats,
    /// 200 keys of 16..=256 bytes, 100,000 random overwrites.
    Mixed,
}

impl Workload {
    /// Its name in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Stats => "stats",
            Workload::Mixed => "mixed",
        }
    }
}

/// Seed of the `mixed` workload and of the mount test's fill.
pub const SEED: u64 = 42;
/// Keys of the `mixed` workload.
pub const MIXED_KEYS: usize = 200;
/// Shortest and longest `mixed` value.
pub const VALUE_LEN: (usize, usize) = (16, 256);
/// Key of the `stats` workload.
pub const STATS_KEY: &[u8] = b"stats";
/// Length of the `stats` value.
pub const STATS_LEN: usize = 12;

/// Key number `i`: `key000`, `key001`, ...
pub fn key(i: usize) -> Vec<u8> {
    format!("key{i:03}").into_bytes()
}

/// The `stats` value for counter `n`: the counter, its double and its complement (u32 LE).
pub fn stats_value(n: u32) -> [u8; STATS_LEN] {
    let mut v = [0; STATS_LEN];
    v[0..4].copy_from_slice(&n.to_le_bytes());
    v[4..8].copy_from_slice(&n.wrapping_mul(2).to_le_bytes());
    v[8..12].copy_from_slice(&(!n).to_le_bytes());
    v
}

/// The counter of a `stats` value, if it is well formed.
pub fn stats_counter(v: &[u8]) -> Option<u32> {
    let n = u32::from_le_bytes(v.get(0..4)?.try_into().ok()?);
    (v.len() == STATS_LEN && stats_value(n) == v).then_some(n)
}

/// Values remembered per key after failed sets.
const MAX_CANDIDATES: usize = 64;

/// What a key may hold: the values a reader may see (more than one after a failed set).
#[derive(Default)]
struct Model {
    keys: BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>>,
}

impl Model {
    fn set_ok(&mut self, k: &[u8], v: &[u8]) {
        self.keys.insert(k.to_vec(), vec![Some(v.to_vec())]);
    }

    fn set_failed(&mut self, k: &[u8], v: &[u8]) {
        let vs = self.keys.entry(k.to_vec()).or_insert_with(|| vec![None]);
        vs.push(Some(v.to_vec()));
        // Bounded for stores that fail thousands of times: a value older than the last
        // MAX_CANDIDATES failed sets then counts as wrong (stricter, never laxer).
        if vs.len() > MAX_CANDIDATES {
            vs.remove(0);
        }
    }

    fn accepts(&self, k: &[u8], got: Option<&[u8]>) -> bool {
        match self.keys.get(k) {
            Some(vs) => vs.iter().any(|v| v.as_deref() == got),
            None => got.is_none(),
        }
    }

    /// The most recent value tried for `k`.
    fn latest(&self, k: &[u8]) -> Option<&[u8]> {
        self.keys.get(k).and_then(|vs| vs.last()).and_then(|v| v.as_deref())
    }
}

/// Failures seen during a run.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn record(&mut self, op: u64, what: &str, e: &str) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("op {op} ({what}): {e}"));
        }
    }
}

/// Nearest-rank percentile of sorted `v`.
pub fn percentile(v: &[u64], p: u64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p * v.len() as u64).div_ceil(100).max(1);
    v[(rank - 1) as usize]
}

/// Runs `w` on a fresh flash; `updates` get/increment/set cycles (stats) or overwrites (mixed).
pub fn run<B: Backend>(b: &B, w: Workload, updates: u64) -> Row {
    let t0 = Instant::now();
    let mut row = Row::new(b.id(), w, updates, b.ram());
    let mut bufs = b.new_bufs();
    let dev = b.new_flash();
    let geometry = dev.geometry();
    let unit = geometry.program_size as usize;
    let mut kv = match b.open(dev, &mut bufs) {
        Ok(kv) => kv,
        Err(e) => {
            row.first_failure = Some(format!("open: {e}"));
            row.host_cpu_s = t0.elapsed().as_secs_f64();
            return row;
        }
    };
    let mut fails = Failures::default();
    if let Err(e) = kv.format() {
        fails.record(0, "format", &e);
    }

    let mut model = Model::default();
    let mut lat = Vec::new();
    let mut user_bytes = 0u64;
    let mut set_words = 0u64;
    let mut sets_ok = 0u64;
    let mut completed = 0u64;
    let mut ops = 0u64;
    let mut out = vec![0u8; 1024];

    // One set, timed on the device clock; idle work runs after it, untimed.
    let mut set =
        |kv: &mut B::Store<'_>, op: u64, k: &[u8], v: &[u8], model: &mut Model, fails: &mut Failures| {
            let t = kv.time_ns();
            let r = kv.set(k, v);
            lat.push(kv.time_ns() - t);
            user_bytes += (k.len() + v.len()) as u64;
            set_words += (k.len() + v.len()).div_ceil(unit) as u64;
            let mut ok = match r {
                Ok(()) => {
                    model.set_ok(k, v);
                    sets_ok += 1;
                    true
                }
                Err(e) => {
                    fails.record(op, "set", &e);
                    model.set_failed(k, v);
                    false
                }
            };
            if let Err(e) = kv.idle() {
                fails.record(op, "maintain", &e);
                ok = false;
            }
            ok
        };

    match w {
        Workload::Stats => {
            for op in 1..=updates {
                ops += 1;
                let mut ok = true;
                let got = kv.get(STATS_KEY, &mut out);
                let current = match got {
                    Ok(r) if model.accepts(STATS_KEY, r.map(|n| &out[..n])) => {
                        r.and_then(|n| stats_counter(&out[..n])).unwrap_or(0)
                    }
                    Ok(r) => {
                        let shown = r.map(|n| format!("{:02x?}", &out[..n.min(16)]));
                        fails.record(op, "get", &format!("wrong value {shown:?}"));
                        ok = false;
                        model.latest(STATS_KEY).and_then(stats_counter).unwrap_or(0)
                    }
                    Err(e) => {
                        fails.record(op, "get", &e);
                        ok = false;
                        model.latest(STATS_KEY).and_then(stats_counter).unwrap_or(0)
                    }
                };
                if let Err(e) = kv.idle() {
                    fails.record(op, "maintain", &e);
                    ok = false;
                }
                let next = stats_value(current.wrapping_add(1));
                ok &= set(&mut kv, op, STATS_KEY, &next, &mut model, &mut fails);
                completed += u64::from(ok);
            }
        }
        Workload::Mixed => {
            let mut rng = SplitMix64::new(SEED);
            let keys: Vec<Vec<u8>> = (0..MIXED_KEYS).map(key).collect();
            let total = MIXED_KEYS as u64 + updates;
            for op in 1..=total {
                ops += 1;
                let i = if op <= MIXED_KEYS as u64 {
                    (op - 1) as usize
                } else {
                    rng.below(MIXED_KEYS as u64) as usize
                };
                let len = rng.between(VALUE_LEN.0, VALUE_LEN.1);
                let value = &mut out[..len];
                rng.fill(value);
                let value = value.to_vec();
                let ok = set(&mut kv, op, &keys[i], &value, &mut model, &mut fails);
                completed += u64::from(ok);
            }
        }
    }

    let st = kv.stats();
    row.ops = ops;
    row.ops_completed = completed;
    row.sets_ok = sets_ok;
    row.failures = fails.count;
    row.first_failure = fails.first;
    row.user_bytes = user_bytes;
    row.set_fill(&st);
    row.bytes_read_per_op = if ops > 0 { st.bytes_read as f64 / ops as f64 } else { 0.0 };
    row.requests_per_op =
        if ops > 0 { (st.reads + st.programs + st.erases) as f64 / ops as f64 } else { 0.0 };
    lat.sort_unstable();
    row.set_p50_ms = percentile(&lat, 50) as f64 / 1e6;
    row.set_p99_ms = percentile(&lat, 99) as f64 / 1e6;
    row.set_max_ms = lat.last().copied().unwrap_or(0) as f64 / 1e6;
    row.sim_time_s = st.time_ns as f64 / 1e9;

    // Lifetime: updates until the most-erased sector reaches its rated cycles, against the
    // physical limit (every program unit of the device programmed once per erase, 10,000
    // times, for updates of this size in whole units).
    if row.erases_max > 0 && sets_ok > 0 {
        row.lifetime_updates = Some(sets_ok as f64 * ENDURANCE as f64 / row.erases_max as f64);
        row.lifetime_basis = sets_ok;
        row.lifetime_erases_max = row.erases_max;
    }
    let words_per_update = if lat.is_empty() { 1.0 } else { set_words as f64 / lat.len() as f64 };
    row.physical_limit_updates = geometry.unit_count() as f64 * ENDURANCE as f64 / words_per_update.max(1.0);
    row.lifetime_share = row.lifetime_updates.map(|u| u / row.physical_limit_updates);

    // Reboot and check every key.
    let keys: Vec<Vec<u8>> = model.keys.keys().cloned().collect();
    let flash_dev = kv.into_flash();
    let before = flash_dev.stats().clone();
    let mut kv = match b.open(flash_dev, &mut bufs) {
        Ok(kv) => kv,
        Err(e) => {
            row.remount = format!("reopen failed: {e}");
            row.host_cpu_s = t0.elapsed().as_secs_f64();
            return row;
        }
    };
    let mut problems = Vec::new();
    if let Err(e) = kv.mount() {
        problems.push(format!("mount: {e}"));
    }
    let mut good = 0usize;
    for (n, k) in keys.iter().enumerate() {
        let r = kv.get(k, &mut out);
        if n == 0 {
            let after = kv.stats();
            row.mount_bytes_read = Some(after.bytes_read - before.bytes_read);
            row.mount_ms = Some((after.time_ns - before.time_ns) as f64 / 1e6);
            let erased = after.erases - before.erases;
            if erased > 0 {
                problems.push(format!("mount + first get erased {erased} sectors"));
            }
        }
        match r {
            Ok(got) if model.accepts(k, got.map(|n| &out[..n])) => good += 1,
            Ok(_) => problems.push(format!("{}: wrong value", String::from_utf8_lossy(k))),
            Err(e) => problems.push(format!("{}: {e}", String::from_utf8_lossy(k))),
        }
    }
    row.keys_checked = keys.len();
    row.keys_correct = good;
    row.correct_after_remount = problems.is_empty() && good == keys.len();
    row.remount = match problems.first() {
        None => format!("{good}/{} keys", keys.len()),
        Some(p) => format!("{good}/{} keys; first problem: {p}", keys.len()),
    };
    drop(kv.into_flash());
    row.host_cpu_s = t0.elapsed().as_secs_f64();
    row
}

/// Overwrites after `keys` keys that leave the engine's active area full: the next set of the
/// largest value could need a compaction. Computed once with the engine so every store gets
/// the same history.
pub fn full_area_overwrites(keys: usize) -> u64 {
    let b = crate::stores::EngineBackend::new(crate::StoreId::Tdbstore).with_index(keys);
    let mut bufs = b.new_bufs();
    let Ok(mut s) = b.open(flash::target(), &mut bufs) else {
        return 0;
    };
    if s.mount().is_err() {
        return 0;
    }
    // Header + longest key + longest value, in flash words.
    let biggest = (tdbstore::format::HEADER_LEN as usize + 6 + VALUE_LEN.1).div_ceil(32) as u32 * 32;
    let mut rng = SplitMix64::new(SEED);
    let mut buf = vec![0u8; VALUE_LEN.1];
    let mut n = 0;
    for i in 0.. {
        let fill = i < keys;
        let info = s.info();
        if !fill && (info.area_size - info.free_offset < biggest || info.compactions > 0) {
            break;
        }
        let k = if fill { i } else { rng.below(keys as u64) as usize };
        let len = rng.between(VALUE_LEN.0, VALUE_LEN.1);
        rng.fill(&mut buf[..len]);
        if s.set(&key(k), &buf[..len]).is_err() {
            break;
        }
        n += u64::from(!fill);
    }
    n
}

/// Mount cost of a full area holding `keys` keys: fill (same sequence for every store), reboot,
/// then measure the mount plus the first get.
pub fn mount_cost<B: Backend>(b: &B, keys: usize, overwrites: u64) -> MountRow {
    let mut row = MountRow { store: b.id(), keys, overwrites, ..MountRow::default() };
    let mut bufs = b.new_bufs();
    let mut kv = match b.open(b.new_flash(), &mut bufs) {
        Ok(kv) => kv,
        Err(e) => {
            row.problem = Some(format!("open: {e}"));
            return row;
        }
    };
    let mut fails = Failures::default();
    if let Err(e) = kv.format() {
        fails.record(0, "format", &e);
    }
    let mut model = Model::default();
    let mut rng = SplitMix64::new(SEED);
    let mut buf = vec![0u8; 1024];
    for i in 0..keys as u64 + overwrites {
        let k = if i < keys as u64 { i as usize } else { rng.below(keys as u64) as usize };
        let len = rng.between(VALUE_LEN.0, VALUE_LEN.1);
        rng.fill(&mut buf[..len]);
        let k = key(k);
        match kv.set(&k, &buf[..len]) {
            Ok(()) => model.set_ok(&k, &buf[..len]),
            Err(e) => {
                fails.record(i + 1, "set", &e);
                model.set_failed(&k, &buf[..len]);
            }
        }
        if let Err(e) = kv.idle() {
            fails.record(i + 1, "maintain", &e);
        }
    }
    row.fill_failures = fails.count;
    let dev = kv.into_flash();
    let before = dev.stats().clone();
    let mut kv = match b.open(dev, &mut bufs) {
        Ok(kv) => kv,
        Err(e) => {
            row.problem = Some(format!("reopen: {e}"));
            return row;
        }
    };
    let mounted = kv.mount();
    let first = kv.get(&key(0), &mut buf);
    let after = kv.stats();
    row.bytes_read = after.bytes_read - before.bytes_read;
    row.sim_ms = (after.time_ns - before.time_ns) as f64 / 1e6;
    let mut good = 0;
    for i in 0..keys {
        let k = key(i);
        if matches!(kv.get(&k, &mut buf), Ok(got) if model.accepts(&k, got.map(|n| &buf[..n]))) {
            good += 1;
        }
    }
    row.keys_correct = good;
    let erased = after.erases - before.erases;
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = mounted {
        problems.push(format!("mount: {e}"));
    }
    if let Err(e) = first {
        problems.push(format!("first get: {e}"));
    }
    if erased > 0 {
        problems.push(format!("mount + first get erased {erased} sectors"));
    }
    if let Some(f) = fails.first {
        problems.push(format!("fill: {} errors, first at {f}", fails.count));
    }
    row.problem = (!problems.is_empty()).then(|| problems.join("; "));
    row
}

/// One store on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Store.
    pub store: StoreId,
    /// Workload.
    pub workload: Workload,
    /// Updates asked for.
    pub updates: u64,
    /// Workload operations attempted (stats: get/increment/set cycles; mixed: sets, the 200
    /// first writes included).
    pub ops: u64,
    /// Operations that completed without any error.
    pub ops_completed: u64,
    /// Sets that succeeded.
    pub sets_ok: u64,
    /// Errors seen (an operation can have more than one).
    pub failures: u64,
    /// The first error, with the operation number.
    pub first_failure: Option<String>,
    /// Every key read back with an acceptable value after a reboot.
    pub correct_after_remount: bool,
    /// Keys checked after the reboot.
    pub keys_checked: usize,
    /// Keys that read back correctly.
    pub keys_correct: usize,
    /// What the reboot check found.
    pub remount: String,
    /// Key + value bytes of every set attempted.
    pub user_bytes: u64,
    /// Bytes of flash words programmed.
    pub bytes_programmed: u64,
    /// `bytes_programmed / user_bytes`.
    pub write_amplification: f64,
    /// Sector erases.
    pub erases_total: u64,
    /// Erases of the most-erased sector.
    pub erases_max: u64,
    /// Max over mean erases per sector (1 = perfectly even wear).
    pub erases_max_over_mean: f64,
    /// Erases of each sector.
    pub erases_per_sector: Vec<u32>,
    /// Bytes read from flash per operation (during the workload).
    pub bytes_read_per_op: f64,
    /// Flash requests (read, program and erase calls that reached the flash) per operation
    /// (during the workload).
    pub requests_per_op: f64,
    /// Bytes read by the reboot's mount plus first get.
    pub mount_bytes_read: Option<u64>,
    /// Simulated time of the reboot's mount plus first get, ms.
    pub mount_ms: Option<f64>,
    /// RAM per key, bytes.
    pub ram_per_key: f64,
    /// RAM independent of the key count, bytes.
    pub ram_fixed: u64,
    /// Simulated set latency, median, ms.
    pub set_p50_ms: f64,
    /// 99th percentile, ms.
    pub set_p99_ms: f64,
    /// Maximum, ms.
    pub set_max_ms: f64,
    /// Simulated device time of the whole workload, s.
    pub sim_time_s: f64,
    /// Wall-clock time of this row's run on the host, s (the only non-deterministic field).
    pub host_cpu_s: f64,
    /// Program-once violations (each makes a flash word ECC-bad).
    pub ecc_violations: u64,
    /// Updates until the most-erased sector reaches 10,000 erases (linear extrapolation).
    pub lifetime_updates: Option<f64>,
    /// Updates of the run the projection comes from.
    pub lifetime_basis: u64,
    /// Erases of the most-erased sector in that run.
    pub lifetime_erases_max: u64,
    /// The physical limit: every flash word programmed once per erase cycle, for updates of
    /// this workload's size in whole words.
    pub physical_limit_updates: f64,
    /// `lifetime_updates / physical_limit_updates`.
    pub lifetime_share: Option<f64>,
}

impl Row {
    /// An empty row.
    pub fn new(store: StoreId, workload: Workload, updates: u64, ram: Ram) -> Row {
        Row {
            store,
            workload,
            updates,
            ops: 0,
            ops_completed: 0,
            sets_ok: 0,
            failures: 0,
            first_failure: None,
            correct_after_remount: false,
            keys_checked: 0,
            keys_correct: 0,
            remount: String::new(),
            user_bytes: 0,
            bytes_programmed: 0,
            write_amplification: 0.0,
            erases_total: 0,
            erases_max: 0,
            erases_max_over_mean: 0.0,
            erases_per_sector: Vec::new(),
            bytes_read_per_op: 0.0,
            requests_per_op: 0.0,
            mount_bytes_read: None,
            mount_ms: None,
            ram_per_key: ram.per_key,
            ram_fixed: ram.fixed,
            set_p50_ms: 0.0,
            set_p99_ms: 0.0,
            set_max_ms: 0.0,
            sim_time_s: 0.0,
            host_cpu_s: 0.0,
            ecc_violations: 0,
            lifetime_updates: None,
            lifetime_basis: 0,
            lifetime_erases_max: 0,
            physical_limit_updates: 0.0,
            lifetime_share: None,
        }
    }

    /// Fills the flash-counter columns from the device's stats at the end of the workload.
    pub fn set_fill(&mut self, st: &flash_sim::Stats) {
        self.bytes_programmed = st.bytes_programmed;
        self.write_amplification =
            if self.user_bytes > 0 { st.bytes_programmed as f64 / self.user_bytes as f64 } else { 0.0 };
        self.erases_per_sector = st.erases_per_sector.clone();
        self.erases_total = st.erases_per_sector.iter().map(|&e| u64::from(e)).sum();
        self.erases_max = st.erases_per_sector.iter().copied().max().unwrap_or(0).into();
        let mean = self.erases_total as f64 / st.erases_per_sector.len().max(1) as f64;
        self.erases_max_over_mean = if mean > 0.0 { self.erases_max as f64 / mean } else { 0.0 };
        self.ecc_violations = st.double_programs;
    }
}

/// Mount cost of one store.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MountRow {
    /// Store.
    pub store: StoreId,
    /// Keys written first.
    pub keys: usize,
    /// Overwrites after them.
    pub overwrites: u64,
    /// Errors during the fill.
    pub fill_failures: u64,
    /// Bytes read by mount plus the first get.
    pub bytes_read: u64,
    /// Their simulated time, ms.
    pub sim_ms: f64,
    /// Keys that then read back correctly.
    pub keys_correct: usize,
    /// The first problem, if any.
    pub problem: Option<String>,
}
