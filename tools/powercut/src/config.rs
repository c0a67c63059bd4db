//! What a campaign runs on and how hard it tries: flash configurations and budgets.
//!
//! A [`Config`] is a simulated device plus the store's options and buffer sizes. A
//! [`Budget`] picks the configurations, the workloads on each, how long the random sequences
//! are, and how many second cuts (cuts during recovery) to try per first cut. Two budgets
//! are predefined: [`Budget::quick`] (every workload on the small geometries and the fixed
//! ones on the real Portenta units, sampled second cuts: what `cargo test` runs) and
//! [`Budget::full`] (more and longer random sequences, early compaction, every second cut).

use flash_sim::Geometry;
use tdbstore::format::RecordFormat;
use tdbstore::StoreOptions;

use crate::workload::{self, Workload};

/// A simulated device and how the store is opened on it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Short name for reports.
    pub name: &'static str,
    /// The device.
    pub geometry: Geometry,
    /// Store options (record format, early compaction).
    pub options: StoreOptions,
    /// Work buffer length given to every store (small buffers mean more, smaller requests).
    pub work_len: usize,
    /// Index entries given to every store.
    pub index_len: usize,
}

impl Config {
    /// The `g2_small` geometry of the golden vectors: 32 KiB, 8-byte units, 4 KiB sectors.
    pub fn small_p8() -> Config {
        Config {
            name: "p8/4K",
            geometry: Geometry::SMALL,
            options: StoreOptions::default(),
            work_len: 256,
            index_len: 128,
        }
    }

    /// Portenta-like units scaled down for speed: 32-byte flash words, 4 KiB sectors, 32 KiB.
    pub fn scaled_p32() -> Config {
        Config {
            name: "p32/4K",
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
        }
    }

    /// A byte-programmable NOR flash: 1-byte units, 4 KiB sectors, 32 KiB.
    pub fn byte_p1() -> Config {
        Config {
            name: "p1/4K",
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
        }
    }

    /// [`Config::scaled_p32`] with the engine's compact record format.
    pub fn compact_p32() -> Config {
        Config {
            name: "p32/4K-compact",
            options: StoreOptions { record_format: RecordFormat::Compact, ..StoreOptions::default() },
            ..Config::scaled_p32()
        }
    }

    /// [`Config::scaled_p32`] with early compaction by maintenance (`compact_below` = 12 KiB: maintenance compacts once 4 KiB of an area are used).
    pub fn eager_p32() -> Config {
        Config {
            name: "p32/4K-eager",
            options: StoreOptions { compact_below: 12_288, ..StoreOptions::default() },
            ..Config::scaled_p32()
        }
    }

    /// The real STM32H7 units: 32-byte flash words, 128 KiB sectors; 4 sectors (2 areas of
    /// 2 x 128 KiB) instead of the Portenta's 12, which changes nothing but the run time.
    pub fn portenta() -> Config {
        Config {
            name: "portenta-128K",
            geometry: Geometry { size: 4 * 131_072, ..Geometry::PORTENTA },
            options: StoreOptions::default(),
            work_len: 512,
            index_len: 128,
        }
    }

    /// Size of one store area on this device.
    pub fn area_size(&self) -> u32 {
        tdbstore::sim::geometry(&self.geometry).area_size()
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
    /// second cuts per first cut, each followed by one more write. About 1 s in release and
    /// 20 s of CPU in debug.
    pub fn quick() -> Budget {
        let plan = vec![
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
    /// 120 on the Portenta units), every second cut, and a further write after each.
    pub fn full() -> Budget {
        let small = [
            Config::small_p8(),
            Config::scaled_p32(),
            Config::byte_p1(),
            Config::compact_p32(),
            Config::eager_p32(),
        ];
        let seeds: Vec<u64> = (1..=12).collect();
        let mut plan: Vec<(Config, Vec<Workload>)> =
            small.into_iter().map(|c| (c.clone(), workload::all(&c, &seeds, 250))).collect();
        let p = Config::portenta();
        let w = workload::all(&p, &[1, 2, 3], 120);
        plan.push((p, w));
        Budget {
            plan,
            second_cuts: SecondCuts::All,
            deep_second: true,
            jobs: default_jobs(),
            sabotage: None,
            tolerate_known: true,
        }
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
