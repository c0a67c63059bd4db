//! The operations the campaign cuts power in, each with the state it starts from.
//!
//! A [`Workload`] is a setup (run once on a fresh store; its image is the snapshot every cut
//! point starts from), an optional warm-up (run uncut after mounting, so that RAM state such
//! as watermarks is what the operation would meet in real use) and the operation itself: a
//! short list of [`Step`]s whose mutating flash requests are counted and cut one by one.
//! [`all`] builds the standard list for a configuration; values and sequences are derived
//! from fixed seeds, so every run of the campaign is the same.

use flash_sim::SplitMix64;
use tdbstore::{REQUIRE_CONFIDENTIALITY, REQUIRE_REPLAY_PROTECTION, WRITE_ONCE};

use crate::config::Config;
use crate::model::{State, Step};

/// One operation under test and the state it starts from.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Name for reports and filters.
    pub name: String,
    /// Steps that build the pre-state on a freshly formatted store.
    pub setup: Vec<Step>,
    /// Steps run uncut after mounting, before counting starts.
    pub warmup: Vec<Step>,
    /// The steps whose flash requests are cut.
    pub op: Vec<Step>,
    /// The uncut operation must compact (it exists to test compaction).
    pub expect_compaction: bool,
    /// The device starts blank and the cut operation begins with its very first mount
    /// (`op[0]` is then a [`Step::Remount`] standing for it); `setup` must be empty.
    pub cut_mount: bool,
}

/// The campaign's deterministic randomness: SplitMix64 with the campaign's own salt, so its
/// streams differ from the benchmark's for the same seed.
fn rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ 0x7064_6362_7573_7421)
}

/// `len` pseudo-random bytes from `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = rng(seed);
    (0..len).map(|_| r.next_u64() as u8).collect()
}

fn set(key: &str, len: usize, seed: u64, flags: u32) -> Step {
    Step::Set { key: key.as_bytes().to_vec(), value: pattern(seed, len), flags }
}

/// The common pre-state: keys of several sizes (one spanning several program units and
/// work-buffer chunks), every user flag, a removed key and an overwritten one.
fn base(reserved: bool) -> Vec<Step> {
    let mut s = vec![
        set("base-0", 0, 10, 0),
        set("base-1", 33, 11, 0),
        set("base-2", 300, 12, REQUIRE_CONFIDENTIALITY),
        set("base-3", 5, 13, REQUIRE_REPLAY_PROTECTION),
        set("base-once", 17, 14, WRITE_ONCE),
        set("base-gone", 40, 15, 0),
        set("base-1", 61, 16, 0),
        Step::Remove { key: b"base-gone".to_vec() },
        set("base-4", 9, 17, REQUIRE_CONFIDENTIALITY | REQUIRE_REPLAY_PROTECTION),
    ];
    if reserved {
        s.insert(3, Step::Reserved(pattern(18, 16)));
    }
    s
}

/// Bytes the log holds after `steps` on an empty store, if none of them compacts.
fn log_bytes(cfg: &Config, steps: &[Step]) -> u32 {
    let lay = cfg.layout();
    let rec = |k: &[u8], n: usize| lay.record_size(k.len() as u32, n as u32).unwrap_or(u32::MAX);
    let mut free = lay.first_record();
    for s in steps {
        free += match s {
            Step::Set { key, value, .. } | Step::Incremental { key, value, .. } => rec(key, value.len()),
            Step::Remove { key } => rec(key, 0),
            _ => 0,
        };
    }
    free
}

/// Bytes of the live records after `steps`.
fn live_bytes(cfg: &Config, steps: &[Step]) -> u32 {
    let lay = cfg.layout();
    let mut model = State::default();
    for s in steps {
        if let Ok(n) = s.predict(&model) {
            model = n;
        }
    }
    model.keys.iter().map(|(k, e)| lay.record_size(k.len() as u32, e.value.len() as u32).unwrap_or(0)).sum()
}

