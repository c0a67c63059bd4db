//! Results: one [`Row`] per store and workload, one [`MountRow`] per store, rendered as
//! Markdown (stdout and `results.md`) and JSON (`results.json`).
//!
//! Everything in a report is a function of the code and the seeds except `host_cpu_s` (the
//! wall-clock time of each row's run), so two runs of the same code differ only there.

use serde::Serialize;

use crate::flash;
use crate::stores::Ram;
use crate::workload::Workload;
use crate::StoreId;

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

/// Notes on one store: its configuration and how it was driven.
#[derive(Clone, Debug, Serialize)]
pub struct StoreNote {
    /// Store.
    pub store: StoreId,
    /// What it is and how it is configured.
    pub setup: String,
    /// How its RAM column was computed.
    pub ram: String,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The flash, in words.
    pub flash: String,
    /// Updates per workload.
    pub updates: u64,
    /// Stores, in order.
    pub stores: Vec<StoreNote>,
    /// Workload rows.
    pub rows: Vec<Row>,
    /// Mount-cost rows.
    pub mount: Vec<MountRow>,
    /// What produced these figures: the command and the source commit (empty when unknown).
    pub provenance: String,
}

fn fmt_opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn millions(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1} M", x / 1e6)
    } else {
        thousands(x.round() as u64)
    }
}

/// A derived figure, or "n/a" for a row whose run had errors (its counters then describe a
/// store that stopped working, not its costs).
fn unless_failed(r: &Row, v: String) -> String {
    if r.failures > 0 {
        "n/a (errors)".into()
    } else {
        v
    }
}

