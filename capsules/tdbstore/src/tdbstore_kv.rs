// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! TDBStore as a Tock key-value store: `hil::kv::KV` driven from NOR-flash callbacks.
//!
//! ```text
//! +-------------------------------------------------+
//! | kv_driver -> virtual_kv -> kv_store_permissions | (upstream)
//! +-------------------------------------------------+
//!
//!    hil::kv::KV
//!
//! +-------------------------------------------------+
//! | TdbStoreKv (this file)                          |
//! |   tdbstore::Store (sans-IO engine)              |
//! +-------------------------------------------------+
//!
//!    nor_flash_hil::NorFlash
//!
//! +-------------------------------------------------+
//! | chip NOR-flash driver (STM32H7, QEMU CFI, ...)  |
//! +-------------------------------------------------+
//! ```
//!
//! The engine never touches flash: each step asks for one flash read, program or erase, or
//! for a copy between its work buffer and the caller's value. This capsule performs the
//! flash requests through the split-phase NOR-flash HIL, lending the engine's work buffer to
//! the driver ([`tdbstore::Store::lend`]: a window onto the request's bytes, so there is no
//! second buffer and no copy), and resumes the engine from the completion callbacks; copies
//! to and from the value buffer are done on the spot.
//!
//! The capsule keeps one piece of operation state, the client's operation (as upstream's
//! `KVStorePermissions` does), and a board request not yet started. What the engine runs,
//! what it waits for and whether background work is due, it asks the engine
//! ([`tdbstore::Store::task`], [`tdbstore::Store::pending`],
//! [`tdbstore::Store::maintenance_due`]).
//!
//! # Scheduling
//!
//! - One user operation at a time: a second one while the first is pending gets `BUSY`.
//! - Mount happens when the board calls [`TdbStoreKv::mount`] (from a deferred call, so no
//!   flash access happens during board set-up) or, failing that, before the first user
//!   operation. A region that is neither a TDBStore nor blank is left untouched: mount fails
//!   with [`tdbstore::Error::Foreign`], one `debug!` line says so, and every operation fails
//!   with `FAIL` until the board calls [`TdbStoreKv::format`].
//! - When no user operation is waiting, the capsule runs the engine's maintenance
//!   ([`tdbstore::Op::Maintain`]: erase the standby area and the next sector ahead of need,
//!   compact a torn tail, or compact an almost full area early if the options say so), one
//!   step per deferred call, until the engine says there is no more. A user operation
//!   arriving during a maintenance step waits for that one step, then runs.
//! - If a compaction fails, the engine drops its RAM index; the next operation mounts
//!   again first.
//! - Completions never happen inside a call (TRD3): an operation that finishes without a
//!   flash callback (a key not in the RAM index, an invalid key) completes from a deferred
//!   call.
//!
//! # Return values
//!
//! Synchronous (the buffers come back at once):
//! - `BUSY`: a user operation is already pending.
//! - `FAIL`: the store is unusable (mount failed, or the engine could not be configured).
//!   `garbage_collect` reports this in its callback instead, because upstream
//!   `KVStorePermissions::garbage_collect` does not clear its own operation when the call
//!   below it fails synchronously, and would answer `BUSY` forever after.
//! - `SIZE` from `set`, `add` and `update`: the key has no stored form (see *Keys*). The HIL
//!   lists this code for these calls. Under upstream's `KVStorePermissions` an app sees it
//!   at the call for `add`, in the callback for `set` (after the header read found no such
//!   key), and `NOSUPPORT` (no such key) for `update`.
//!
//! Callbacks: see [`error_code`] for the full table. In short:
//! - `get_complete`: `Ok` with the value buffer's active range set to exactly the value;
//!   `SIZE` when the value is longer than the buffer (the buffer holds its first bytes);
//!   `NOSUPPORT` no such key (a key with no stored form is never found); `FAIL` flash or
//!   store error.
//! - `set_complete`, `add_complete`, `update_complete`: `Ok`; `NOSUPPORT` (`add`: the key
//!   exists; `update`: it does not; any: the key is write-once); `NOMEM` store or RAM index
//!   full, even after compaction; `SIZE` a value that can never fit; `FAIL`.
//! - `delete_complete`: `Ok`; `NOSUPPORT` no such key (or write-once); `FAIL`.
//! - `garbage_collection_complete`: `Ok`; `FAIL` (or `NOMEM` if compaction finds no room).
//!
//! Values are stored exactly as given (the active range of the value buffer). Upstream's
//! `KVStorePermissions` keeps its 9-byte permission header inside that value.
//!
//! # Keys
//!
//! Any bytes: the key an app or kernel client passes is mapped by [`tdbstore::app_key`]
//! onto a TDBStore key. A valid Mbed key not starting with `~` is stored unchanged (`stats`
//! stays `stats`, readable by Mbed OS); any other key (empty, with NUL, a space or another
//! of `` */?:;"|<>\``, `"TDBS"`, starting with `~`, or longer than 127 bytes) is stored as
//! `~` and its unpadded base64url. Every key of up to 94 bytes has a stored form, so every
//! key upstream's syscall driver passes (at most 64 bytes) works; a longer one that needs
//! escaping, or a valid one longer than 127 bytes, has none: writes answer `SIZE` at once,
//! lookups find nothing. The key buffer goes back to the client exactly as it came; the
//! stored form lives in the capsule (128 bytes).
//!
//! # Errors through upstream's layers
//!
//! Upstream's `KVStorePermissions` reads a key's header before a `set`, `update` or
//! `delete`, and turns any error of that read other than `SIZE` into `NOSUPPORT` (for
//! `set`, only `NOSUPPORT` means "create it"); its `get` turns every error but `SIZE` into
//! `NOSUPPORT` too. So a flash error during that read reaches the app as `NOSUPPORT`, not
//! `FAIL`. This capsule therefore reports everything it can know without flash at the call
//! itself, where upstream passes codes through: `BUSY`, `FAIL` for an unusable store, `SIZE`
//! for a key with no stored form. Only errors that need the flash to be discovered arrive
//! in callbacks, and keys are never refused there (the `INVAL` upstream turned into
//! `NOSUPPORT` before the key mapping existed).
//!
//! Upstream's syscall driver, `KVStoreDriver`, has defects of its own (a command that fails
//! at the call stays pending in the app's grant and is retried later; an app that dies during
//! a `get` takes the driver's value buffer with it and wedges the store for every app): the
//! boards use this crate's [`crate::kv_syscall::KvSyscallDriver`] instead, with the same ABI.
//!
//! # Garbage collection
//!
//! `garbage_collect` (driver command 6) compacts the store into its standby area: live
//! records are copied, dead ones (overwritten or deleted values) are left behind, the space
//! they took is free again, and the old area is erased in idle time. The upcall carries only
//! a status (`Ok`, or `FAIL`/`NOMEM`); upstream's driver has no slot for how many bytes it
//! freed. An app never needs it: a `set` that finds the area full of dead records compacts
//! first, so writes fail with `NOMEM` only when the live data does not fit; a test that
//! writes until `NOMEM` and expects garbage collection to make room will find none to make.