/// The base state with overwrites of one key until three quarters of the area are used, so
/// that after a compaction every sector of the old area is dirty.
fn churned(cfg: &Config) -> Vec<Step> {
    let mut setup = base(true);
    // A compaction first, so the standby area holds a stale generation for maintenance to
    // erase (setting reserved data does not compact).
    setup.push(Step::Compact);
    let len = (cfg.area_size() as usize / 64).max(64);
    let mut i = 0;
    while log_bytes(cfg, &setup) < cfg.area_size() / 4 * 3 {
        setup.push(set("churn", len, 400 + i, 0));
        i += 1;
    }
    setup
}

/// Many live keys, then overwrites until the next record no longer fits: the operation's
/// set must compact first.
fn gc(cfg: &Config) -> Workload {
    let mut setup = base(true);
    let lay = cfg.layout();
    let area = cfg.area_size();
    let churn_len = (area as usize / 256).max(64);
    // Larger than a churn record, so it cannot fit where the last churn record did not.
    let op = set("gc-03", churn_len + 136, 200, REQUIRE_CONFIDENTIALITY);
    // Up to 24 more keys, as many as leave room for the operation, a churn record and the
    // campaign's two probe writes after recovery (small areas of large units hold fewer).
    let rec = |k: &[u8], n: usize| lay.record_size(k.len() as u32, n as u32).unwrap_or(u32::MAX);
    let reserve = rec(b"gc-03", churn_len + 136)
        + rec(b"gc-churn", churn_len)
        + rec(b"zz-probe", 100)
        + rec(b"zz-probe-2", 77);
    for i in 0..24u64 {
        let next = set(&format!("gc-{i:02}"), 20 + (i as usize * 37) % 100, 100 + i, 0);
        let mut with = setup.clone();
        with.push(next.clone());
        if live_bytes(cfg, &with).saturating_add(reserve) > lay.capacity() {
            break;
        }
        setup.push(next);
    }
    let mut i = 0;
    loop {
        let churn = set("gc-churn", churn_len, 300 + i, 0);
        if log_bytes(cfg, &setup) + lay.record_size(8, churn_len as u32).unwrap_or(u32::MAX) > lay.log_limit()
        {
            break;
        }
        setup.push(churn);
        i += 1;
    }
    Workload {
        name: "gc-set".into(),
        setup,
        warmup: vec![],
        op: vec![op],
        expect_compaction: true,
        cut_mount: false,
    }
}

