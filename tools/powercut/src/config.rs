//! What a campaign runs on and how hard it tries: flash configurations and budgets.
//!
//! A [`Config`] is a simulated device plus the store's options and buffer sizes. A
//! [`Budget`] picks the configurations, the workloads on each, how long the random sequences
//! are, and how many second cuts (cuts during recovery) to try per first cut. Two budgets
//! are predefined: [`Budget::quick`] (every workload on the small geometries and the fixed
//! ones on the real Portenta units, a sample of the geometry matrix, sampled second cuts:
//! what `cargo test` runs) and [`Budget::full`] (more and longer random sequences, early
//! compaction, every second cut, and the whole geometry matrix: read units 1..32, program
//! units 1..256, 4 KiB and 128 KiB sectors, small and large areas, both record formats, and
//! sectors no larger than the area head, [`Config::head_spanning`]).

use flash_sim::Geometry;
use tdbstore::format::RecordFormat;
use tdbstore::StoreOptions;

use crate::workload::{self, Workload};

/// A simulated device and how the store is opened on it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Short name for reports.
    pub name: String,
    /// The device.
    pub geometry: Geometry,
    /// Store options (record format, early compaction).
    pub options: StoreOptions,
    /// Work buffer length given to every store (small buffers mean more, smaller requests).
    pub work_len: usize,
    /// Index entries given to every store.
    pub index_len: usize,
    /// Second cuts per first cut here, instead of the budget's (the large matrix
    /// configurations sample them: every cut of every probe would take hours).
    pub second_cuts: Option<SecondCuts>,
}

impl Config {
    /// The `g2_small` geometry of the golden vectors: 32 KiB, 8-byte units, 4 KiB sectors.
    pub fn small_p8() -> Config {
        Config {
            name: "p8/4K".into(),
            geometry: Geometry::SMALL,
            options: StoreOptions::default(),
            work_len: 256,
            index_len: 128,
            second_cuts: None,
        }
    }

    /// Portenta-like units scaled down for speed: 32-byte flash words, 4 KiB sectors, 32 KiB.
    pub fn scaled_p32() -> Config {
        Config {
            name: "p32/4K".into(),
            geometry: Geometry {
                size: 32_768,
                read_size: 1,
                program_size: 32,
                erase_size: 4096,
                erase_value: 0xFF,
            },
            options: StoreOptions::default(),
            work_len: 256,
            index_len: 128,
            second_cuts: None,
        }
    }

    /// A byte-programmable NOR flash: 1-byte units, 4 KiB sectors, 32 KiB.
    pub fn byte_p1() -> Config {
        Config {
            name: "p1/4K".into(),
            geometry: Geometry {
                size: 32_768,
                read_size: 1,
                program_size: 1,
                erase_size: 4096,
                erase_value: 0xFF,
            },
            options: StoreOptions::default(),
            work_len: 256,
            index_len: 128,
            second_cuts: None,
        }
    }

    /// [`Config::scaled_p32`] with the engine's compact record format.
    pub fn compact_p32() -> Config {
        Config {
            name: "p32/4K-compact".into(),
            options: StoreOptions { record_format: RecordFormat::Compact, ..StoreOptions::default() },
            ..Config::scaled_p32()
        }
    }

    /// [`Config::scaled_p32`] with early compaction by maintenance (`compact_below` = 12 KiB: maintenance compacts once 4 KiB of an area are used).
    pub fn eager_p32() -> Config {
        Config {
            name: "p32/4K-eager".into(),
            options: StoreOptions { compact_below: 12_288, ..StoreOptions::default() },
            ..Config::scaled_p32()
        }
    }

    /// The real STM32H7 units: 32-byte flash words, 128 KiB sectors; 4 sectors (2 areas of
    /// 2 x 128 KiB) instead of the Portenta's 12, which changes nothing but the run time.
    pub fn portenta() -> Config {
        Config {
            name: "portenta-128K".into(),
            geometry: Geometry { size: 4 * 131_072, ..Geometry::PORTENTA },
            options: StoreOptions::default(),
            work_len: 512,
            index_len: 128,
            second_cuts: None,
        }
    }