use core::cell::Cell;

use kernel::debug;
use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::hil::kv::{KVClient, KV};
use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{NorFlash, NorFlashClient};
use tdbstore::app_key::{self, TooLong};
use tdbstore::{
    Error, GeometryError, IoError, KeyError, MountInfo, Op, Output, Request, SetWhen, Step, Store, StoreInfo,
    Task, Value,
};

/// Which family of KV calls an engine error is reported to; the HIL gives them different
/// codes for the same cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `get`, `delete`, `garbage_collect`.
    Lookup,
    /// `set`, `add`, `update`.
    Write,
}

/// The one mapping from engine errors to Tock error codes.
///
/// | engine `Error` | `get`, `delete`, `garbage_collect` | `set`, `add`, `update` | why |
/// |---|---|---|---|
/// | `NotFound` | `NOSUPPORT` | `NOSUPPORT` | no such key (HIL: "key could not be found") |
/// | `WriteProtected` | `NOSUPPORT` | `NOSUPPORT` | a write-once key: no permission to change it |
/// | `Exists` | — | `NOSUPPORT` | `add` of a key that is there (the engine's `SetWhen::Absent`) |
/// | `Full`, `IndexFull` | `NOMEM` | `NOMEM` | no room in the area or the RAM index, even after compaction |
/// | `InvalidKey(TooLong)` | `INVAL` | `SIZE` | HIL: set-type calls say `SIZE` for a key too long; for `get`, `SIZE` means "value truncated", so a bad key there is `INVAL` |
/// | `ValueTooLarge` | `INVAL` | `SIZE` | a value that can never fit in an area (HIL: `SIZE`) |
/// | other `InvalidKey`, `InvalidFlags` | `INVAL` | `INVAL` | not expected: every key is mapped to a valid one first ([`tdbstore::app_key`]) |
/// | `Busy` | `BUSY` | `BUSY` | the engine is running something else (not expected: the capsule serializes) |
/// | `Foreign`, `NotMounted`, `Corrupt`, `SizeMismatch`, `Io(..)` | `FAIL` | `FAIL` | region unusable, a damaged record, or a flash error |
/// | `Internal` | `FAIL` | `FAIL` | a driver broke the HIL's contract (a callback for another request, a buffer not the one lent), or an engine bug; the engine mounts again before the next operation |
///
/// A key with no stored form never reaches the engine: writes are refused with `SIZE` at
/// the call, lookups complete with `NOSUPPORT` (see the module docs, *Keys*).
pub fn error_code(e: Error, access: Access) -> ErrorCode {
    match (e, access) {
        (Error::NotFound | Error::WriteProtected | Error::Exists, _) => ErrorCode::NOSUPPORT,
        (Error::Full | Error::IndexFull, _) => ErrorCode::NOMEM,
        (Error::InvalidKey(KeyError::TooLong) | Error::ValueTooLarge, Access::Write) => ErrorCode::SIZE,
        (Error::InvalidKey(_) | Error::ValueTooLarge | Error::InvalidFlags, _) => ErrorCode::INVAL,
        (Error::Busy, _) => ErrorCode::BUSY,
        (
            Error::Foreign
            | Error::NotMounted
            | Error::Corrupt
            | Error::SizeMismatch
            | Error::Io(..)
            | Error::Internal,
            _,
        ) => ErrorCode::FAIL,
    }
}