/// A seeded random sequence of every kind of step, kept well below half an area of live
/// data so compaction always has room.
pub fn random(cfg: &Config, seed: u64, steps: usize) -> Workload {
    let setup = base(false);
    let mut model = State::default();
    for s in &setup {
        if let Ok(n) = s.predict(&model) {
            model = n;
        }
    }
    let lay = cfg.layout();
    let budget = cfg.area_size() / 2;
    let live = |m: &State| -> u32 {
        lay.first_record()
            + m.keys
                .iter()
                .map(|(k, e)| lay.record_size(k.len() as u32, e.value.len() as u32).unwrap_or(0))
                .sum::<u32>()
    };
    let mut r = rng(seed);
    let max_len = (cfg.area_size() as u64 / 24).min(700);
    let mut op = Vec::new();
    let names: Vec<String> = (0..10).map(|i| format!("rnd-{i}")).collect();
    while op.len() < steps {
        let key = names[r.below(names.len() as u64) as usize].as_bytes().to_vec();
        let len = if r.below(4) == 0 { r.below(max_len + 1) } else { r.below(80) } as usize;
        let flags = match r.below(20) {
            0 => WRITE_ONCE,
            1 | 2 => REQUIRE_CONFIDENTIALITY,
            3 | 4 => REQUIRE_REPLAY_PROTECTION,
            5 => REQUIRE_CONFIDENTIALITY | REQUIRE_REPLAY_PROTECTION,
            _ => 0,
        };
        let value = pattern(r.next_u64(), len);
        let step = match r.below(100) {
            0..=39 => Step::Set { key, value, flags },
            40..=54 => Step::Remove { key },
            55..=64 => {
                let mut chunks = Vec::new();
                let mut left = len;
                while left > 0 {
                    let c = (1 + r.below(left as u64) as usize).min(left);
                    chunks.push(c);
                    left -= c;
                }
                Step::Incremental { key, flags, value, chunks }
            }
            65..=69 => Step::Remount,
            70..=74 => {
                let declared = len as u32 + 1 + r.below(100) as u32;
                let abort = r.below(2) == 0;
                let step = Step::Abandon { key, flags, len: declared, data: value, abort };
                if step.predict(&model).is_ok() && !abort {
                    // The open set blocks everything but a mount.
                    op.push(step);
                    Step::Remount
                } else {
                    step
                }
            }
            75..=82 => Step::Maintain,
            83..=86 => Step::MaintainAll,
            87..=92 => Step::Compact,
            93..=95 => Step::Reset,
            _ if model.reserved.is_none() => Step::Reserved(pattern(r.next_u64(), 1 + r.below(64) as usize)),
            _ => Step::Compact,
        };
        // Write-once keys accumulate; keep at most two, and the live data within budget.
        let once_keys = model.keys.values().filter(|e| e.flags & WRITE_ONCE != 0).count();
        if matches!(&step, Step::Set { flags, .. } | Step::Incremental { flags, .. } if flags & WRITE_ONCE != 0)
            && once_keys >= 2
        {
            continue;
        }
        if let Ok(next) = step.predict(&model) {
            if live(&next) > budget {
                continue;
            }
            model = next;
        }
        op.push(step);
    }
    Workload {
        name: format!("random-s{seed}"),
        setup,
        warmup: vec![],
        op,
        expect_compaction: false,
        cut_mount: false,
    }
}

/// Fills an area to its last usable byte. A large key takes most of the area's capacity and
/// a small one is churned until the log is close to the log limit (`Layout::log_limit`: the
/// area end in compact format; in Mbed format one program unit and one master record short
/// of it, so Mbed reads every record back and its own collection fits); then a set whose record ends exactly at the limit; then an
/// overwrite sized so that, after the compaction it needs, its record again ends exactly at
/// the limit of the new area. (The large key keeps the two operations short: the churned
/// bytes, not the whole area, are what is rewritten.)
pub fn fill_end(cfg: &Config) -> Workload {
    let w = fill_end_churning(cfg, None);
    if fits(cfg, &w) {
        return w;
    }
    // Small areas of large units (one 4 KiB sector, 256-byte units, in Mbed format, which
    // keeps room for Mbed's own master record copy) hold five records: churn records of
    // the smallest size then.
    fill_end_churning(cfg, Some(cfg.layout().record_size(8, 1).unwrap_or(0)))
}

