//! Benchmarks of the TDBStore engine (`libraries/tdbstore`) against sequential-storage 8, ekv 1
//! and TicKV 2, all on the same simulated STM32H7 flash (`libraries/flash-sim`).
//!
//! [`run`] executes the workloads of [`workload`] for every selected store of [`StoreId`], the
//! engine's per-operation flash costs of [`ops`], and returns a [`report::Report`]; the
//! `tdbstore-bench` binary adds the capsule's footprint on the Portenta H7 ([`footprint`]),
//! prints it as Markdown and writes `results/results.md`, `results/results.json` and one SVG
//! of per-sector erase counts per store ([`plot`]). This is development tooling: it measures and prints, it asserts nothing
//! about speed.

pub mod baseline;
pub mod flash;
pub mod footprint;
pub mod numbers;
pub mod ops;
pub mod plot;
pub mod report;
pub mod stores;
pub mod workload;

use serde::Serialize;

use report::{Report, StoreNote};
use stores::{Backend, EkvBackend, EngineBackend, SsBackend, TickvBackend};
use workload::Workload;
use workload::{MountRow, Row};

/// The stores (rows) of the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum StoreId {
    /// The engine, Mbed format, no idle-time maintenance.
    #[default]
    #[serde(rename = "tdbstore")]
    Tdbstore,
    /// The engine with `maintain_all` between user operations.
    #[serde(rename = "tdbstore-maint")]
    TdbstoreMaint,
    /// The engine with maintenance and compact records (no Mbed compatibility).
    #[serde(rename = "tdbstore-compact")]
    TdbstoreCompact,
    /// sequential-storage map without caches.
    #[serde(rename = "ss-nocache")]
    SsNoCache,
    /// sequential-storage map with page-state, page-pointer and key-pointer caches.
    #[serde(rename = "ss-cache")]
    SsCache,
    /// ekv.
    #[serde(rename = "ekv")]
    Ekv,
    /// TicKV.
    #[serde(rename = "tickv")]
    Tickv,
    /// Reference only (opt-in): ekv on a 4-byte-program variant of the flash.
    #[serde(rename = "ekv-4b")]
    EkvReference,
}

impl StoreId {
    /// Every store, in table order.
    pub const ALL: [StoreId; 7] = [
        StoreId::Tdbstore,
        StoreId::TdbstoreMaint,
        StoreId::TdbstoreCompact,
        StoreId::SsNoCache,
        StoreId::SsCache,
        StoreId::Ekv,
        StoreId::Tickv,
    ];

    /// Reference rows: not on the target flash, run only when asked for.
    pub const REFERENCE: [StoreId; 1] = [StoreId::EkvReference];

