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
//! flash requests through the split-phase NOR-flash HIL (copying between the engine's work
//! buffer and its own flash buffer) and resumes the engine from the completion callbacks;
//! copies to and from the value buffer are done on the spot.
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
use kernel::utilities::cells::{MapCell, OptionalCell, TakeCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{NorFlash, NorFlashClient};
use tdbstore::app_key::{self, TooLong};
use tdbstore::{Error, GeometryError, IoError, KeyError, Op, Outcome, Request, Step, Store, StoreInfo};

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
/// | `Full`, `IndexFull` | `NOMEM` | `NOMEM` | no room in the area or the RAM index, even after compaction |
/// | `InvalidKey(TooLong)` | `INVAL` | `SIZE` | HIL: set-type calls say `SIZE` for a key too long; for `get`, `SIZE` means "value truncated", so a bad key there is `INVAL` |
/// | `ValueTooLarge` | `INVAL` | `SIZE` | a value that can never fit in an area (HIL: `SIZE`) |
/// | other `InvalidKey`, `InvalidFlags` | `INVAL` | `INVAL` | not expected: every key is mapped to a valid one first ([`tdbstore::app_key`]) |
/// | `Busy` | `BUSY` | `BUSY` | the engine is running something else (not expected: the capsule serializes) |
/// | `Foreign`, `NotMounted`, `Corrupt`, `SizeMismatch`, `Io(..)` | `FAIL` | `FAIL` | region unusable, a damaged record, or a flash error |
///
/// A key with no stored form never reaches the engine: writes are refused with `SIZE` at
/// the call, lookups complete with `NOSUPPORT` (see the module docs, *Keys*).
pub fn error_code(e: Error, access: Access) -> ErrorCode {
    match (e, access) {
        (Error::NotFound | Error::WriteProtected, _) => ErrorCode::NOSUPPORT,
        (Error::Full | Error::IndexFull, _) => ErrorCode::NOMEM,
        (Error::InvalidKey(KeyError::TooLong) | Error::ValueTooLarge, Access::Write) => ErrorCode::SIZE,
        (Error::InvalidKey(_) | Error::ValueTooLarge | Error::InvalidFlags, _) => ErrorCode::INVAL,
        (Error::Busy, _) => ErrorCode::BUSY,
        (Error::Foreign | Error::NotMounted | Error::Corrupt | Error::SizeMismatch | Error::Io(..), _) => {
            ErrorCode::FAIL
        }
    }
}

/// The flash operation a callback is expected for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlashOp {
    Read,
    Program,
    Erase,
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

/// A user operation (at most one is pending).
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

/// What the engine is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Running {
    Idle,
    Mount,
    Format,
    Maintain,
    /// The lookup that decides an `add` or `update`.
    Check,
    /// The user operation itself.
    User,
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

/// The engine's geometry for a NOR-flash region.
pub fn engine_geometry(g: nor_flash_hil::Geometry) -> tdbstore::Geometry {
    tdbstore::Geometry {
        size: g.size,
        read_size: g.read_size,
        program_size: g.program_size,
        erase_size: g.erase_size,
        erase_value: g.erase_value,
    }
}

/// The TDBStore key-value capsule. See the module docs.
pub struct TdbStoreKv<'a, F: NorFlash<'a>> {
    flash: &'a F,
    /// The engine; empty if it could not be configured.
    store: MapCell<Store<'static>>,
    /// Data of flash reads and programs (the engine's work buffer stays inside the engine).
    flash_buf: TakeCell<'static, [u8]>,
    client: OptionalCell<&'a dyn KVClient>,
    state: Cell<MountState>,
    running: Cell<Running>,
    /// The flash callback the engine waits for.
    awaiting: OptionalCell<FlashOp>,
    admin: OptionalCell<Admin>,
    user: OptionalCell<UserOp>,
    key: MapCell<SubSliceMut<'static, u8>>,
    /// The user key's stored form; empty while a lookup of a key that has none runs.
    store_key: MapCell<app_key::Key>,
    value: MapCell<SubSliceMut<'static, u8>>,
    /// An engine operation that finished inside a caller's call, delivered by deferred call.
    finished: OptionalCell<Result<Outcome, Error>>,
    /// The engine may have background work (erase ahead, compaction of a torn tail).
    maintenance_due: Cell<bool>,
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
    /// buffer and index, with [`engine_geometry`] of `flash.geometry()`), or the reason it
    /// could not be built. `flash_buf` must be at least as long as the engine's work buffer;
    /// a request longer than it fails (`FAIL`).
    ///
    /// The board must also call `flash.set_client(capsule)` and
    /// [`DeferredCallClient::register`]; the component does both.
    pub fn new(
        flash: &'a F,
        store: Result<Store<'static>, GeometryError>,
        flash_buf: &'static mut [u8],
    ) -> Self {
        let (store, state) = match store {
            Ok(s) if Self::fits(flash.geometry(), &s.info()) => (MapCell::new(s), MountState::Unmounted),
            Ok(_) => (MapCell::empty(), MountState::Unconfigured(GeometryError::UnitsNotNested)),
            Err(e) => (MapCell::empty(), MountState::Unconfigured(e)),
        };
        if let MountState::Unconfigured(e) = state {
            debug!("tdbstore: cannot use this flash region ({:?}); key-value operations will fail", e);
        }
        TdbStoreKv {
            flash,
            store,
            flash_buf: TakeCell::new(flash_buf),
            client: OptionalCell::empty(),
            state: Cell::new(state),
            running: Cell::new(Running::Idle),
            awaiting: OptionalCell::empty(),
            admin: OptionalCell::empty(),
            user: OptionalCell::empty(),
            key: MapCell::empty(),
            store_key: MapCell::empty(),
            value: MapCell::empty(),
            finished: OptionalCell::empty(),
            maintenance_due: Cell::new(false),
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

    /// Whether nothing is running or waiting: no user operation, no board request, no
    /// engine operation and no background work left.
    pub fn is_idle(&self) -> bool {
        self.running.get() == Running::Idle
            && self.user.is_none()
            && self.admin.is_none()
            && self.finished.is_none()
            && !(self.maintenance_due.get() && self.state.get() == MountState::Mounted)
    }

    // ---------------------------------------------------------------------------------
    // Dispatch.

    /// Why a user operation cannot be accepted now.
    fn refuse(&self, op: UserOp) -> Option<ErrorCode> {
        if self.user.is_some() {
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

    /// Queues an accepted user operation (its buffers are already stored) and starts it if
    /// the engine is free.
    fn submit(&self, op: UserOp) {
        self.user.set(op);
        self.start_next(true);
    }

    /// Starts the next piece of work if the engine is free: a board request, then the user
    /// operation (mounting first if needed), else schedules a maintenance step. `in_call`:
    /// we are inside a client's call, so nothing may complete synchronously.
    fn start_next(&self, in_call: bool) {
        if self.running.get() != Running::Idle || self.finished.is_some() {
            return;
        }
        if let Some(admin) = self.admin.take() {
            match admin {
                Admin::Mount => self.start(Running::Mount, Op::Mount, in_call),
                Admin::Format => self.start(Running::Format, Op::Format { full: false }, in_call),
            }
            return;
        }
        if let Some(op) = self.user.get() {
            match self.state.get() {
                MountState::Mounted => self.start_user(op, in_call),
                MountState::Unmounted => self.start(Running::Mount, Op::Mount, in_call),
                MountState::Failed(_) | MountState::Unconfigured(_) => {
                    // Completes the user operation with FAIL.
                    self.running.set(Running::User);
                    self.run(Step::Done(Err(Error::NotMounted)), in_call);
                }
            }
            return;
        }
        if self.maintenance_due.get() && self.state.get() == MountState::Mounted {
            // One step per deferred call, so other work runs in between.
            self.deferred_call.set();
        }
    }

    /// Starts `op` on the engine.
    fn start(&self, running: Running, op: Op<'_>, in_call: bool) {
        self.running.set(running);
        let step = self.store.map(|s| s.start(op)).unwrap_or(Step::Done(Err(Error::NotMounted)));
        self.run(step, in_call);
    }

    /// Starts a user operation: the lookup of an `add`/`update`, or the operation itself.
    fn start_user(&self, op: UserOp, in_call: bool) {
        match op {
            UserOp::Add | UserOp::Update => {
                let step = self.with_key(|s, key| s.start(Op::GetInfo { key }));
                self.running.set(Running::Check);
                self.run(step, in_call);
            }
            _ => self.start_write(op, in_call),
        }
    }

    /// Starts the engine operation that carries out `op`.
    fn start_write(&self, op: UserOp, in_call: bool) {
        let len = self.value.map_or(0, |v| v.len() as u32);
        let step = match op {
            UserOp::Get => self.with_key(|s, key| s.start(Op::Get { key, out_len: len })),
            UserOp::Set | UserOp::Add | UserOp::Update => {
                self.with_key(|s, key| s.start(Op::Set { key, len, flags: 0 }))
            }
            UserOp::Delete => self.with_key(|s, key| s.start(Op::Remove { key })),
            UserOp::GarbageCollect => {
                self.store.map(|s| s.start(Op::Compact)).unwrap_or(Step::Done(Err(Error::NotMounted)))
            }
        };
        self.running.set(Running::User);
        self.run(step, in_call);
    }

    /// Runs `f` with the engine and the user key's stored form. A key without one is not
    /// in the store: the operation finishes with `NotFound` (only lookups get this far).
    fn with_key(&self, f: impl FnOnce(&mut Store<'static>, &[u8]) -> Step) -> Step {
        match self.store_key.map(|key| self.store.map(|s| f(s, key.as_bytes()))) {
            None => Step::Done(Err(Error::NotFound)),
            Some(None) => Step::Done(Err(Error::NotMounted)),
            Some(Some(step)) => step,
        }
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

    /// Performs requests until one needs a flash callback or the operation finishes.
    fn run(&self, mut step: Step, in_call: bool) {
        loop {
            match step {
                Step::Done(r) => {
                    if in_call {
                        self.finished.set(r);
                        self.deferred_call.set();
                    } else {
                        self.finish(r);
                    }
                    return;
                }
                Step::Io(req) => match self.perform(req) {
                    Some(next) => step = next,
                    None => return,
                },
            }
        }
    }

    /// Continues the engine with a request's result.
    fn resume(&self, r: Result<(), IoError>) -> Step {
        self.store.map(|s| s.resume(r)).unwrap_or(Step::Done(Err(Error::NotMounted)))
    }

    /// Performs one request. `None`: a flash operation is under way (its callback resumes
    /// the engine); `Some(step)`: the request finished at once (copies, refusals).
    fn perform(&self, req: Request) -> Option<Step> {
        match req {
            Request::Read { addr, len } => {
                let len = len as usize;
                let Some(buf) = self.flash_buf.take() else {
                    return Some(self.resume(Err(IoError::Other)));
                };
                if len > buf.len() {
                    self.flash_buf.replace(buf);
                    return Some(self.resume(Err(IoError::Other)));
                }
                self.awaiting.set(FlashOp::Read);
                match self.flash.read(addr, buf, len) {
                    Ok(()) => None,
                    Err((e, buf)) => {
                        self.awaiting.clear();
                        self.flash_buf.replace(buf);
                        Some(self.resume(Err(io_error(FlashOp::Read, e))))
                    }
                }
            }
            Request::Program { addr, len } => {
                let len = len as usize;
                let Some(buf) = self.flash_buf.take() else {
                    return Some(self.resume(Err(IoError::Other)));
                };
                let staged = self
                    .store
                    .map(|s| {
                        let src = s.io_buf();
                        match buf.get_mut(..len) {
                            Some(dst) if src.len() == len => {
                                dst.copy_from_slice(src);
                                true
                            }
                            _ => false,
                        }
                    })
                    .unwrap_or(false);
                if !staged {
                    self.flash_buf.replace(buf);
                    return Some(self.resume(Err(IoError::Other)));
                }
                self.awaiting.set(FlashOp::Program);
                match self.flash.program(addr, buf, len) {
                    Ok(()) => None,
                    Err((e, buf)) => {
                        self.awaiting.clear();
                        self.flash_buf.replace(buf);
                        Some(self.resume(Err(io_error(FlashOp::Program, e))))
                    }
                }
            }
            Request::Erase { addr, len } => {
                if len != self.flash.geometry().erase_size {
                    return Some(self.resume(Err(IoError::Other)));
                }
                self.awaiting.set(FlashOp::Erase);
                match self.flash.erase(addr) {
                    Ok(()) => None,
                    Err(e) => {
                        self.awaiting.clear();
                        Some(self.resume(Err(io_error(FlashOp::Erase, e))))
                    }
                }
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
                Some(self.resume(if copied { Ok(()) } else { Err(IoError::Other) }))
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
                Some(self.resume(if copied { Ok(()) } else { Err(IoError::Other) }))
            }
        }
    }

    /// A flash callback arrived.
    fn flash_done(&self, op: FlashOp, r: Result<(), IoError>) {
        if self.awaiting.get() != Some(op) {
            // Not the callback we wait for (a driver bug): fail the request we do wait for,
            // if any, rather than guess; ignore it otherwise.
            if self.awaiting.take().is_none() {
                return;
            }
            let step = self.resume(Err(IoError::Other));
            self.run(step, false);
            return;
        }
        self.awaiting.clear();
        let step = self.resume(r);
        self.run(step, false);
    }

    /// An engine operation finished; we are not inside a client's call.
    fn finish(&self, r: Result<Outcome, Error>) {
        let running = self.running.replace(Running::Idle);
        // A failed compaction leaves the engine unmounted: the next operation mounts again.
        if self.state.get() == MountState::Mounted && !self.store.map_or(false, |s| s.info().mounted) {
            self.state.set(MountState::Unmounted);
        }
        match running {
            Running::Mount | Running::Format => self.mounted(running, r),
            Running::Maintain => {
                self.maintenance_due.set(matches!(r, Ok(Outcome::Maintained { more: true })))
            }
            Running::Check => self.checked(r),
            Running::User => self.user_done(r),
            Running::Idle => {}
        }
        self.start_next(false);
    }

    /// A mount or format finished.
    fn mounted(&self, running: Running, r: Result<Outcome, Error>) {
        let what = if running == Running::Format { "format" } else { "mount" };
        match r {
            Ok(Outcome::Mounted(m)) => {
                self.state.set(MountState::Mounted);
                self.maintenance_due.set(true);
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
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => Error::NotMounted,
                };
                self.state.set(MountState::Failed(e));
                if e == Error::Foreign {
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

    /// The lookup of an `add` or `update` finished: write, or refuse.
    fn checked(&self, r: Result<Outcome, Error>) {
        let Some(op) = self.user.get() else { return };
        match (op, r) {
            (UserOp::Add, Err(Error::NotFound)) | (UserOp::Update, Ok(Outcome::Info { .. })) => {
                self.start_write(op, false)
            }
            (_, Ok(Outcome::Info { .. }) | Err(Error::NotFound)) => {
                self.complete_user(op, Err(ErrorCode::NOSUPPORT))
            }
            (_, Err(e)) => self.complete_user(op, Err(error_code(e, Access::Write))),
            (_, Ok(_)) => self.complete_user(op, Err(ErrorCode::FAIL)),
        }
    }

    /// The user operation's engine operation finished.
    fn user_done(&self, r: Result<Outcome, Error>) {
        let Some(op) = self.user.get() else { return };
        if op != UserOp::Get {
            // Writes may leave background work (erase ahead, a torn tail to compact).
            self.maintenance_due.set(true);
        }
        let result = match (op, r) {
            (UserOp::Get, Ok(Outcome::Value { size, .. })) if (size as usize) < self.min_value_len.get() => {
                self.value.map(|v| v.slice(..0));
                Err(ErrorCode::NOSUPPORT)
            }
            (UserOp::Get, Ok(Outcome::Value { size, copied, .. })) => {
                self.value.map(|v| v.slice(..copied as usize));
                if copied < size {
                    Err(ErrorCode::SIZE)
                } else {
                    Ok(())
                }
            }
            (UserOp::Get, Ok(_)) => Err(ErrorCode::FAIL),
            (_, Ok(_)) => Ok(()),
            (op, Err(e)) => Err(error_code(e, op.access())),
        };
        self.complete_user(op, result);
    }

    /// Clears the user operation and hands its buffers back to the client.
    fn complete_user(&self, op: UserOp, result: Result<(), ErrorCode>) {
        self.user.clear();
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
        if let Some(r) = self.finished.take() {
            self.finish(r);
            return;
        }
        if self.running.get() != Running::Idle {
            return;
        }
        if self.admin.is_some() || self.user.is_some() {
            self.start_next(false);
        } else if self.maintenance_due.get() && self.state.get() == MountState::Mounted {
            self.start(Running::Maintain, Op::Maintain, false);
        }
    }

    fn register(&'static self) {
        self.deferred_call.register(self);
    }
}

impl<'a, F: NorFlash<'a>> NorFlashClient for TdbStoreKv<'a, F> {
    fn read_complete(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        let r = match result {
            Ok(()) if self.awaiting.get() == Some(FlashOp::Read) => {
                let copied = self
                    .store
                    .map(|s| {
                        let dst = s.io_buf();
                        buffer.get(..dst.len()).is_some_and(|src| copy(dst, src))
                    })
                    .unwrap_or(false);
                if copied {
                    Ok(())
                } else {
                    Err(IoError::Other)
                }
            }
            Ok(()) => Ok(()),
            Err(e) => Err(io_error(FlashOp::Read, e)),
        };
        if self.flash_buf.is_none() {
            self.flash_buf.replace(buffer);
        }
        self.flash_done(FlashOp::Read, r);
    }

    fn program_complete(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        if self.flash_buf.is_none() {
            self.flash_buf.replace(buffer);
        }
        self.flash_done(FlashOp::Program, result.map_err(|e| io_error(FlashOp::Program, e)));
    }

    fn erase_complete(&self, result: Result<(), ErrorCode>) {
        self.flash_done(FlashOp::Erase, result.map_err(|e| io_error(FlashOp::Erase, e)));
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