/// [`fill_end`] with churned records of `churn_record` bytes, or sized from the spare room.
fn fill_end_churning(cfg: &Config, churn_record: Option<u32>) -> Workload {
    let lay = cfg.layout();
    let limit = lay.log_limit();
    let body = lay.body_offset;
    let rec = |k: &str, n: u32| lay.record_size(k.len() as u32, n).unwrap_or(u32::MAX);
    let mut setup =
        vec![set("fe-a", 10, 60, 0), Step::Reserved(pattern(61, 16)), set("fe-b", 40, 62, WRITE_ONCE)];
    // Room for at least two churned records and the edge record, so the final overwrite
    // has a record's worth of garbage to reclaim (in small areas of large units a record is
    // a sizeable share of the area).
    let min_rec = rec("fe-churn", 1).max(rec("fe-edge", 1));
    let spare = (lay.capacity() / 4).max(4 * min_rec);
    let big = lay.capacity().saturating_sub(spare + rec("fe-a", 10) + rec("fe-b", 40) + lay.program_size);
    if big >= rec("fe-big", 0) {
        setup.push(set("fe-big", big.saturating_sub(body + 6) as usize, 65, 0));
    }
    let churn_len = match churn_record {
        // The longest value of "fe-churn" (8 bytes) in a record of that size.
        Some(r) => r.saturating_sub(body + 8).max(1) as usize,
        None => (spare / 5).max(1) as usize,
    };
    let mut i = 0;
    loop {
        let mut next = setup.clone();
        next.push(set("fe-churn", churn_len, 500 + i, 0));
        if log_bytes(cfg, &next) + body + 7 > limit {
            break;
        }
        setup = next;
        i += 1;
    }
    let free = log_bytes(cfg, &setup);
    let edge_len = limit.saturating_sub(free + body + 7) as usize;
    let op1 = set("fe-edge", edge_len, 63, REQUIRE_CONFIDENTIALITY);
    // Live records after op1, each once: the compaction copies them all, then the overwrite.
    let mut model = State::default();
    for s in setup.iter().chain(std::iter::once(&op1)) {
        if let Ok(n) = s.predict(&model) {
            model = n;
        }
    }
    let live: u32 = model
        .keys
        .iter()
        .map(|(k, e)| lay.record_size(k.len() as u32, e.value.len() as u32).unwrap_or(0))
        .sum();
    let size = limit.saturating_sub(lay.first_record() + live);
    let op2 = set("fe-churn", size.saturating_sub(body + 8) as usize, 64, 0);
    Workload {
        name: "fill-end".into(),
        setup,
        warmup: vec![],
        op: vec![op1, op2],
        expect_compaction: true,
        cut_mount: false,
    }
}

/// Whether `wl` fits `cfg`'s areas: before every step that writes a record, the live
/// records plus that record stay within the area's capacity (`Layout::capacity`), so the
/// write fits, after a compaction if need be (the engine's own condition; the oracle never
/// predicts `Full`). Large program units in one-sector areas leave room for only a few
/// records; the campaign runs there only the workloads that fit.
pub fn fits(cfg: &Config, wl: &Workload) -> bool {
    let lay = cfg.layout();
    let rec = |k: &[u8], n: usize| lay.record_size(k.len() as u32, n as u32).unwrap_or(u32::MAX) as u64;
    let mut model = State::default();
    for s in wl.setup.iter().chain(&wl.warmup).chain(&wl.op) {
        let size = match s {
            Step::Set { key, value, .. } | Step::Incremental { key, value, .. } => rec(key, value.len()),
            Step::Abandon { key, len, .. } => rec(key, *len as usize),
            Step::Remove { key } => rec(key, 0),
            _ => 0,
        };
        let live: u64 = model.keys.iter().map(|(k, e)| rec(k, e.value.len())).sum();
        if live + size > lay.capacity() as u64 {
            return false;
        }
        if let Ok(n) = s.predict(&model) {
            model = n;
        }
    }
    true
}

/// The standard workloads for `cfg`, with one random sequence of `random_steps` steps per
/// seed in `seeds`.
pub fn all(cfg: &Config, seeds: &[u64], random_steps: usize) -> Vec<Workload> {
    let one = |name: &str, setup: Vec<Step>, op: Vec<Step>| Workload {
        name: name.into(),
        setup,
        warmup: vec![],
        op,
        expect_compaction: false,
        cut_mount: false,
    };
    let mut v = vec![
        one("new-key", base(true), vec![set("new-key", 300, 20, REQUIRE_REPLAY_PROTECTION)]),
        one("overwrite", base(true), vec![set("base-2", 180, 21, REQUIRE_REPLAY_PROTECTION)]),
        one("remove", base(true), vec![Step::Remove { key: b"base-3".to_vec() }]),
        one(
            "incremental",
            base(true),
            vec![Step::Incremental {
                key: b"base-1".to_vec(),
                flags: REQUIRE_CONFIDENTIALITY,
                value: pattern(22, 700),
                chunks: vec![1, 7, 100, 300, 292],
            }],
        ),
        gc(cfg),
        one("reserved-set", base(false), vec![Step::Reserved(pattern(23, 40))]),
        one(
            "write-once",
            base(true),
            vec![
                set("once-new", 50, 24, WRITE_ONCE),
                set("once-new", 20, 25, 0),
                Step::Remove { key: b"once-new".to_vec() },
                set("base-once", 20, 26, 0),
            ],
        ),
        Workload { expect_compaction: true, ..one("compact", base(true), vec![Step::Compact]) },
        one("reset", base(true), vec![Step::Reset]),
        Workload { warmup: vec![Step::Compact], ..one("maintain", churned(cfg), vec![Step::MaintainAll]) },
        // Maintenance on a log three quarters full: standby checks and pre-erases, and with
        // `compact_below` an early compaction. The extra `maintain` is needed because
        // `maintain_all` stops before the early compaction (engine bug `maintain-more`,
        // tests/engine_bugs.rs).
        Workload {
            expect_compaction: cfg.options.compact_below > 0,
            ..one("maintain-full", churned(cfg), vec![Step::MaintainAll, Step::Maintain])
        },
    ];
    for &s in seeds {
        v.push(random(cfg, s, random_steps));
    }
    v
}

