// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! TDBStore as a Tock key-value store: `hil::kv::KV` driven from NOR-flash callbacks.
//!
//! ```text
//! kv_driver (0x50003) -> virtual_kv -> kv_store_permissions      (upstream)
//!                               hil::kv::KV
//! +-----------------------------------------------------+
//! | TdbStoreKv (this file): one engine operation at a    |
//! | time; idle-time maintenance; mount at boot           |
//! +-----------------------------------------------------+
//!                     nor_flash_hil::NorFlash
//! ```
//!
//! The engine (`tdbstore::Store`) is sans-IO: each step asks for one flash read, program or
//! erase, or a copy between its work buffer and the caller's value buffer. This capsule
//! performs the flash requests with the split-phase NOR-flash HIL and resumes the engine
//! from the completion callbacks; copies are done on the spot.
//!
//! One user operation is served at a time (`BUSY` otherwise). When no user operation is
//! waiting, the capsule runs the engine's maintenance steps (erase the standby area and the
//! next sector ahead of need, compact early) one deferred call at a time, so a user `set`
//! never waits for an area's erase; a user operation arriving during a maintenance step
//! starts as soon as that one step ends.
//!
//! ### Return values
//!
//! Engine errors reach clients through [`error_code`], the one mapping:
//!
//! | engine `Error` | `ErrorCode` | meaning |
//! |---|---|---|
//! | `NotFound` | `NOSUPPORT` | no such key (Tock KV convention) |
//! | `WriteProtected` | `NOSUPPORT` | the key is write-once |
//! | `Full`, `IndexFull` | `NOMEM` | no room, even after compaction |
//! | `ValueTooLarge`, `InvalidKey(TooLong)`, `SizeMismatch` | `SIZE` | key or value too long |
//! | other `InvalidKey`, `InvalidFlags` | `INVAL` | key empty, forbidden byte, or `"TDBS"` |
//! | `Busy` | `BUSY` | an operation is in flight |
//! | `Foreign`, `NotMounted`, `Corrupt`, `Io` | `FAIL` | region unusable or flash error |
//!
//! `get` with a value buffer shorter than the value copies what fits and completes with
//! `SIZE`; on success the value buffer's active range is exactly the value. `add` fails with
//! `NOSUPPORT` if the key exists, `update` if it does not.

use core::cell::Cell;

use kernel::debug;
use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::hil::kv::{KVClient, KV};
use kernel::utilities::cells::{MapCell, OptionalCell, TakeCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{NorFlash, NorFlashClient};
use tdbstore::{Error, IoError, KeyError, Op, Outcome, Request, Step, Store};

/// The one mapping from engine errors to Tock error codes (table in the module docs).
pub fn error_code(e: Error) -> ErrorCode {
    match e {
        Error::NotFound | Error::WriteProtected => ErrorCode::NOSUPPORT,
        Error::Full | Error::IndexFull => ErrorCode::NOMEM,
        Error::ValueTooLarge | Error::InvalidKey(KeyError::TooLong) | Error::SizeMismatch => ErrorCode::SIZE,
        Error::InvalidKey(_) | Error::InvalidFlags => ErrorCode::INVAL,
        Error::Busy => ErrorCode::BUSY,
        Error::Foreign | Error::NotMounted | Error::Corrupt | Error::Io(..) => ErrorCode::FAIL,
    }
}

/// What a flash driver's error means to the engine.
fn io_error(e: ErrorCode) -> IoError {
    match e {
        ErrorCode::FAIL => IoError::Ecc,
        ErrorCode::RESERVE | ErrorCode::INVAL => IoError::Protected,
        ErrorCode::OFF | ErrorCode::NODEVICE => IoError::PowerLost,
        _ => IoError::Other,
    }
}

/// A refused operation's buffers, handed back with the reason.
type Refused = (SubSliceMut<'static, u8>, Option<SubSliceMut<'static, u8>>, ErrorCode);

/// The user operation in progress. `AddCheck`/`UpdateCheck` look the key up before the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Get,
    Set,
    AddCheck,
    Add,
    UpdateCheck,
    Update,
    Delete,
    GarbageCollect,
}