/// The flash operation a callback reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlashOp {
    Read,
    Program,
    Erase,
}

impl FlashOp {
    /// Whether `req` is the request this callback completes.
    fn completes(self, req: Option<Request>) -> bool {
        matches!(
            (self, req),
            (FlashOp::Read, Some(Request::Read { .. }))
                | (FlashOp::Program, Some(Request::Program { .. }))
                | (FlashOp::Erase, Some(Request::Erase { .. }))
        )
    }
}

/// What a NOR-flash driver's error means to the engine: an uncorrectable read (`FAIL` on a
/// read, the HIL's ECC case) makes the engine treat the unit as unreadable; anything else
/// is a plain failure.
fn io_error(op: FlashOp, e: ErrorCode) -> IoError {
    match (op, e) {
        (FlashOp::Read, ErrorCode::FAIL) => IoError::Ecc,
        _ => IoError::Other,
    }
}

/// A client's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserOp {
    Get,
    Set,
    Add,
    Update,
    Delete,
    GarbageCollect,
}

impl UserOp {
    fn access(self) -> Access {
        match self {
            UserOp::Set | UserOp::Add | UserOp::Update => Access::Write,
            UserOp::Get | UserOp::Delete | UserOp::GarbageCollect => Access::Lookup,
        }
    }
}

/// The client's operation, from the call that accepted it to its callback (at most one).
///
/// Its buffers wait in `key` and `value`. Whether the engine is running it, and what the
/// engine waits for, the engine itself says ([`Store::task`], [`Store::pending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    /// Accepted; waiting for the engine (a mount first, or a maintenance step to end), or
    /// running on it.
    Accepted(UserOp),
    /// Finished inside the client's call; its callback comes from the deferred call (TRD3).
    Finished(UserOp, Result<(), ErrorCode>),
}

/// A request from the board, run before any user operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admin {
    Mount,
    Format,
}

/// Whether the store is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Not mounted yet, or the engine asked to be mounted again (after a failed compaction);
    /// the next operation mounts first.
    Unmounted,
    /// Mounted: operations run.
    Mounted,
    /// Mount (or format) failed; operations fail with `FAIL` until [`TdbStoreKv::format`]
    /// (or a successful [`TdbStoreKv::mount`]). `Foreign` means the region holds something
    /// else and was left untouched.
    Failed(Error),
    /// The engine could not be built over this flash (geometry or buffer sizes); nothing
    /// ever runs.
    Unconfigured(GeometryError),
}

