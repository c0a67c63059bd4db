//! Results: the workloads' rows ([`Row`], [`MountRow`]) and everything else measured, rendered as
//! Markdown (stdout and `results.md`) and JSON (`results.json`).
//!
//! Everything in a report is a function of the code and the seeds except `host_cpu_s` (the
//! wall-clock time of each row's run), so two runs of the same code differ only there.

use serde::Serialize;

use crate::baseline::{Baseline, Before};
use crate::flash;
use crate::footprint::Footprint;
use crate::numbers::thousands;
use crate::ops::{OpRow, OpsConfigNote, OpsSetup};
use crate::workload::{MountRow, Row, Workload};
use crate::StoreId;

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
    /// Updates of the longer runs the lifetime projection comes from (stores fast enough).
    pub lifetime_updates: u64,
    /// Stores, in order.
    pub stores: Vec<StoreNote>,
    /// Workload rows.
    pub rows: Vec<Row>,
    /// Mount-cost rows.
    pub mount: Vec<MountRow>,
    /// The engine's per-operation flash costs, configuration by configuration.
    pub ops: Vec<OpRow>,
    /// How they were measured.
    pub ops_setup: Option<OpsSetup>,
    /// The configurations measured.
    pub ops_configs: Vec<OpsConfigNote>,
    /// The capsule's flash and RAM on the Portenta H7 (`None`: not measured in this run).
    pub footprint: Option<Footprint>,
    /// The "before" figures the per-operation table and the footprint are compared with.
    pub before: Before,
    /// What produced these figures: the command and the source commit (empty when unknown).
    pub provenance: String,
    /// Host wall-clock time of the whole benchmark run, s (not deterministic).
    pub host_s: f64,
}

fn fmt_opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
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