/// Workloads that reproduce engine bugs found by this campaign (see `tests/engine_bugs.rs`).
/// They fail until the engine is fixed, so the standard budgets leave them out.
pub fn known_bugs(cfg: &Config) -> Vec<Workload> {
    let lay = cfg.layout();
    let es = cfg.geometry.erase_size;
    let first = lay.first_record();
    let body = lay.body_offset;
    let one = |name: &str, setup: Vec<Step>, op: Vec<Step>| Workload {
        name: name.into(),
        setup,
        warmup: vec![],
        op,
        expect_compaction: false,
        cut_mount: false,
    };
    // A record that exactly fills the rest of the first sector.
    let fill_len = |key: &str| (es - first - body - key.len() as u32) as usize;
    // Bug: an earlier generation's record that starts exactly at a sector boundary comes back
    // when the log reaches that boundary again (the sector was never erased).
    let boundary = one(
        "sector-boundary",
        vec![set("stale-a", fill_len("stale-a"), 40, 0), set("stale-b", 10, 41, 0), Step::Reset, Step::Reset],
        vec![set("fresh-a", fill_len("fresh-a"), 42, 0)],
    );
    // Bug: units programmed with 0xFF look erased; a sector holding only such units is
    // reused without an erase, and programmed twice.
    let mut spill = vec![0x11u8; (es + 64 - first - body - 1) as usize];
    let n = spill.len();
    spill[n - 200..].fill(0xFF);
    let ff_spill = one(
        "ff-spill",
        vec![Step::Set { key: b"x".to_vec(), value: spill, flags: 0 }, Step::Compact, set("y", 300, 43, 0)],
        vec![Step::Compact],
    );
    // The same after a power cut: a torn record whose programmed units are all 0xFF (a
    // compact-format record with an 0xFF value, or any record with an 0xFF key and value)
    // reads as blank, and the next write programs over it.
    let ff_value = one(
        "ff-value",
        base(true),
        vec![Step::Set { key: vec![0xFF, 0xFF], value: vec![0xFF; 300], flags: 0 }],
    );
    // Bugs: a format cut after erasing the active area's head and before the standby's
    // mounts the standby's older generation; one cut between the master record's two head
    // programs (program units under 24 bytes) leaves a region that mounts as Foreign. Two
    // compactions leave area 0 active and an older generation in area 1.
    let mut fmt_setup = base(false);
    fmt_setup.extend([Step::Compact, set("base-1", 44, 45, 0), Step::Compact, set("base-2", 46, 47, 0)]);
    let format = one("format", fmt_setup, vec![Step::Format { full: false }]);
    // The same master-record write, in the first mount of a blank device.
    let first_mount = Workload {
        cut_mount: true,
        ..one("first-mount", vec![], vec![Step::Remount, set("first", 20, 48, 0)])
    };
    vec![boundary, ff_spill, ff_value, format, first_mount]
}