    /// One configuration of the geometry matrix: read unit `read`, program unit `program`,
    /// `sectors` sectors of `erase` bytes (two areas of `sectors / 2` sectors; an odd one is
    /// left unused), records in `format`. Named like `r4p32/128Kx5-compact`.
    pub fn matrix(read: u32, program: u32, erase: u32, sectors: u32, format: RecordFormat) -> Config {
        let fmt = match format {
            RecordFormat::Mbed => "mbed",
            RecordFormat::Compact => "compact",
        };
        let geometry = Geometry {
            size: erase * sectors,
            read_size: read,
            program_size: program,
            erase_size: erase,
            erase_value: 0xFF,
        };
        let sector = if erase >= 1024 { format!("{}K", erase / 1024) } else { format!("{erase}B") };
        Config {
            name: format!("r{read}p{program}/{sector}x{sectors}-{fmt}"),
            geometry,
            options: StoreOptions { record_format: format, ..StoreOptions::default() },
            // Records span several chunks; on 128 KiB sectors (areas of 128 or 256 KiB) a
            // larger buffer keeps a compaction to some hundred requests, each of them cut.
            work_len: tdbstore::Store::min_work_len(&geometry).max(if erase > 4096 { 4096 } else { 256 }),
            index_len: 128,
            second_cuts: (erase > 4096).then_some(SecondCuts::Sample(2)),
        }
    }

    /// The whole geometry matrix: read units 1, 4, 8, 16, 32 (no larger than the program
    /// unit) x program units 1, 8, 32, 256 x 4 KiB and 128 KiB sectors x one-sector areas and
    /// larger ones (4 x 4 KiB or 2 x 128 KiB, with an odd sector left over) x Mbed and
    /// compact records: 112 configurations.
    pub fn all_matrix() -> Vec<Config> {
        let mut out = Vec::new();
        for program in [1u32, 8, 32, 256] {
            for read in [1u32, 4, 8, 16, 32].into_iter().filter(|&r| r <= program) {
                for (erase, sectors) in [(4096u32, 2u32), (4096, 9), (131_072, 2), (131_072, 5)] {
                    for format in [RecordFormat::Mbed, RecordFormat::Compact] {
                        out.push(Config::matrix(read, program, erase, sectors, format));
                    }
                }
            }
        }
        out
    }

    /// Sectors no larger than the area head (reserved slot and master record: 768 bytes with
    /// 256-byte units, 112 with 8-byte ones), so format, compaction and the retirement of an
    /// old head erase several sectors before the head is written; and a head of exactly one
    /// sector (64-byte units, 256-byte sectors), after which the next sector must be erased
    /// too. Mbed serves these (its `reset_area` erases every sector the head overlaps). Named
    /// like `r1p256/256Bx64-mbed`.
    pub fn head_spanning() -> Vec<Config> {
        let mut out = Vec::new();
        for (read, program, erase, sectors) in
            [(1u32, 256u32, 256u32, 64u32), (4, 64, 256, 32), (8, 8, 64, 128)]
        {
            for format in [RecordFormat::Mbed, RecordFormat::Compact] {
                out.push(Config::matrix(read, program, erase, sectors, format));
            }
        }
        out
    }

    /// Size of one store area on this device.
    pub fn area_size(&self) -> u32 {
        self.geometry.area_size()
    }

    /// The record layout the store uses here.
    pub fn layout(&self) -> tdbstore::format::Layout {
        tdbstore::format::Layout::with_format(
            self.geometry.program_size,
            self.area_size(),
            self.options.record_format,
        )
    }
}

/// How many second cuts (cuts during the recovery write) to try after each first cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondCuts {
    /// Every op index of the recovery write, both cut kinds.
    All,
    /// At most this many op indices, evenly spaced and including the first and last.
    Sample(usize),
}

/// A deliberate defect in the campaign itself, to show that its checks can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// The oracle expects a wrong value for the key under operation.
    WrongExpectation,
    /// The flash acknowledges the operation's last program without performing it.
    LostWrite,
    /// The flash programs the operation's first program unit twice.
    DoubleProgram,
}