fn ram(r: &Row) -> String {
    format!("{} (+{} fixed)", r.ram_per_key, thousands(r.ram_fixed))
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn correct(r: &Row) -> String {
    if r.correct_after_remount {
        format!("yes ({}/{})", r.keys_correct, r.keys_checked)
    } else {
        format!("**no** ({}/{})", r.keys_correct, r.keys_checked)
    }
}

impl Report {
    /// The Markdown rendering.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("# TDBStore benchmark\n\n");
        if !self.provenance.is_empty() {
            s.push_str(&format!("{}\n\n", self.provenance));
        }
        s.push_str(&format!(
            "Flash: {}. Every store and workload starts on a fresh, erased device. {} updates per \
             workload. Latencies, mount time and lifetime are simulated device time; host CPU is \
             the wall-clock time of the row's run (the only column that changes between runs).\n\n",
            self.flash,
            thousands(self.updates)
        ));
        for w in [Workload::Stats, Workload::Mixed] {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.workload == w).collect();
            if rows.is_empty() {
                continue;
            }
            s.push_str(&match w {
                Workload::Stats => format!(
                    "## Workload `stats`: {} x get / increment / set of key `stats` (12-byte value)\n\n",
                    thousands(self.updates)
                ),
                Workload::Mixed => format!(
                    "## Workload `mixed`: keys key000..key199 (values 16..256 B) written once, then {} \
                     random overwrites (SplitMix64, seed 42)\n\n",
                    thousands(self.updates)
                ),
            });
            s.push_str(
                "| store | ops completed | correct after remount | write amp. | erases total / max / max÷mean \
                 | bytes read / op | bytes read at mount | RAM / key (B) | set p50 / p99 / max (ms) \
                 | host CPU (s) | ECC violations |\n",
            );
            s.push_str("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in rows {
                s.push_str(&format!(
                    "| {} | {} / {} | {} | {} | {} / {} / {:.2} | {} | {} | {} | {} / {} / {} | {:.2} | {} |\n",
                    r.store.id(),
                    thousands(r.ops_completed),
                    thousands(r.ops),
                    correct(r),
                    unless_failed(r, format!("{:.2}", r.write_amplification)),
                    thousands(r.erases_total),
                    thousands(r.erases_max),
                    r.erases_max_over_mean,
                    thousands(r.bytes_read_per_op.round() as u64),
                    fmt_opt(r.mount_bytes_read, thousands),
                    ram(r),
                    ms(r.set_p50_ms),
                    ms(r.set_p99_ms),
                    ms(r.set_max_ms),
                    r.host_cpu_s,
                    thousands(r.ecc_violations),
                ));
            }
            s.push('\n');
        }

        if !self.rows.is_empty() {
            s.push_str("## Lifetime projection\n\n");
            s.push_str(
                "Updates until the most-erased sector reaches 10,000 erases, extrapolated linearly from \
                 the run named in `basis` (for stores fast enough, a longer `stats` run than the table's, \
                 since erase counts move in whole steps), and as a share of the physical limit: 49,152 flash words x 10,000 erase \
                 cycles / words per update (stats: 1 word, so 491.52 M one-word updates). Rows whose run \
                 had errors get no projection.\n\n",
            );
            s.push_str(
                "| store | workload | successful sets | max erases / sector | basis (updates) | updates until 10k \
                 erases | physical limit | share of limit |\n",
            );
            s.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
            for r in &self.rows {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    r.store.id(),
                    r.workload.name(),
                    thousands(r.sets_ok),
                    thousands(r.erases_max),
                    thousands(r.lifetime_basis),
                    unless_failed(r, fmt_opt(r.lifetime_updates, millions)),
                    millions(r.physical_limit_updates),
                    unless_failed(r, fmt_opt(r.lifetime_share, |x| format!("{:.2} %", x * 100.0))),
                ));
            }
            s.push('\n');
        }

        if !self.mount.is_empty() {
            let m = &self.mount[0];
            s.push_str(&format!(
                "## Mount cost: {} keys, full area\n\n{} keys (values 16..256 B, seed 42), then {} random \
                 overwrites: the point where the engine's active area has no room for the largest \
                 record. Then a reboot: mount plus the first get (`key000`), then every key is read back.\n\n",
                m.keys,
                m.keys,
                thousands(m.overwrites)
            ));
            s.push_str("| store | bytes read | simulated time (ms) | keys correct | problem |\n");
            s.push_str("|---|---:|---:|---:|---|\n");
            for m in &self.mount {
                s.push_str(&format!(
                    "| {} | {} | {} | {}/{} | {} |\n",
                    m.store.id(),
                    thousands(m.bytes_read),
                    ms(m.sim_ms),
                    m.keys_correct,
                    m.keys,
                    m.problem.as_deref().unwrap_or("")
                ));
            }
            s.push('\n');
        }

        s.push_str("## Notes\n\n");
        s.push_str(
            "- Columns: *ops completed* counts operations with no error (stats: a get/increment/set \
             cycle; mixed: one set, the 200 first writes included). *Write amp.* is flash bytes \
             programmed / key+value bytes of every set. *Bytes read / op* covers the workload only; \
             *bytes read at mount* is the reboot's mount plus its first get. *RAM / key* is bytes per \
             live key, plus bytes independent of the key count. *Set latency* is the device time during \
             the set, including any erase or garbage collection it ran. *ECC violations* counts flash \
             words programmed twice between erases; on the STM32H7 each becomes unreadable.\n",
        );
        s.push_str(&format!(
            "- Flash words are {} bytes: a store that writes less than a word and later writes the rest of \
             that word breaks the program-once rule, whatever its own documentation assumes.\n",
            flash::WORD
        ));
        s.push_str(
            "- Charts: `erases-stats-<store>.svg` beside this file shows each store's erases per sector \
             after the `stats` workload.\n",
        );
        for n in &self.stores {
            s.push_str(&format!("- **{}**: {} RAM: {}.\n", n.store.id(), n.setup, n.ram));
        }
        let failing: Vec<&Row> = self.rows.iter().filter(|r| r.first_failure.is_some()).collect();
        if !failing.is_empty() {
            s.push_str("\n### Failures (each run goes on after an error)\n\n");
            for r in failing {
                s.push_str(&format!(
                    "- {} / {}: {} errors; first at {}. After reboot: {}.\n",
                    r.store.id(),
                    r.workload.name(),
                    thousands(r.failures),
                    r.first_failure.as_deref().unwrap_or(""),
                    r.remount
                ));
            }
        }
        s
    }

    /// The JSON rendering.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }
}
