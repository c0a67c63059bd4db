//! A flash key-value store in Mbed OS's TDBStore format, as a sans-IO engine.
//!
//! The engine never touches flash or user buffers itself. Every operation is a state machine:
//! [`Store::start`] begins it, and each [`Step::Io`] asks the driver for exactly one thing —
//! read, program or erase flash, or copy bytes between the operation's input/output and the
//! engine's work buffer ([`Store::io_buf`]) — after which the driver calls [`Store::resume`]
//! with the result. At [`Step::Done`], [`Store::finish`] gives the operation's result as its
//! own type ([`Output`]: a get's [`Value`], a mount's [`MountInfo`], a write's `()`), so no
//! driver handles an outcome its operation cannot have. The same engine therefore runs under
//! a Tock capsule (driven from interrupt callbacks), under the blocking
//! [`blocking::BlockingStore`] (host tools, tests, benchmarks) and under a power-cut harness
//! that stops it after any request.
//!
//! It is `no_std` with no allocation: the work buffer and the RAM index (8 bytes per key)
//! come from the caller. The on-flash format is Mbed's (see [`format`]); images written by
//! Mbed mount here, and records written here mount in Mbed. Unlike Mbed, the engine never
//! programs a flash unit twice between erases, survives a power cut at any instant
//! (a torn tail is compacted away rather than written over), erases ahead of need, and does
//! not repeat Mbed's known defects.
//!
//! # Cargo features
//!
//! - `incremental`, `iteration`, `reserved-data` (default): Mbed's incremental set
//!   ([`Op::SetStart`] and the ops after it), key iteration ([`Op::Next`], [`Cursor`]) and the
//!   write-once reserved data ([`Op::ReservedSet`], [`Op::ReservedGet`]). A build that only
//!   gets, sets and removes (the Tock capsule, which Tock's KV interface limits to that) turns
//!   them off and does not carry their code: about 2.8 KB of flash on Cortex-M7. Without
//!   `reserved-data` the engine still reads reserved data that is there and carries it through
//!   every compaction; it only cannot set or return it.
//! - `blocking`: [`blocking::BlockingStore`], a driver over `embedded-storage`'s NOR-flash traits.
//! - `sim`: glue to the `flash-sim` simulator (implies `blocking`).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code, missing_docs)]

pub mod app_key;
#[cfg(feature = "blocking")]
pub mod blocking;
pub mod crc;
mod engine;
pub mod format;
mod geometry;
mod index;
#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "reserved-data")]
pub use engine::ReservedData;
#[cfg(feature = "iteration")]
pub use engine::{Cursor, NextKey};
pub use engine::{
    Error, IoError, IoKind, KeyInfo, MountInfo, Op, Output, Request, SetWhen, Step, Store, StoreInfo,
    StoreOptions, Task, Value,
};
pub use format::{KeyError, REQUIRE_CONFIDENTIALITY, REQUIRE_REPLAY_PROTECTION, WRITE_ONCE};
pub use geometry::{check_geometry, Geometry, GeometryError, UnitError, MAX_AREA_SIZE, MAX_PROGRAM_SIZE};
pub use index::IndexEntry;