/// What one campaign covers.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Configurations, each with the workloads to run on it.
    pub plan: Vec<(Config, Vec<Workload>)>,
    /// Second cuts per first cut.
    pub second_cuts: SecondCuts,
    /// After each second cut, also write and remount once more.
    pub deep_second: bool,
    /// Worker threads.
    pub jobs: usize,
    /// A deliberate defect, for the self-tests.
    pub sabotage: Option<Sabotage>,
    /// Count failures explained by a known engine bug ([`crate::campaign::KNOWN_BUGS`])
    /// apart from the violations.
    pub tolerate_known: bool,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Budget {
    /// Every workload on the small geometries (random sequences of 48 steps: two seeds on
    /// 8- and 32-byte units, one on the slower 1-byte units and the compact format), the
    /// fixed workloads but the compaction-heavy `gc-set` on the real Portenta units, up to 6
    /// second cuts per first cut, each followed by one more write; a sample of the
    /// geometry matrix ([`Budget::matrix_sample`]) and the head-spanning configurations
    /// ([`Budget::head_spanning_sample`]).
    pub fn quick() -> Budget {
        let mut plan = vec![
            (Config::small_p8(), workload::all(&Config::small_p8(), &[1, 2], 48)),
            (Config::scaled_p32(), workload::all(&Config::scaled_p32(), &[1, 2], 48)),
            (Config::byte_p1(), workload::all(&Config::byte_p1(), &[1], 48)),
            (Config::compact_p32(), workload::all(&Config::compact_p32(), &[1], 48)),
            (
                Config::portenta(),
                workload::all(&Config::portenta(), &[], 0)
                    .into_iter()
                    .filter(|w| w.name != "gc-set")
                    .collect(),
            ),
        ];
        plan.extend(Budget::matrix_sample());
        plan.extend(Budget::head_spanning_sample());
        Budget {
            plan,
            second_cuts: SecondCuts::Sample(6),
            deep_second: true,
            jobs: default_jobs(),
            sabotage: None,
            tolerate_known: true,
        }
    }

    /// Everything: all workloads on all configurations including the real Portenta units
    /// and early compaction, 12 random sequences of 250 steps per small configuration (3 of
    /// 120 on the Portenta units), every second cut, and a further write after each; then the
    /// whole geometry matrix ([`Budget::full_matrix`]).
    pub fn full() -> Budget {
        let small = [
            Config::small_p8(),
            Config::scaled_p32(),
            Config::byte_p1(),
            Config::compact_p32(),
            Config::eager_p32(),
        ];
        let seeds: Vec<u64> = (1..=12).collect();
        let mut plan: Vec<(Config, Vec<Workload>)> = small
            .into_iter()
            .map(|c| {
                let mut w = workload::all(&c, &seeds, 250);
                w.push(workload::fill_end(&c));
                (c, w)
            })
            .collect();
        let p = Config::portenta();
        let w = workload::all(&p, &[1, 2, 3], 120);
        plan.push((p, w));
        plan.extend(Budget::full_matrix());
        Budget {
            plan,
            second_cuts: SecondCuts::All,
            deep_second: true,
            jobs: default_jobs(),
            sabotage: None,
            tolerate_known: true,
        }
    }

    /// The geometry matrix as the full campaign runs it: every configuration, every
    /// workload that fits, one random sequence of 60 steps.
    pub fn full_matrix() -> Vec<(Config, Vec<Workload>)> {
        Budget::matrix_plan(&[1], 60)
    }

    /// The geometry matrix ([`Config::all_matrix`]): on every configuration, every standard
    /// workload that fits its areas ([`workload::fits`]), with a random sequence of `steps`
    /// steps per seed.
    ///
    /// On 128 KiB sectors every operation that rewrites much of an area is hundreds of cut
    /// points, each followed by mounts that read the whole area; there the matrix runs the
    /// operations on single records and the area-filling one ([`workload::fill_end`]), and
    /// with byte-sized program units (whose programs split at every erased-value byte, so
    /// filling 128 KiB is over a thousand cut points) only `new-key` and `remove`; byte
    /// units fill their areas to the last byte on 4 KiB sectors.
    pub fn matrix_plan(seeds: &[u64], steps: usize) -> Vec<(Config, Vec<Workload>)> {
        const LARGE: &[&str] =
            &["fill-end", "new-key", "overwrite", "remove", "incremental", "reserved-set", "write-once"];
        const BYTES_LARGE: &[&str] = &["new-key", "remove"];
        Config::all_matrix()
            .into_iter()
            .chain(Config::head_spanning())
            .map(|c| {
                let large = c.geometry.erase_size > 4096;
                let keep = if c.geometry.program_size == 1 { BYTES_LARGE } else { LARGE };
                let w = workload::all(&c, if large { &[] } else { seeds }, steps)
                    .into_iter()
                    .chain(std::iter::once(workload::fill_end(&c)))
                    .filter(|w| !large || keep.contains(&w.name.as_str()))
                    .filter(|w| workload::fits(&c, w))
                    .collect();
                (c, w)
            })
            .collect()
    }

    /// A sample of the geometry matrix for the test budget: every (read unit, program unit)
    /// pair once, its sector size, area size and record format taken in turn, with two short
    /// workloads and, on one-sector 4 KiB areas, the one that fills an area to its last byte.
    pub fn matrix_sample() -> Vec<(Config, Vec<Workload>)> {
        let all = Config::all_matrix();
        // all_matrix() lists 8 configurations (2 sector sizes x 2 area sizes x 2 formats)
        // per unit pair; take the i-th of each pair's block, i turning over.
        all.chunks(8)
            .enumerate()
            .map(|(i, block)| {
                let c = block[(i * 3) % 8].clone();
                // Filling an area costs tens of cut points per sector: only one-sector
                // areas of 4 KiB do it here, and not with byte units (whose programs split at
                // every erased-value byte); the model tests fill every configuration.
                let fill = c.geometry.size == 2 * 4096 && c.geometry.program_size > 1;
                let w = workload::all(&c, &[], 0)
                    .into_iter()
                    .filter(|w| ["new-key", "remove"].contains(&w.name.as_str()))
                    .chain(fill.then(|| workload::fill_end(&c)))
                    .filter(|w| workload::fits(&c, w))
                    .collect();
                (c, w)
            })
            .collect()
    }

    /// The head-spanning configurations ([`Config::head_spanning`]) for the test budget, Mbed
    /// records only: the operations that compact (`compact`, `gc-set`, `reserved-set`) or
    /// retire a head (`reset`) besides `new-key`, and the area filled to its last byte.
    pub fn head_spanning_sample() -> Vec<(Config, Vec<Workload>)> {
        Config::head_spanning()
            .into_iter()
            .filter(|c| c.options.record_format == RecordFormat::Mbed)
            .map(|c| {
                let w = workload::all(&c, &[], 0)
                    .into_iter()
                    .filter(|w| {
                        ["new-key", "compact", "gc-set", "reserved-set", "reset"].contains(&w.name.as_str())
                    })
                    .chain(std::iter::once(workload::fill_end(&c)))
                    .filter(|w| workload::fits(&c, w))
                    .collect();
                (c, w)
            })
            .collect()
    }

    /// Adds the workloads that reproduce known engine bugs ([`workload::known_bugs`]) to
    /// every configuration.
    pub fn add_known_bugs(&mut self) {
        for (c, w) in &mut self.plan {
            w.extend(workload::known_bugs(c));
        }
    }

    /// Keeps only the workloads whose name contains `pat`.
    pub fn filter_workloads(&mut self, pat: &str) {
        for (_, w) in &mut self.plan {
            w.retain(|w| w.name.contains(pat));
        }
        self.plan.retain(|(_, w)| !w.is_empty());
    }

    /// Keeps only the configurations whose name contains `pat`.
    pub fn filter_configs(&mut self, pat: &str) {
        self.plan.retain(|(c, _)| c.name.contains(pat));
    }
}