/// A mean: whole numbers as such, others to two places (`1,234.50`).
fn decimal(x: f64) -> String {
    if x.fract() == 0.0 {
        thousands(x as u64)
    } else if x >= 1000.0 {
        format!("{}.{:02}", thousands(x.trunc() as u64), ((x.fract() * 100.0).round() as u64).min(99))
    } else {
        format!("{x:.2}")
    }
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
        if self.host_s > 0.0 {
            s.push_str(&format!(
                "The run took {:.0} s of host time (benchmark only; `make bench` also builds it and the \
                 Portenta kernel).\n\n",
                self.host_s
            ));
        }
        if self.rows.is_empty() && self.mount.is_empty() {
            s.push_str(&format!(
                "Flash: {}. No workloads in this run (`--ops-only` or no store selected): only the \
                 engine's per-operation costs and the footprint.\n\n",
                self.flash
            ));
        } else {
            s.push_str(&format!(
                "Flash: {}. Every store and workload starts on a fresh, erased device. {} updates per \
                 workload. Latencies, mount time and lifetime are simulated device time; host CPU is \
                 the wall-clock time of the row's run (the only column that changes between runs).\n\n",
                self.flash,
                thousands(self.updates)
            ));
        }
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
                 | flash requests / op | bytes read / op | bytes read at mount | RAM / key (B) \
                 | set p50 / p99 / max (ms) | host CPU (s) | ECC violations |\n",
            );
            s.push_str("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in rows {
                s.push_str(&format!(
                    "| {} | {} / {} | {} | {} | {} / {} / {:.2} | {} | {} | {} | {} | {} / {} / {} | {:.2} | {} |\n",
                    r.store.id(),
                    thousands(r.ops_completed),
                    thousands(r.ops),
                    correct(r),
                    unless_failed(r, format!("{:.2}", r.write_amplification)),
                    thousands(r.erases_total),
                    thousands(r.erases_max),
                    r.erases_max_over_mean,
                    decimal(r.requests_per_op),
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
            let basis = if self.lifetime_updates > self.updates {
                format!(
                    "for each store and workload whose table run had no errors and, scaled up from its host \
                     time, would take at most {} s for {} updates, a separate run of **{} updates** on a fresh \
                     device (erase counts move in whole steps, so a short run can be a whole cycle off); \
                     otherwise the table's run of {} updates",
                    crate::LIFETIME_RUN_MAX_S,
                    thousands(self.lifetime_updates),
                    thousands(self.lifetime_updates),
                    thousands(self.updates),
                )
            } else {
                format!("the table's run of {} updates", thousands(self.updates))
            };
            s.push_str(&format!(
                "Updates until the most-erased sector reaches 10,000 erases, extrapolated linearly from the \
                 run named in `basis` (its successful sets, the `mixed` workload's 200 first writes \
                 included): {basis}. *Max erases / sector* is that run's. As a share of the physical limit: \
                 49,152 flash words x 10,000 erase cycles / words per update (stats: 1 word, so 491.52 M \
                 one-word updates). Rows whose run had errors get no projection.\n\n",
            ));
            s.push_str(
                "| store | workload | basis (updates) | max erases / sector | updates until 10k \
                 erases | physical limit | share of limit |\n",
            );
            s.push_str("|---|---|---:|---:|---:|---:|---:|\n");
            for r in &self.rows {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    r.store.id(),
                    r.workload.name(),
                    thousands(r.lifetime_basis),
                    thousands(r.lifetime_erases_max),
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

        if let Some(setup) = &self.ops_setup {
            s.push_str(&self.ops_markdown(setup));
            s.push_str(&self.ops_before_markdown(setup));
        }
        s.push_str(&Footprint::markdown(self.footprint.as_ref()));
        s.push_str(&self.footprint_before_markdown());

        s.push_str("## Notes\n\n");
        if !self.rows.is_empty() {
            s.push_str(&Self::workload_notes());
        }
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

    /// The notes on the workload tables' columns.
    fn workload_notes() -> String {
        let mut s = String::from(
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
        s
    }

    /// The per-operation section.
    fn ops_markdown(&self, setup: &OpsSetup) -> String {
        let mut s = format!(
            "## Engine: flash requests per operation\n\n\
             Each configuration's store first holds the `mixed` live set (key000..key199, values 16..256 B) \
             and {} random overwrites of it; then {} rounds of: get a random key, set a random key, update \
             a random key, add a new key, delete it (random values 16..256 B, SplitMix64 seed 42; the same \
             sequence for every configuration); then one full compaction (`Op::Compact`) of the {} live keys \
             ({} B of keys and values) and the dead records the log holds by then. *add* and *update*: {}. \
             Counted by a \
             wrapper around the engine's flash: read, program and erase requests (each one split-phase \
             flash operation on the board); a write that had to compact first carries that compaction, so \
             the mean and maximum include it and the median is the common case. *Idle maintenance* is the \
             work the maintained configurations do after each user operation (erase ahead, early \
             compaction), counted apart.\n\n",
            thousands(setup.history),
            thousands(setup.rounds),
            setup.live_keys,
            thousands(setup.live_bytes),
            setup.add_update,
        );
        s.push_str(
            "| config | operation | samples | flash requests p50 / mean / max | reads / programs / erases (mean) \
             | bytes read p50 / mean / max | bytes programmed (mean) | device time (µs, mean) | failures |\n",
        );
        s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.ops {
            let triple = |p50: u64, mean: f64, max: u64| {
                if r.samples == 1 {
                    thousands(max)
                } else {
                    format!("{} / {} / {}", thousands(p50), decimal(mean), thousands(max))
                }
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} / {} / {} | {} | {} | {} | {} |\n",
                r.config,
                r.op.name(),
                thousands(r.samples),
                triple(r.requests_p50, r.requests_mean, r.requests_max),
                decimal(r.reads_mean),
                decimal(r.programs_mean),
                decimal(r.erases_mean),
                triple(r.bytes_read_p50, r.bytes_read_mean, r.bytes_read_max),
                decimal(r.bytes_programmed_mean),
                decimal((r.sim_ms_mean * 1000.0 * 100.0).round() / 100.0),
                match &r.first_failure {
                    None => "0".to_string(),
                    Some(f) => format!("**{}** (first: {f})", thousands(r.failures)),
                },
            ));
        }
        s.push('\n');
        for n in &self.ops_configs {
            s.push_str(&format!("- **{}**: {}.\n", n.config, n.setup));
        }
        s.push('\n');
        s
    }

    /// Where the "before" figures come from, for the comparison sections.
    fn before_source(b: &Baseline, path: &str) -> String {
        format!(
            "*Before*: commit `{}`{}, figures read from `{path}`. How they were produced: {}.{} *After*: this \
             run.",
            b.short_commit(),
            if b.subject.is_empty() { String::new() } else { format!(" (\"{}\")", b.subject) },
            b.how.trim_end_matches('.'),
            if b.provenance.is_empty() { String::new() } else { format!(" {}", b.provenance) },
        )
    }

    /// The "before" file of a comparison section that `s` has begun, or `None` with `s` as the
    /// section must read without one: empty if none was asked for, else why it is missing
    /// (then `missing`).
    fn loaded_before(&self, s: &mut String, missing: &str) -> Option<(&String, &Baseline)> {
        match &self.before {
            Before::NotAsked => {
                s.clear();
                None
            }
            Before::Missing(why) => {
                s.push_str(&format!("No *before* figures: {why}.{missing}\n\n"));
                None
            }
            Before::Loaded { path, baseline } => Some((path, baseline)),
        }
    }

    /// The per-operation figures of the "before" file beside this run's.
    fn ops_before_markdown(&self, setup: &OpsSetup) -> String {
        let mut s = String::from("### Before and after the engine restructure\n\n");
        let Some((path, b)) = self.loaded_before(&mut s, " Only this run's are shown above.") else {
            return s;
        };
        s.push_str(&Self::before_source(b, path));
        s.push_str(" Each cell is *before → after*.");
        match &b.ops_setup {
            Some(bs) => {
                if bs.add_update != setup.add_update {
                    s.push_str(&format!(
                        " *add* and *update* before: {}; after: {}.",
                        if bs.add_update.is_empty() { "not recorded" } else { &bs.add_update },
                        setup.add_update
                    ));
                }
                let same = |a: &OpsSetup| (a.rounds, a.history, a.live_keys, a.live_bytes);
                if same(bs) != same(setup) {
                    s.push_str(&format!(
                        " **The set-ups differ** (before: {} rounds after {} overwrites, {} live keys of {} B at \
                         the compaction; after: {}, {}, {}, {} B), so rows are not comparable one to one.",
                        thousands(bs.rounds),
                        thousands(bs.history),
                        bs.live_keys,
                        thousands(bs.live_bytes),
                        thousands(setup.rounds),
                        thousands(setup.history),
                        setup.live_keys,
                        thousands(setup.live_bytes)
                    ));
                }
            }
            None => s.push_str(" The before file does not say how its rows were measured."),
        }
        s.push_str("\n\n");
        s.push_str(
            "| config | operation | flash requests p50 | flash requests mean | bytes read p50 | bytes read mean \
             | bytes programmed (mean) | device time (µs, mean) | failures |\n",
        );
        s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        // This run's rows in table order, then any the before file has that this run lacks.
        let key = |r: &OpRow| (r.config.clone(), r.op);
        let mut keys: Vec<(String, crate::ops::EngineOp)> = self.ops.iter().map(key).collect();
        keys.extend(b.ops.iter().map(key).filter(|k| !self.ops.iter().any(|r| &key(r) == k)));
        let find =
            |rows: &[OpRow], k: &(String, crate::ops::EngineOp)| rows.iter().find(|r| &key(r) == k).cloned();
        for k in keys {
            let (old, new) = (find(&b.ops, &k), find(&self.ops, &k));
            let cell = |f: &dyn Fn(&OpRow) -> String| {
                format!("{} → {}", old.as_ref().map_or("—".into(), f), new.as_ref().map_or("—".into(), f))
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                k.0,
                k.1.name(),
                cell(&|r| thousands(r.requests_p50)),
                cell(&|r| decimal(r.requests_mean)),
                cell(&|r| thousands(r.bytes_read_p50)),
                cell(&|r| decimal(r.bytes_read_mean)),
                cell(&|r| decimal(r.bytes_programmed_mean)),
                cell(&|r| decimal((r.sim_ms_mean * 1000.0 * 100.0).round() / 100.0)),
                cell(&|r| thousands(r.failures)),
            ));
        }
        s.push('\n');
        s
    }

    /// The footprint of the "before" file beside this run's.
    fn footprint_before_markdown(&self) -> String {
        let mut s = String::from("### Footprint before and after the engine restructure\n\n");
        let Some((path, b)) = self.loaded_before(&mut s, "") else {
            return s;
        };
        if self.ops_setup.is_some() {
            s.push_str(&format!(
                "*Before*: commit `{}`, from `{path}` (how: see the per-operation comparison above). *After*: \
                 this run.",
                b.short_commit()
            ));
        } else {
            s.push_str(&Self::before_source(b, path));
        }
        s.push_str(
            " Same measurement both sides (`kv_footprint.py` over the release kernel ELF); \"not \
             measured\" where a side has no figure. The whole kernel's flash includes the source paths \
             of panic locations, so it also moves with where the tree was checked out; the engine's \
             and the capsule's symbols do not.\n\n",
        );
        let col = |f: Option<&Footprint>| -> Vec<Option<u64>> {
            let measured = f.filter(|f| f.unavailable.is_none());
            let fl = measured.and_then(|f| f.flash.as_ref());
            let ram = measured.and_then(|f| f.capsule_ram().map(|_| f));
            let k = measured.and_then(|f| f.kernel.as_ref());
            vec![
                fl.map(|x| x.engine),
                fl.map(|x| x.capsule),
                fl.map(|x| x.engine + x.capsule),
                fl.map(|x| x.syscall_driver),
                fl.map(|x| x.engine + x.capsule + x.syscall_driver),
                ram.and_then(Footprint::capsule_ram),
                ram.map(|f| f.layer_ram("tdbstore_kv")),
                ram.map(|f| f.layer_ram("kv_syscall")),
                ram.and_then(|f| f.ram.as_ref()?.engine_state.as_ref().map(|e| e.bytes)),
                ram.map(|f| f.layer_ram("upstream")),
                k.map(|k| k.flash),
                k.map(|k| k.ram),
            ]
        };
        let labels = [
            "flash: engine (`tdbstore`)",
            "flash: store capsule (`TdbStoreKv`, its component)",
            "**flash: engine + store capsule** (budget 16,384)",
            "flash: KV syscall driver (`capsules_tdbstore::kv_syscall`)",
            "flash: engine + store capsule + syscall driver",
            "**RAM: capsule statics** (`TdbStoreKv` + `KvSyscallDriver` with their buffers)",
            "RAM: `TdbStoreKv` with the index and buffers its component allocates",
            "RAM: `KvSyscallDriver` with its key and value buffers",
            "RAM: the engine's state (inside `TdbStoreKv`)",
            "RAM: Tock's permission and virtualizer layers (not the capsule's)",
            "whole kernel: flash",
            "whole kernel: RAM",
        ];
        let before = col(b.footprint.as_ref());
        let after = col(self.footprint.as_ref());
        s.push_str(&format!(
            "| bytes | before (`{}`) | after (this run) |\n|---|---:|---:|\n",
            b.short_commit()
        ));
        let show = |v: Option<u64>| v.map_or("not measured".into(), thousands);
        for (i, label) in labels.iter().enumerate() {
            s.push_str(&format!("| {label} | {} | {} |\n", show(before[i]), show(after[i])));
        }
        s.push('\n');
        s
    }

    /// The JSON rendering.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }
}
