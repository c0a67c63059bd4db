//! An exhaustive power-cut campaign for the TDBStore engine on the simulated STM32H7 flash.
//!
//! For every workload (a new key, an overwrite, a removal, an incremental set, a set that
//! compacts, reserved data, write-once keys, an explicit compaction, a reset, maintenance,
//! an area filled to its last byte, seeded random sequences) on every configuration (8-, 32-
//! and 1-byte program units, the compact record format, early compaction, the real 32 B /
//! 128 KiB Portenta units, and a geometry matrix of read, program and erase units), the
//! campaign cuts power before and half-way through each mutating flash request of the
//! operation, remounts with fresh buffers and checks that the store mounts, that
//! acknowledged writes are durable, that the interrupted operation is all-or-nothing, that
//! nothing else changed, that the store accepts and keeps the next write, that no flash
//! unit was ever programmed twice, that a second cut during that recovery write is
//! survived too, and that an independent Mbed reader (`mbed-reader`) sees in every image
//! what the engine sees. See [`campaign`] for the exact checks.
//!
//! ```no_run
//! let report = tdbstore_powercut::campaign::run(&tdbstore_powercut::config::Budget::quick(), |_| {});
//! print!("{}", report.render());
//! assert_eq!(report.violations(), 0);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod campaign;
pub mod config;
pub mod flash;
pub mod model;
pub mod workload;

pub use campaign::{run, CampaignReport, Violation, WorkloadReport};
pub use config::{Budget, Config, Sabotage, SecondCuts};