    /// Its name in tables, file names and `--only`.
    pub fn id(self) -> &'static str {
        match self {
            StoreId::Tdbstore => "tdbstore",
            StoreId::TdbstoreMaint => "tdbstore-maint",
            StoreId::TdbstoreCompact => "tdbstore-compact",
            StoreId::SsNoCache => "ss-nocache",
            StoreId::SsCache => "ss-cache",
            StoreId::Ekv => "ekv",
            StoreId::Tickv => "tickv",
            StoreId::EkvReference => "ekv-4b",
        }
    }

    /// Whether `--only <filter>` selects it: its id, or a prefix ending at a `-`
    /// (`tdbstore` selects both engine rows, `ss` both sequential-storage rows).
    pub fn matches(self, filter: &str) -> bool {
        let id = self.id();
        id == filter || id.strip_prefix(filter).is_some_and(|rest| rest.starts_with('-'))
    }

    /// How the store is set up, for the notes.
    pub fn setup(self) -> String {
        match self {
            StoreId::Tdbstore => {
                "this engine, Mbed TDBStore format, `StoreOptions::default()`: two areas of \
                6 sectors, 4096-byte work buffer, 512-entry index; never calls `maintain`."
                    .into()
            }
            StoreId::TdbstoreMaint => format!(
                "the same engine, configured as the Tock capsule runs it: `maintain_all()` after every \
                user operation, as an idle capsule would (its erase-ahead and early-compaction time is \
                not counted in set latency, but its reads, programs and erases are in every other \
                column), with early compaction once fewer than {} bytes are free.",
                stores::COMPACT_BELOW
            ),
            StoreId::TdbstoreCompact => "as tdbstore-maint, with the opt-in compact record layout \
                (`RecordFormat::Compact`: 12-byte headers, key packed behind them; not Mbed-readable): \
                a small record is one 32-byte flash word."
                .into(),
            StoreId::SsNoCache => "sequential-storage 8 `MapStorage` over the whole 1.5 MiB (12 pages of \
                128 KiB), async `NorFlash` adapter with WRITE_SIZE 32 and ERASE_SIZE 131072 driven by \
                `embassy_futures::block_on`; `Cache::new_uncached()`; keys stored as a length byte + \
                the bytes (`&[u8]` values)."
                .into(),
            StoreId::SsCache => "sequential-storage 8 as above with `ArrayPageStates<12>`, \
                `ArrayPagePointers<12>` and `ArrayKeyPointers<_, 512>`."
                .into(),
            StoreId::Ekv => format!(
                "ekv 1.0 via Cargo features page-size-65536, max-page-count-12, scratch-page-count-0, \
                 align-4, crc. ekv cannot be configured for this flash: its largest page is 64 KiB \
                 (u16 chunk lengths; 128 KiB fails its compile-time checks) and its largest write \
                 alignment is 4 bytes, while the program unit is {} bytes. Nearest geometry: 12 pages of \
                 64 KiB, page p = the first half of sector p (erasing a page erases that sector; half \
                 the flash is unused); writes are padded to whole 32-byte words. Scratch pages are 0 \
                 because ekv's reserve must stay below half its page count. `Config::default()` \
                 (random seed 0).",
                flash::WORD
            ),
            StoreId::Tickv => "TicKV 2.0 with region size (const generic) 131072 = the erase unit, \
                12 regions, driven as Tock's tickv_kv_store does: 64-bit key hash (FNV-1a here; \
                Tock uses SipHash), set = `append_key`, and on KeyAlreadyExists `invalidate_key` then \
                `append_key`; a RegionFull/FlashFull append runs `garbage_collect` and retries once. \
                Writes smaller than a word are read-modify-written as its FlashController docs ask. \
                TicKV packs objects at byte offsets and invalidates by rewriting one header byte, so \
                it programs words twice on this flash. Its `initialise` treats any error reading \
                the main key as an unformatted device and erases every region. No reference row: \
                invalidation clears bits of an already programmed byte, which no program-once \
                flash allows, whatever its program unit."
                .into(),
            StoreId::EkvReference => format!(
                "*reference only, not the target flash*: ekv configured as above on a variant of the \
                 flash with {}-byte program units (ekv's ALIGN; program time scaled to 12.5 us per \
                 unit), same 12 sectors and page mapping, to show ekv's own costs where it can run. \
                 Its physical limit counts 4-byte units.",
                flash::EKV_REFERENCE_UNIT
            ),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Updates per workload.
    pub updates: u64,
    /// Stores to run.
    pub stores: Vec<StoreId>,
    /// Keys of the mount-cost test (0 skips it).
    pub mount_keys: usize,
    /// Fill the area before the mount-cost test (else just the keys).
    pub mount_full: bool,
    /// Updates of the longer run of each workload used only for the lifetime projection
    /// (stores fast enough; 0 skips it).
    pub lifetime_updates: u64,
    /// Rounds of the engine's per-operation measurement (0 skips it).
    pub op_rounds: u64,
    /// Only the engine's per-operation measurement: no workloads, no mount test.
    pub ops_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            updates: 100_000,
            stores: StoreId::ALL.to_vec(),
            mount_keys: 400,
            mount_full: true,
            lifetime_updates: 2_000_000,
            op_rounds: 5_000,
            ops_only: false,
        }
    }
}

/// Host seconds the longer lifetime run of a workload may be expected to take, extrapolated
/// from the table run (its time x `lifetime_updates / updates`); stores slower than that keep
/// the table run's projection. The engine's 2,000,000-update runs take a few seconds;
/// sequential-storage without caches would take over ten minutes (about 40 s per 100,000
/// updates). Extrapolating, rather than bounding the table run's time, gives `--quick` the
/// same choice as a full run.
pub const LIFETIME_RUN_MAX_S: f64 = 60.0;

/// Whether a table run of `updates` that took `host_s` earns a lifetime run of `lifetime`.
pub fn lifetime_run_fits(host_s: f64, updates: u64, lifetime: u64) -> bool {
    lifetime > updates && updates > 0 && host_s * lifetime as f64 / updates as f64 <= LIFETIME_RUN_MAX_S
}

/// One store's results.
struct StoreResults {
    note: StoreNote,
    rows: Vec<Row>,
    mount: Option<MountRow>,
}