/// What the engine is running for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Mount,
    Format,
    User,
    Maintain,
}

/// Whether the store is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Not mounted yet (or must be mounted again after a failed compaction).
    Unmounted,
    /// Mounted.
    Mounted,
    /// Mount refused the region (foreign or damaged); only [`TdbStoreKv::format`] helps.
    Failed(Error),
}

/// The TDBStore key-value capsule.
pub struct TdbStoreKv<'a, F: NorFlash<'a>> {
    flash: &'a F,
    store: MapCell<Store<'static>>,
    flash_buf: TakeCell<'static, [u8]>,
    client: OptionalCell<&'a dyn KVClient>,
    op: OptionalCell<Operation>,
    phase: Cell<Phase>,
    mount_state: Cell<MountState>,
    maintenance_due: Cell<bool>,
    key: MapCell<SubSliceMut<'static, u8>>,
    value: MapCell<SubSliceMut<'static, u8>>,
    /// A completion reached inside a call (no flash I/O needed), delivered by deferred call.
    early: OptionalCell<Result<Outcome, Error>>,
    deferred_call: DeferredCall,
}

impl<'a, F: NorFlash<'a>> TdbStoreKv<'a, F> {
    /// A capsule over `flash` with an engine built over the board's static buffers.
    /// `flash_buf` must be at least the engine's work-buffer chunk (its work buffer length).
    pub fn new(flash: &'a F, store: Store<'static>, flash_buf: &'static mut [u8]) -> Self {
        TdbStoreKv {
            flash,
            store: MapCell::new(store),
            flash_buf: TakeCell::new(flash_buf),
            client: OptionalCell::empty(),
            op: OptionalCell::empty(),
            phase: Cell::new(Phase::Idle),
            mount_state: Cell::new(MountState::Unmounted),
            maintenance_due: Cell::new(true),
            key: MapCell::empty(),
            value: MapCell::empty(),
            early: OptionalCell::empty(),
            deferred_call: DeferredCall::new(),
        }
    }

    /// Starts mounting (boards call this once at boot; the result is printed and kept in
    /// [`TdbStoreKv::mount_state`]). User operations that arrive meanwhile wait for it.
    pub fn mount(&self) -> Result<(), ErrorCode> {
        self.start_engine(Phase::Mount)
    }

    /// Erases the region's area heads and makes it an empty store: the explicit way out of a
    /// foreign or damaged region. Everything in the store is lost.
    pub fn format(&self) -> Result<(), ErrorCode> {
        self.start_engine(Phase::Format)
    }

    /// Whether the store is usable.
    pub fn mount_state(&self) -> MountState {
        self.mount_state.get()
    }

    /// The engine's state, for diagnostics (`None` while an operation holds the engine).
    pub fn info(&self) -> Option<tdbstore::StoreInfo> {
        self.store.map(|s| s.info())
    }

    fn start_engine(&self, phase: Phase) -> Result<(), ErrorCode> {
        if self.phase.get() != Phase::Idle {
            return Err(ErrorCode::BUSY);
        }
        let op = match phase {
            Phase::Mount => Op::Mount,
            Phase::Format => Op::Format { full: false },
            Phase::Maintain => Op::Maintain,
            Phase::User | Phase::Idle => return Err(ErrorCode::INVAL),
        };
        self.phase.set(phase);
        let step = self.store.map(|s| s.start(op)).unwrap_or(Step::Done(Err(Error::Busy)));
        self.run(step, true);
        Ok(())
    }

    /// Starts the queued user operation on the engine.
    fn start_user(&self) {
        let Some(op) = self.op.get() else { return };
        self.phase.set(Phase::User);
        let out_len = self.value.map_or(0, |v| v.len() as u32);
        let step = self
            .key
            .map(|key| {
                let key = key.as_slice();
                let engine_op = match op {
                    Operation::Get => Op::Get { key, out_len },
                    Operation::AddCheck | Operation::UpdateCheck => Op::GetInfo { key },
                    Operation::Set | Operation::Add | Operation::Update => Op::Set { key, len: out_len, flags: 0 },
                    Operation::Delete => Op::Remove { key },
                    Operation::GarbageCollect => Op::Compact,
                };
                self.store.map(|s| s.start(engine_op)).unwrap_or(Step::Done(Err(Error::Busy)))
            })
            .unwrap_or_else(|| {
                // Garbage collection carries no key.
                if op == Operation::GarbageCollect {
                    self.store.map(|s| s.start(Op::Compact)).unwrap_or(Step::Done(Err(Error::Busy)))
                } else {
                    Step::Done(Err(Error::Busy))
                }
            });
        self.run(step, true);
    }

    /// Performs requests until one needs a callback, or the operation finishes. `in_call`:
    /// we are inside a caller's call, so a finished operation completes by deferred call.
    fn run(&self, mut step: Step, in_call: bool) {
        loop {
            match step {
                Step::Done(r) => {
                    if in_call {
                        self.early.set(r);
                        self.deferred_call.set();
                    } else {
                        self.finish(r);
                    }
                    return;
                }
                Step::Io(req) => match self.issue(req) {
                    Some(next) => step = next,
                    None => return,
                },
            }
        }
    }

    fn resume(&self, r: Result<(), IoError>) -> Step {
        self.store.map(|s| s.resume(r)).unwrap_or(Step::Done(Err(Error::Busy)))
    }

    /// Issues one request. `Some(step)` when it finished at once (copies, refusals).
    fn issue(&self, req: Request) -> Option<Step> {
        match req {
            Request::Read { addr, len } => {
                let Some(buf) = self.flash_buf.take() else {
                    return Some(self.resume(Err(IoError::Other)));
                };
                match self.flash.read(addr, buf, len as usize) {
                    Ok(()) => None,
                    Err((e, buf)) => {
                        self.flash_buf.replace(buf);
                        Some(self.resume(Err(io_error(e))))
                    }
                }
            }
            Request::Program { addr, len } => {
                let Some(buf) = self.flash_buf.take() else {
                    return Some(self.resume(Err(IoError::Other)));
                };
                let n = len as usize;
                let copied = self
                    .store
                    .map(|s| match buf.get_mut(..n) {
                        Some(dst) if s.io_buf().len() == n => {
                            dst.copy_from_slice(s.io_buf());
                            true
                        }
                        _ => false,
                    })
                    .unwrap_or(false);
                if !copied {
                    self.flash_buf.replace(buf);
                    return Some(self.resume(Err(IoError::Other)));
                }
                match self.flash.program(addr, buf, n) {
                    Ok(()) => None,
                    Err((e, buf)) => {
                        self.flash_buf.replace(buf);
                        Some(self.resume(Err(io_error(e))))
                    }
                }
            }
            Request::Erase { addr, .. } => match self.flash.erase(addr) {
                Ok(()) => None,
                Err(e) => Some(self.resume(Err(io_error(e)))),
            },
            Request::Fill { offset, len } => {
                let (o, n) = (offset as usize, len as usize);
                let ok = self
                    .value
                    .map(|v| match v.as_slice().get(o..o + n) {
                        Some(src) => self.store.map(|s| s.io_buf().copy_from_slice(src)).is_some(),
                        None => false,
                    })
                    .unwrap_or(false);
                Some(self.resume(if ok { Ok(()) } else { Err(IoError::Other) }))
            }
            Request::Deliver { offset, len } => {
                let (o, n) = (offset as usize, len as usize);
                let ok = self
                    .value
                    .map(|v| match v.as_mut_slice().get_mut(o..o + n) {
                        Some(dst) => self.store.map(|s| dst.copy_from_slice(s.io_buf())).is_some(),
                        None => false,
                    })
                    .unwrap_or(false);
                Some(self.resume(if ok { Ok(()) } else { Err(IoError::Other) }))
            }
        }
    }

    /// An engine operation finished.
    fn finish(&self, r: Result<Outcome, Error>) {
        let phase = self.phase.replace(Phase::Idle);
        match phase {
            Phase::Mount | Phase::Format => match r {
                Ok(Outcome::Mounted(m)) => {
                    self.mount_state.set(MountState::Mounted);
                    self.maintenance_due.set(true);
                    debug!(
                        "tdbstore: mounted (area {}, version {}, {} keys, log end {:#x}{}{})",
                        m.active_area,
                        m.version,
                        m.keys,
                        m.free_offset,
                        if m.formatted { ", formatted a blank region" } else { "" },
                        if m.torn_tail { ", torn tail: compacting before the next write" } else { "" },
                    );
                }
                Ok(_) | Err(_) => {
                    let e = r.err().unwrap_or(Error::NotMounted);
                    self.mount_state.set(MountState::Failed(e));
                    match e {
                        Error::Foreign => debug!(
                            "tdbstore: mount failed: the region holds no TDBStore and is not blank; \
                             nothing was changed (format it to use it)"
                        ),
                        e => debug!("tdbstore: mount failed: {:?}", e),
                    }
                }
            },
            Phase::Maintain => match r {
                Ok(Outcome::Maintained { more }) => self.maintenance_due.set(more),
                Err(Error::NotMounted) => self.mount_state.set(MountState::Unmounted),
                _ => self.maintenance_due.set(false),
            },
            Phase::User => self.finish_user(r),
            Phase::Idle => {}
        }
        self.next();
    }

    /// Decides what runs next once the engine is idle.
    fn next(&self) {
        if self.phase.get() != Phase::Idle || self.early.is_some() {
            return;
        }
        match self.mount_state.get() {
            MountState::Unmounted => {
                let _ = self.start_engine(Phase::Mount);
            }
            MountState::Failed(_) => {
                if self.op.is_some() {
                    self.fail_user(ErrorCode::FAIL);
                }
            }
            MountState::Mounted => {
                if self.op.is_some() {
                    self.start_user();
                } else if self.maintenance_due.get() {
                    // One step per deferred call keeps the kernel loop responsive.
                    self.deferred_call.set();
                }
            }
        }
    }

    fn finish_user(&self, r: Result<Outcome, Error>) {
        let Some(op) = self.op.get() else { return };
        if r == Err(Error::NotMounted) {
            self.mount_state.set(MountState::Unmounted);
        }
        self.maintenance_due.set(true);
        let result = match (op, r) {
            (Operation::AddCheck, Ok(_)) => Err(ErrorCode::NOSUPPORT),
            (Operation::AddCheck, Err(Error::NotFound)) => {
                self.op.set(Operation::Add);
                return;
            }
            (Operation::UpdateCheck, Ok(_)) => {
                self.op.set(Operation::Update);
                return;
            }
            (Operation::UpdateCheck, Err(Error::NotFound)) => Err(ErrorCode::NOSUPPORT),
            (Operation::Get, Ok(Outcome::Value { size, copied, .. })) => {
                self.value.map(|v| v.slice(..copied as usize));
                if copied < size { Err(ErrorCode::SIZE) } else { Ok(()) }
            }
            (_, Ok(_)) => Ok(()),
            (_, Err(e)) => Err(error_code(e)),
        };
        self.complete_user(op, result);
    }

    fn fail_user(&self, e: ErrorCode) {
        if let Some(op) = self.op.get() {
            self.complete_user(op, Err(e));
        }
    }

    /// Hands the buffers back to the client and clears the operation.
    fn complete_user(&self, op: Operation, result: Result<(), ErrorCode>) {
        self.op.clear();
        if op == Operation::GarbageCollect {
            self.client.map(|c| c.garbage_collection_complete(result));
            return;
        }
        let (Some(key), value) = (self.key.take(), self.value.take()) else { return };
        self.client.map(move |c| match (op, value) {
            (Operation::Get, Some(v)) => c.get_complete(result, key, v),
            (Operation::Set, Some(v)) => c.set_complete(result, key, v),
            (Operation::Add | Operation::AddCheck, Some(v)) => c.add_complete(result, key, v),
            (Operation::Update | Operation::UpdateCheck, Some(v)) => c.update_complete(result, key, v),
            (Operation::Delete, _) => c.delete_complete(result, key),
            _ => {}
        });
    }

    /// Accepts a user operation if none is waiting.
    fn accept(
        &self,
        op: Operation,
        key: SubSliceMut<'static, u8>,
        value: Option<SubSliceMut<'static, u8>>,
    ) -> Result<(), Refused> {
        if self.op.is_some() {
            return Err((key, value, ErrorCode::BUSY));
        }
        if let MountState::Failed(_) = self.mount_state.get() {
            return Err((key, value, ErrorCode::FAIL));
        }
        self.key.replace(key);
        if let Some(v) = value {
            self.value.replace(v);
        }
        self.op.set(op);
        if self.phase.get() == Phase::Idle && self.early.is_none() {
            match self.mount_state.get() {
                MountState::Mounted => self.start_user(),
                _ => self.next(),
            }
        }
        Ok(())
    }

    fn accept_kv(
        &self,
        op: Operation,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept(op, key, Some(value)).map_err(|(k, v, e)| match v {
            Some(v) => (k, v, e),
            // `accept` gives back what it was given.
            None => (k, SubSliceMut::new(&mut []), e),
        })
    }
}