/// The TDBStore key-value capsule. See the module docs.
pub struct TdbStoreKv<'a, F: NorFlash<'a>> {
    flash: &'a F,
    /// The engine; empty if it could not be configured. Its work buffer is the only I/O
    /// buffer: lent to the flash driver for each read and program.
    store: MapCell<Store<'static>>,
    client: OptionalCell<&'a dyn KVClient>,
    state: Cell<MountState>,
    /// A mount or format the board asked for, not started yet.
    admin: OptionalCell<Admin>,
    operation: OptionalCell<Operation>,
    key: MapCell<SubSliceMut<'static, u8>>,
    /// The user key's stored form; empty while a lookup of a key that has none runs.
    store_key: MapCell<app_key::Key>,
    value: MapCell<SubSliceMut<'static, u8>>,
    /// Values shorter than this read as absent (see [`TdbStoreKv::set_min_value_len`]).
    min_value_len: Cell<usize>,
    deferred_call: DeferredCall,
}

impl<'a, F: NorFlash<'a>> TdbStoreKv<'a, F> {
    /// Makes values shorter than `len` read as absent (`NOSUPPORT`). Boards that put
    /// upstream's `KVStorePermissions` on top pass its `HEADER_LENGTH`: that layer indexes its
    /// 9-byte header without a length check, so a shorter value written by a host tool or a
    /// kernel client would otherwise panic the kernel when an app reads it.
    pub fn set_min_value_len(&self, len: usize) {
        self.min_value_len.set(len);
    }

    /// A capsule over `flash` with the engine `store` (built over the board's static work
    /// buffer and index, over `flash.geometry()` itself), or the reason it could not be
    /// built.
    ///
    /// The board must also call `flash.set_client(capsule)` and
    /// [`DeferredCallClient::register`]; the component does both.
    pub fn new(flash: &'a F, store: Result<Store<'static>, GeometryError>) -> Self {
        let (store, state) = match store {
            Ok(s) if Self::fits(flash.geometry(), &s.info()) => (MapCell::new(s), MountState::Unmounted),
            Ok(_) => (MapCell::empty(), MountState::Unconfigured(GeometryError::UnitsNotNested)),
            Err(e) => (MapCell::empty(), MountState::Unconfigured(e)),
        };
        if let MountState::Unconfigured(e) = state {
            debug!("tdbstore: cannot use this flash region ({}); key-value operations will fail", e);
        }
        TdbStoreKv {
            flash,
            store,
            client: OptionalCell::empty(),
            state: Cell::new(state),
            admin: OptionalCell::empty(),
            operation: OptionalCell::empty(),
            key: MapCell::empty(),
            store_key: MapCell::empty(),
            value: MapCell::empty(),
            min_value_len: Cell::new(0),
            deferred_call: DeferredCall::new(),
        }
    }

    /// Whether an engine geometry can run on the flash driver's region.
    fn fits(flash: nor_flash_hil::Geometry, info: &StoreInfo) -> bool {
        let g = info.geometry;
        let multiple = |unit: u32, of: u32| of != 0 && unit.is_multiple_of(of);
        g.size <= flash.size
            && g.erase_size == flash.erase_size
            && g.erase_value == flash.erase_value
            && multiple(g.program_size, flash.program_size)
            && multiple(g.read_size, flash.read_size)
    }

    /// Asks for the store to be mounted: boards call this once at start-up. The mount starts
    /// from a deferred call (no flash access inside this call), before any user operation;
    /// its outcome is printed with `debug!` and kept in [`TdbStoreKv::mount_state`]. A blank
    /// region is formatted; a foreign one is left untouched.
    ///
    /// `Err(FAIL)` if the engine could not be configured.
    pub fn mount(&self) -> Result<(), ErrorCode> {
        if let MountState::Unconfigured(_) = self.state.get() {
            return Err(ErrorCode::FAIL);
        }
        if self.admin.is_none() {
            self.admin.set(Admin::Mount);
        }
        self.deferred_call.set();
        Ok(())
    }

    /// Makes the region an empty store: the explicit way out of a foreign or damaged region.
    /// **Everything in the region is lost.** Runs from a deferred call, before any user
    /// operation; the outcome is printed and kept in [`TdbStoreKv::mount_state`].
    ///
    /// `Err(FAIL)` if the engine could not be configured.
    pub fn format(&self) -> Result<(), ErrorCode> {
        if let MountState::Unconfigured(_) = self.state.get() {
            return Err(ErrorCode::FAIL);
        }
        self.admin.set(Admin::Format);
        self.deferred_call.set();
        Ok(())
    }

    /// Whether the store is usable.
    pub fn mount_state(&self) -> MountState {
        self.state.get()
    }

    /// A snapshot of the engine's state (keys, free space, erase watermarks), for
    /// diagnostics; `None` if the engine could not be configured.
    pub fn info(&self) -> Option<StoreInfo> {
        self.store.map(|s| s.info())
    }

    /// Whether nothing is running or waiting: no client operation, no board request, and
    /// the engine neither busy nor with background work left.
    pub fn is_idle(&self) -> bool {
        self.operation.is_none() && self.admin.is_none() && !self.engine_busy() && !self.maintenance_due()
    }

    fn engine_busy(&self) -> bool {
        self.store.map_or(false, |s| s.is_busy() || s.is_lent())
    }

    fn maintenance_due(&self) -> bool {
        matches!(self.state.get(), MountState::Mounted) && self.store.map_or(false, |s| s.maintenance_due())
    }

    // ---------------------------------------------------------------------------------
    // Dispatch.

    /// Why a client operation cannot be accepted now.
    fn refuse(&self, op: UserOp) -> Option<ErrorCode> {
        if self.operation.is_some() {
            return Some(ErrorCode::BUSY);
        }
        let unusable = matches!(self.state.get(), MountState::Failed(_) | MountState::Unconfigured(_));
        // Unless the board has asked for a mount or format that may repair it.
        let repairable = self.admin.is_some() && !matches!(self.state.get(), MountState::Unconfigured(_));
        if unusable && !repairable && op != UserOp::GarbageCollect {
            return Some(ErrorCode::FAIL);
        }
        None
    }

    /// Queues an accepted client operation (its buffers are already stored) and starts it
    /// if the engine is free.
    fn submit(&self, op: UserOp) {
        self.operation.set(Operation::Accepted(op));
        self.start_next(true);
    }

    /// The client operation waiting to start: accepted, and not on the engine.
    fn waiting(&self) -> Option<UserOp> {
        match self.operation.get() {
            Some(Operation::Accepted(op)) if !self.engine_busy() => Some(op),
            _ => None,
        }
    }

    /// Starts the next piece of work if the engine is free: a board request, then the
    /// client operation (mounting first if needed), else schedules a maintenance step.
    /// `in_call`: we are inside a client's call, so nothing may complete synchronously, and
    /// only the client's own operation starts (mounts and board requests wait for the
    /// deferred call).
    fn start_next(&self, in_call: bool) {
        if self.engine_busy() || matches!(self.operation.get(), Some(Operation::Finished(..))) {
            return;
        }
        let needs_mount = matches!(self.state.get(), MountState::Unmounted) && self.operation.is_some();
        if in_call && (self.admin.is_some() || needs_mount) {
            self.deferred_call.set();
            return;
        }
        if let Some(admin) = self.admin.take() {
            match admin {
                Admin::Mount => self.start(Task::Mount, Op::Mount, false),
                Admin::Format => self.start(Task::Format, Op::Format { full: false }, false),
            }
            return;
        }
        if let Some(op) = self.waiting() {
            match self.state.get() {
                MountState::Mounted => self.start_user(op, in_call),
                MountState::Unmounted => self.start(Task::Mount, Op::Mount, false),
                MountState::Failed(_) | MountState::Unconfigured(_) => {
                    self.done(op, Err(error_code(Error::NotMounted, op.access())), in_call)
                }
            }
            return;
        }
        if self.maintenance_due() {
            // One step per deferred call, so other work runs in between.
            self.deferred_call.set();
        }
    }

    /// Starts `op`, a `task`, on the engine. Once it runs, the engine itself says what it
    /// runs ([`Store::task`]); `task` routes an outcome that comes back at once.
    fn start(&self, task: Task, op: Op<'_>, in_call: bool) {
        let step = self.engine_start(op);
        self.run(task, step, in_call);
    }

    /// Starts `op` on the engine. Without an engine, `Step::Done`: the operation finishes
    /// with `NotMounted` (see `take`).
    fn engine_start(&self, op: Op<'_>) -> Step {
        self.store.map(|s| s.start(op)).unwrap_or(Step::Done)
    }

    /// Starts the engine operation that carries out a client's `op`: one operation each;
    /// `add` and `update` are conditional writes the engine decides after its one lookup.
    fn start_user(&self, op: UserOp, in_call: bool) {
        let len = self.value.map_or(0, |v| v.len() as u32);
        let step = match op {
            UserOp::GarbageCollect => Some(self.engine_start(Op::Compact)),
            // `None`: the key has no stored form.
            _ => self.store_key.map(|key| {
                let key = key.as_bytes();
                let set = |when| Op::Set { key, len, flags: 0, when };
                self.engine_start(match op {
                    UserOp::Get => Op::Get { key, out_len: len },
                    UserOp::Set => set(SetWhen::Always),
                    UserOp::Add => set(SetWhen::Absent),
                    UserOp::Update => set(SetWhen::Present),
                    UserOp::Delete => Op::Remove { key },
                    UserOp::GarbageCollect => Op::Compact,
                })
            }),
        };
        let Some(step) = step else {
            // A key without a stored form is not in the store (only lookups get this far).
            self.done(op, Err(error_code(Error::NotFound, op.access())), in_call);
            if !in_call {
                self.start_next(false);
            }
            return;
        };
        let task = match op {
            UserOp::Get => Task::Read,
            UserOp::GarbageCollect => Task::Compact,
            _ => Task::Write,
        };
        self.run(task, step, in_call);
    }

    /// Maps the user's key to its stored form ([`tdbstore::app_key`]) before the operation
    /// is accepted. `Err(SIZE)`: a write of a key that has no stored form (refused at the
    /// call, where upstream's layers pass the code through). A lookup of such a key is
    /// accepted and finds nothing: it cannot be in the store.
    fn map_key(&self, op: UserOp, key: &[u8]) -> Result<(), ErrorCode> {
        match app_key::stored_key(key) {
            Ok(k) => {
                self.store_key.replace(k);
                Ok(())
            }
            Err(TooLong) if op.access() == Access::Write => Err(ErrorCode::SIZE),
            Err(TooLong) => {
                self.store_key.take();
                Ok(())
            }
        }
    }

    /// Performs requests until one needs a flash callback or `task`, the engine's
    /// operation, finishes.
    fn run(&self, task: Task, mut step: Step, in_call: bool) {
        loop {
            match step {
                Step::Done => return self.finished(task, in_call),
                Step::Io(req) => match self.perform(req) {
                    Some(next) => step = next,
                    None => return,
                },
            }
        }
    }

    /// Continues the engine with a request's result.
    fn resume(&self, r: Result<(), IoError>) -> Step {
        self.store.map(|s| s.resume(r)).unwrap_or(Step::Done)
    }

    /// The result of the engine's operation that just ended, as its type `T`; `NotMounted`
    /// without an engine.
    fn take<T: Output>(&self) -> Result<T, Error> {
        self.store.map(|s| s.finish()).unwrap_or(Err(Error::NotMounted))
    }

    /// Lends the engine's work buffer for the pending read or program, as a window onto
    /// the bytes the request covers.
    fn lend(&self) -> Option<SubSliceMut<'static, u8>> {
        let (buffer, at, len) = self.store.map(|s| s.lend()).flatten()?;
        let mut window = SubSliceMut::new(buffer);
        window.slice(at..at + len);
        Some(window)
    }

    /// Gives a lent buffer back to the engine. One that is not the engine's (a driver bug)
    /// is dropped: the engine keeps waiting for its own, and fails the operation.
    fn give_back(&self, window: SubSliceMut<'static, u8>) {
        let buffer = window.take();
        self.store.map(move |s| {
            let _ = s.give_back(buffer);
        });
    }

    /// Starts a flash read or program at `addr` on the engine's lent work buffer.
    fn lend_to(&self, op: FlashOp, addr: u32) -> Result<(), IoError> {
        let window = self.lend().ok_or(IoError::Other)?;
        let started = match op {
            FlashOp::Read => self.flash.read(addr, window),
            _ => self.flash.program(addr, window),
        };
        started.map_err(|(e, window)| {
            self.give_back(window);
            io_error(op, e)
        })
    }

    /// Performs one request. `None`: a flash operation is under way (its callback resumes
    /// the engine); `Some(step)`: the request finished at once (copies, refusals).
    fn perform(&self, req: Request) -> Option<Step> {
        let started = match req {
            Request::Read { addr, .. } => self.lend_to(FlashOp::Read, addr),
            Request::Program { addr, .. } => self.lend_to(FlashOp::Program, addr),
            Request::Erase { addr, len } => {
                if len != self.flash.geometry().erase_size {
                    return Some(self.resume(Err(IoError::Other)));
                }
                self.flash.erase(addr).map_err(|e| io_error(FlashOp::Erase, e))
            }
            Request::Fill { offset, len } => {
                let range = offset as usize..(offset as usize).saturating_add(len as usize);
                let copied = self
                    .value
                    .map(|v| match v.as_slice().get(range) {
                        Some(src) => self.store.map(|s| copy(s.io_buf(), src)).unwrap_or(false),
                        None => false,
                    })
                    .unwrap_or(false);
                return Some(self.resume(if copied { Ok(()) } else { Err(IoError::Other) }));
            }
            Request::Deliver { offset, len } => {
                let range = offset as usize..(offset as usize).saturating_add(len as usize);
                let copied = self
                    .value
                    .map(|v| match v.as_mut_slice().get_mut(range) {
                        Some(dst) => self.store.map(|s| copy(dst, s.io_buf())).unwrap_or(false),
                        None => false,
                    })
                    .unwrap_or(false);
                return Some(self.resume(if copied { Ok(()) } else { Err(IoError::Other) }));
            }
        };
        match started {
            Ok(()) => None,
            Err(e) => Some(self.resume(Err(e))),
        }
    }

    /// A flash callback arrived, with the lent buffer for reads and programs.
    fn flash_done(&self, op: FlashOp, buffer: Option<SubSliceMut<'static, u8>>, r: Result<(), ErrorCode>) {
        if let Some(window) = buffer {
            self.give_back(window);
        }
        let Some((Some(task), pending)) = self.store.map(|s| (s.task(), s.pending())) else {
            // Nothing in flight: a stray callback (a driver bug); nothing to resume.
            return;
        };
        // Not the callback the engine waits for (a driver bug): fail its request rather
        // than guess.
        let r = if op.completes(pending) { r.map_err(|e| io_error(op, e)) } else { Err(IoError::Other) };
        let step = self.resume(r);
        self.run(task, step, false);
    }

    /// The engine finished `task`.
    fn finished(&self, task: Task, in_call: bool) {
        // A failed compaction leaves the engine unmounted: the next operation mounts again.
        if matches!(self.state.get(), MountState::Mounted) && !self.store.map_or(false, |s| s.is_mounted()) {
            self.state.set(MountState::Unmounted);
        }
        match task {
            Task::Mount | Task::Format => self.mounted(task, self.take()),
            // Whether more is due, the engine says when asked (`maintenance_due`).
            Task::Maintain => {}
            Task::Read | Task::Write | Task::Compact => {
                if let Some(Operation::Accepted(op)) = self.operation.get() {
                    let result = self.user_result(op);
                    self.done(op, result, in_call);
                }
            }
        }
        if !in_call {
            self.start_next(false);
        }
    }

    /// A mount or format finished.
    fn mounted(&self, task: Task, r: Result<MountInfo, Error>) {
        let what = if task == Task::Format { "format" } else { "mount" };
        match r {
            Ok(m) => {
                self.state.set(MountState::Mounted);
                debug!(
                    "tdbstore: mounted: area {}, version {}, {} keys, log end {:#x}{}{}",
                    m.active_area,
                    m.version,
                    m.keys,
                    m.free_offset,
                    if m.formatted { ", formatted" } else { "" },
                    if m.torn_tail { ", torn tail (compacting soon)" } else { "" },
                );
            }
            Err(e) => {
                self.state.set(MountState::Failed(e));
                if matches!(e, Error::Foreign) {
                    debug!(
                        "tdbstore: {} failed: the region holds no TDBStore and is not blank; left \
                         untouched. Key-value operations fail until the board formats it.",
                        what
                    );
                } else {
                    debug!("tdbstore: {} failed ({:?}); key-value operations fail", what, e);
                }
            }
        }
    }

    /// What the client's operation `op` returns, now that the engine has finished it: a get
    /// leaves the value buffer holding what was read.
    fn user_result(&self, op: UserOp) -> Result<(), ErrorCode> {
        let code = |e| error_code(e, op.access());
        if op != UserOp::Get {
            return self.take::<()>().map_err(code);
        }
        let Value { size, copied, .. } = self.take().map_err(code)?;
        if (size as usize) < self.min_value_len.get() {
            self.value.map(|v| v.slice(..0));
            return Err(ErrorCode::NOSUPPORT);
        }
        self.value.map(|v| v.slice(..copied as usize));
        if copied < size {
            Err(ErrorCode::SIZE)
        } else {
            Ok(())
        }
    }

    /// The client's operation `op` finished with `result`: its callback now, or from the
    /// deferred call if we are inside the client's call.
    fn done(&self, op: UserOp, result: Result<(), ErrorCode>, in_call: bool) {
        if in_call {
            self.operation.set(Operation::Finished(op, result));
            self.deferred_call.set();
        } else {
            self.complete_user(op, result);
        }
    }

    /// Clears the client's operation and hands its buffers back with its callback.
    fn complete_user(&self, op: UserOp, result: Result<(), ErrorCode>) {
        self.operation.clear();
        self.store_key.take();
        let key = self.key.take();
        let value = self.value.take();
        self.client.map(move |c| match (op, key, value) {
            (UserOp::GarbageCollect, _, _) => c.garbage_collection_complete(result),
            (UserOp::Delete, Some(k), _) => c.delete_complete(result, k),
            (UserOp::Get, Some(k), Some(v)) => c.get_complete(result, k, v),
            (UserOp::Set, Some(k), Some(v)) => c.set_complete(result, k, v),
            (UserOp::Add, Some(k), Some(v)) => c.add_complete(result, k, v),
            (UserOp::Update, Some(k), Some(v)) => c.update_complete(result, k, v),
            // The buffers are stored before an operation is accepted; nothing to return.
            _ => {}
        });
    }

    /// Accepts a keyed operation with a value buffer, or gives the buffers back.
    fn accept(
        &self,
        op: UserOp,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        if let Some(e) = self.refuse(op) {
            return Err((key, value, e));
        }
        if let Err(e) = self.map_key(op, key.as_slice()) {
            return Err((key, value, e));
        }
        self.key.replace(key);
        self.value.replace(value);
        self.submit(op);
        Ok(())
    }
}