fn run_backend<B: Backend>(
    b: &B,
    cfg: &Config,
    overwrites: u64,
    progress: &mut dyn FnMut(&str),
) -> StoreResults {
    let mut rows = Vec::new();
    for w in [Workload::Stats, Workload::Mixed] {
        progress(&format!("{} / {}", b.id().id(), w.name()));
        let mut row = workload::run(b, w, cfg.updates);
        // A sector's erase count moves in whole steps, so a projection from a short run can be
        // off by a whole cycle. Stores fast enough get a longer run for the projection alone.
        if row.failures == 0 && lifetime_run_fits(row.host_cpu_s, cfg.updates, cfg.lifetime_updates) {
            progress(&format!("{} / {} (lifetime, {} updates)", b.id().id(), w.name(), cfg.lifetime_updates));
            let long = workload::run(b, w, cfg.lifetime_updates);
            if long.failures == 0 {
                row.lifetime_updates = long.lifetime_updates;
                row.lifetime_share = long.lifetime_share;
                row.lifetime_basis = long.lifetime_basis;
                row.lifetime_erases_max = long.erases_max;
            }
        }
        rows.push(row);
    }
    let mount = (cfg.mount_keys > 0).then(|| {
        progress(&format!("{} / mount", b.id().id()));
        workload::mount_cost(b, cfg.mount_keys, overwrites)
    });
    let ram = b.ram();
    StoreResults { note: StoreNote { store: b.id(), setup: b.id().setup(), ram: ram.how }, rows, mount }
}

/// Runs the benchmark; `progress` hears what starts next.
pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Report {
    let overwrites = if !cfg.ops_only && cfg.mount_keys > 0 && cfg.mount_full {
        workload::full_area_overwrites(cfg.mount_keys)
    } else {
        0
    };
    let mut report = Report {
        flash: format!(
            "simulated STM32H7 (flash-sim Portenta geometry): {} bytes = {} sectors of {} KiB, {}-byte \
             program-once words with ECC, 100 us per word program, 1.1 s per sector erase, 1 ns per byte \
             read",
            numbers::thousands(u64::from(flash::SIZE)),
            flash::SECTORS,
            flash::SECTOR / 1024,
            flash::WORD
        ),
        updates: cfg.updates,
        lifetime_updates: cfg.lifetime_updates,
        stores: Vec::new(),
        rows: Vec::new(),
        mount: Vec::new(),
        ops: Vec::new(),
        ops_setup: None,
        ops_configs: Vec::new(),
        footprint: None,
        before: baseline::Before::NotAsked,
        provenance: String::new(),
        host_s: 0.0,
    };
    let workload_stores = if cfg.ops_only { &[][..] } else { &cfg.stores[..] };
    for id in StoreId::ALL.into_iter().chain(StoreId::REFERENCE).filter(|id| workload_stores.contains(id)) {
        let r = match id {
            StoreId::Tdbstore | StoreId::TdbstoreMaint | StoreId::TdbstoreCompact => {
                run_backend(&EngineBackend::new(id), cfg, overwrites, progress)
            }
            StoreId::SsNoCache => run_backend(&SsBackend::uncached(), cfg, overwrites, progress),
            StoreId::SsCache => run_backend(&SsBackend::cached(), cfg, overwrites, progress),
            StoreId::Ekv => run_backend(&EkvBackend { reference: false }, cfg, overwrites, progress),
            StoreId::EkvReference => run_backend(&EkvBackend { reference: true }, cfg, overwrites, progress),
            StoreId::Tickv => run_backend(&TickvBackend, cfg, overwrites, progress),
        };
        report.stores.push(r.note);
        report.rows.extend(r.rows);
        report.mount.extend(r.mount);
    }
    // Rows grouped by workload, stores in table order within each.
    report.rows.sort_by_key(|r| r.workload == Workload::Mixed);

    // Per-operation costs: the capsule's configuration, then each selected engine row's.
    let engine_ids: Vec<StoreId> = [StoreId::Tdbstore, StoreId::TdbstoreMaint, StoreId::TdbstoreCompact]
        .into_iter()
        .filter(|id| cfg.stores.contains(id))
        .collect();
    if cfg.op_rounds > 0 && !engine_ids.is_empty() {
        let configs =
            std::iter::once(EngineBackend::capsule()).chain(engine_ids.into_iter().map(EngineBackend::new));
        for b in configs {
            progress(&format!("{} / per-operation costs", b.label()));
            let (rows, setup) = ops::run(&b, cfg.op_rounds);
            report.ops.extend(rows);
            report.ops_configs.push(ops::OpsConfigNote { config: b.label().to_string(), setup: b.setup() });
            report.ops_setup.get_or_insert(setup);
        }
    }
    report
}