impl<'a, F: NorFlash<'a>> DeferredCallClient for TdbStoreKv<'a, F> {
    fn handle_deferred_call(&self) {
        if let Some(r) = self.early.take() {
            self.finish(r);
            return;
        }
        if self.phase.get() != Phase::Idle {
            return;
        }
        if self.op.is_some() || self.mount_state.get() != MountState::Mounted {
            self.next();
        } else if self.maintenance_due.get() {
            let _ = self.start_engine(Phase::Maintain);
        }
    }

    fn register(&'static self) {
        self.deferred_call.register(self);
    }
}

impl<'a, F: NorFlash<'a>> NorFlashClient for TdbStoreKv<'a, F> {
    fn read_complete(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        let r = match result {
            Ok(()) => {
                let copied = self
                    .store
                    .map(|s| {
                        let io = s.io_buf();
                        match buffer.get(..io.len()) {
                            Some(src) => {
                                io.copy_from_slice(src);
                                true
                            }
                            None => false,
                        }
                    })
                    .unwrap_or(false);
                if copied { Ok(()) } else { Err(IoError::Other) }
            }
            Err(e) => Err(io_error(e)),
        };
        self.flash_buf.replace(buffer);
        let step = self.resume(r);
        self.run(step, false);
    }

    fn program_complete(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.flash_buf.replace(buffer);
        let step = self.resume(result.map_err(io_error));
        self.run(step, false);
    }

    fn erase_complete(&self, result: Result<(), ErrorCode>) {
        let step = self.resume(result.map_err(io_error));
        self.run(step, false);
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
        self.accept_kv(Operation::Get, key, value)
    }

    fn set(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept_kv(Operation::Set, key, value)
    }

    fn add(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept_kv(Operation::AddCheck, key, value)
    }

    fn update(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept_kv(Operation::UpdateCheck, key, value)
    }

    fn delete(&self, key: SubSliceMut<'static, u8>) -> Result<(), (SubSliceMut<'static, u8>, ErrorCode)> {
        self.accept(Operation::Delete, key, None).map_err(|(k, _, e)| (k, e))
    }

    fn garbage_collect(&self) -> Result<(), ErrorCode> {
        if self.op.is_some() {
            return Err(ErrorCode::BUSY);
        }
        if let MountState::Failed(_) = self.mount_state.get() {
            return Err(ErrorCode::FAIL);
        }
        self.op.set(Operation::GarbageCollect);
        if self.phase.get() == Phase::Idle && self.early.is_none() {
            self.next();
        }
        Ok(())
    }
}