/// Copies `src` into `dst` if their lengths match.
fn copy(dst: &mut [u8], src: &[u8]) -> bool {
    if dst.len() != src.len() {
        return false;
    }
    dst.copy_from_slice(src);
    true
}

impl<'a, F: NorFlash<'a>> DeferredCallClient for TdbStoreKv<'a, F> {
    fn handle_deferred_call(&self) {
        if let Some(Operation::Finished(op, result)) = self.operation.get() {
            self.complete_user(op, result);
            self.start_next(false);
            return;
        }
        if self.engine_busy() {
            return;
        }
        if self.admin.is_some() || self.waiting().is_some() {
            self.start_next(false);
        } else if self.maintenance_due() {
            self.start(Task::Maintain, Op::Maintain, false);
        }
    }

    fn register(&'static self) {
        self.deferred_call.register(self);
    }
}

impl<'a, F: NorFlash<'a>> NorFlashClient for TdbStoreKv<'a, F> {
    fn read_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
        self.flash_done(FlashOp::Read, Some(buffer), result);
    }

    fn program_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
        self.flash_done(FlashOp::Program, Some(buffer), result);
    }

    fn erase_complete(&self, result: Result<(), ErrorCode>) {
        self.flash_done(FlashOp::Erase, None, result);
    }
}

impl<'a, F: NorFlash<'a>> KV<'a> for TdbStoreKv<'a, F> {
    fn set_client(&self, client: &'a dyn KVClient) {
        self.client.set(client);
    }

    fn get(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept(UserOp::Get, key, value)
    }

    fn set(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept(UserOp::Set, key, value)
    }

    fn add(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept(UserOp::Add, key, value)
    }

    fn update(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept(UserOp::Update, key, value)
    }

    fn delete(&self, key: SubSliceMut<'static, u8>) -> Result<(), (SubSliceMut<'static, u8>, ErrorCode)> {
        if let Some(e) = self.refuse(UserOp::Delete) {
            return Err((key, e));
        }
        if let Err(e) = self.map_key(UserOp::Delete, key.as_slice()) {
            return Err((key, e));
        }
        self.key.replace(key);
        self.submit(UserOp::Delete);
        Ok(())
    }

    fn garbage_collect(&self) -> Result<(), ErrorCode> {
        if let Some(e) = self.refuse(UserOp::GarbageCollect) {
            return Err(e);
        }
        self.submit(UserOp::GarbageCollect);
        Ok(())
    }
}
