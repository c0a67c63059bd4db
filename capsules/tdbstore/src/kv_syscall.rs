// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The KV syscall driver (0x50003) with upstream's ABI, safe against apps that die, fail or
//! flood: a replacement for upstream's `capsules_extra::kv_driver::KVStoreDriver`.
//!
//! ```text
//! apps --command 0..6, allow_ro 0 key / 1 value, allow_rw 0 value, subscribe 0-->
//! +------------------------------------------------------------------+
//! | KvSyscallDriver (this file): one operation per app, round robin   |
//! +------------------------------------------------------------------+
//!    hil::kv::KVPermissions
//! VirtualKVPermissions -> MuxKVPermissions -> KVStorePermissions    (upstream)
//!    hil::kv::KV
//! TdbStoreKv (tdbstore_kv.rs)
//! ```
//!
//! Apps see exactly upstream's interface: command 0 (present), 1 get, 2 set, 3 delete,
//! 4 add, 5 update, 6 garbage collection; read-only allow 0 the key, 1 the value;
//! read-write allow 0 the buffer `get` fills; upcall 0 with (status, value length, 0). The
//! codes are upstream's too: `SIZE` at the call for a key over [`KEY_LEN`] bytes or a value
//! over the value buffer less the permission header (503 bytes); `NOMEM` for a command while
//! the same app's previous one is still outstanding; `INVAL` for an app without storage
//! permissions; in the upcall, what the layers below report. `libtock::key_value`, libtock-c
//! and upstream's tests work unchanged.
//!
//! Why not upstream's driver (`capsules/extra/src/kv_driver.rs` at the pinned revision), as
//! found reading it for the end-to-end load, fuzz and fault tests of `boards/qemu_rv32_virt_kv`
//! (1 and 5 seen there: with upstream's driver, the dying app alone never got past its first
//! restart, and under load the workers saw `BUSY`):
//!
//! 1. **An app that dies during a `get` wedges the store for every app.** Its
//!    `get_complete` puts the value buffer back only inside `apps.enter(...)` of the app
//!    that asked; once that app has faulted, restarted (a new `ProcessId`) or exited, the
//!    closure never runs and the buffer is gone. From then on every `set` answers `NOMEM`
//!    and the next `get` "starts" without a buffer, drops the key buffer and leaves the
//!    driver marked busy forever. Here buffers come back before the app is looked up.
//! 2. **A refused command stays pending.** A command that fails at the call leaves its
//!    operation in the app's grant: the driver retries it whenever another app's operation
//!    completes, with whatever buffers the app has allowed by then (`libtock` has revoked
//!    them: the retry sets or deletes the app's empty key), and answers the app's next
//!    command with `NOMEM` while another app's operation is in flight. Here a refused
//!    command leaves nothing behind.
//! 3. **A queued command that fails when it starts is never answered.** Upstream's queue
//!    drops the error and leaves the operation pending; the app, told `Ok` at the call,
//!    waits for an upcall that never comes. Here it gets the error in its upcall.
//! 4. **Process order decides who runs next.** Upstream scans the apps from the first
//!    process each time, so low-index apps that keep the queue busy can starve the others.
//!    Here the next operation is the first pending one after the app served last.
//! 5. **Starting the next operation inside a completion re-issues garbage collection.**
//!    Upstream's `MuxKVPermissions` (`capsules/extra/src/virtualizers/virtual_kv.rs`) calls
//!    `do_next_op` after its client's completion returns; a garbage collection the client
//!    started inside that completion is then started a second time, refused `BUSY` by
//!    `KVStorePermissions`, and reported to the app as failed while it runs. Here the next
//!    operation starts from a deferred call, after the layers below have unwound.
//!
//! Apps are served round robin, one operation each per round, except garbage collection
//! (command 6): a collection copies every live record and erases an area, so a queued one lets
//! up to [`GC_PATIENCE`] other operations go first; an app collecting in a loop then slows the
//! others by one collection per 16 operations, not one per round.
//!
//! Every app's requests go through this one driver and one `VirtualKVPermissions`, so no
//! app ever sees the `MuxKVPermissions` `BUSY` that depends on which virtual client was set
//! up first: every app is queued here (one operation each), never refused for another's.
//!
//! **A queued operation reads the app's allows when it starts, not at the command, and its
//! upcall goes to whatever the app has subscribed when it completes** (upstream's ABI: its
//! driver does the same). The command checks the allows it sees (`SIZE`) and queues the
//! operation; nothing is copied until it starts. So an app that gives up on a call (e.g. a
//! `libtock` call whose future was dropped), revokes its buffers and starts a new call while
//! the old operation is still queued has the old operation run with the new call's key (and
//! value), and its upcall delivered to the new call's subscription; the new call's own
//! command meanwhile gets `NOMEM`. An app that needs to know which operation answered must
//! not issue a new one before the old one's upcall.
//!
//! # Structure
//!
//! The driver's decisions are in [`KvSyscallDriver`], over two traits: [`Apps`] (the apps in
//! process order, entered one at a time) and [`AppAccess`] (one app's outstanding operation,
//! allows, upcall and storage permissions). [`GrantApps`] (`kv_syscall/grant_apps.rs`)
//! implements them over Tock's `Grant` and holds the `SyscallDriver` impl; host tests
//! (`tests/kv_syscall.rs`) bring fake processes instead. The driver depends only on the
//! kernel's `hil::kv`, never on the store below it.

use core::cell::Cell;
use core::cmp;

use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::errorcode::into_statuscode;
use kernel::hil::kv::{KVClient, KVPermissions};
use kernel::processbuffer::{ReadableProcessSlice, WriteableProcessSlice};
use kernel::storage_permissions::StoragePermissions;
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;

mod grant_apps;
pub use grant_apps::{App, AppGrant, GrantApp, GrantApps};

/// The longest key, as upstream's driver (`components::kv`'s 64-byte key buffer).
pub const KEY_LEN: usize = 64;
/// The value buffer, as upstream's driver: the permission header and the value.
pub const VALUE_BUF_LEN: usize = 512;

/// One app operation: what the driver command asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppOp {
    Get,
    Set,
    Delete,
    Add,
    Update,
    GarbageCollect,
}

impl AppOp {
    fn from_command(n: usize) -> Option<Self> {
        match n {
            1 => Some(Self::Get),
            2 => Some(Self::Set),
            3 => Some(Self::Delete),
            4 => Some(Self::Add),
            5 => Some(Self::Update),
            6 => Some(Self::GarbageCollect),
            _ => None,
        }
    }

    fn has_value(self) -> bool {
        matches!(self, Self::Set | Self::Add | Self::Update)
    }
}

/// What the driver sees of one app while it is entered.
///
/// Its outstanding operation, its allows, its upcall and its storage permissions.
/// [`GrantApp`] is Tock's (a grant and the process's buffers); host tests bring a fake.
pub trait AppAccess {
    /// The app's one outstanding operation, queued or running.
    fn op(&self) -> Option<AppOp>;
    fn set_op(&self, op: Option<AppOp>);
    /// Runs `f` over the read-only key allow (0); `None` when it cannot be entered.
    fn read_key<R>(&self, f: impl FnOnce(&ReadableProcessSlice) -> R) -> Option<R>;
    /// Runs `f` over the read-only value allow (1); `None` when it cannot be entered.
    fn read_value<R>(&self, f: impl FnOnce(&ReadableProcessSlice) -> R) -> Option<R>;
    /// Runs `f` over the read-write value allow (0); `None` when it cannot be entered.
    fn write_value<R>(&self, f: impl FnOnce(&WriteableProcessSlice) -> R) -> Option<R>;
    /// Schedules upcall 0 with `(status, len, 0)` to whatever the app has subscribed now.
    fn upcall(&self, status: usize, len: usize);
    /// The app's storage permissions (`None`: it has none and may not use the store).
    fn storage_permissions(&self) -> Option<StoragePermissions>;
}

/// The apps the driver serves, in process order. [`GrantApps`] is Tock's (a `Grant`).
pub trait Apps {
    /// Which app: a `ProcessId` in Tock; a process that restarts gets a new one.
    type Id: Copy + PartialEq;
    type Access<'b>: AppAccess;
    /// Runs `f` over the app's state; `Err` when the app no longer exists.
    fn enter<R>(&self, id: Self::Id, f: impl FnOnce(&Self::Access<'_>) -> R) -> Result<R, ErrorCode>;
    /// Calls `f` with every app that has state here and its outstanding operation, in
    /// process order.
    fn each(&self, f: impl FnMut(Self::Id, Option<AppOp>));
}

/// The driver, over the KV layer `V` and the apps `A` (Tock's grant by default).
pub struct KvSyscallDriver<'a, V: KVPermissions<'a>, A: Apps = GrantApps> {
    kv: &'a V,
    apps: A,
    /// The app whose operation is running below.
    active: OptionalCell<A::Id>,
    /// The app served last: the round robin starts after it.
    last: OptionalCell<A::Id>,
    key_buf: TakeCell<'static, [u8]>,
    value_buf: TakeCell<'static, [u8]>,
    /// Starts queued operations outside the layers' completion calls.
    deferred: DeferredCall,
    /// Other operations started while a garbage collection waited.
    gc_passed: Cell<u32>,
    /// A deferred call to start the next operation is pending: new commands queue behind
    /// the ones already waiting.
    starting: Cell<bool>,
    /// Operations queued while another ran (for the board's figures).
    queued: Cell<u32>,
}

/// How many other apps' operations a queued garbage collection lets go first.
///
/// A collection copies every live record and erases an area, a hundred times the work of an operation: an
/// app collecting in a loop would otherwise take most of the store's time.
pub const GC_PATIENCE: u32 = 16;

/// At most this many queued operations are tried per start (each either starts or is
/// answered with its error).
const MAX_STARTS: usize = 64;

impl<'a, V: KVPermissions<'a>, A: Apps> KvSyscallDriver<'a, V, A> {
    /// A driver over `kv` and `apps` with upstream's buffer sizes (`key_buf` of [`KEY_LEN`],
    /// `value_buf` of [`VALUE_BUF_LEN`]). The board sets it as `kv`'s client and registers
    /// its deferred call.
    pub fn with_apps(kv: &'a V, key_buf: &'static mut [u8], value_buf: &'static mut [u8], apps: A) -> Self {
        Self {
            kv,
            apps,
            active: OptionalCell::empty(),
            last: OptionalCell::empty(),
            key_buf: TakeCell::new(key_buf),
            value_buf: TakeCell::new(value_buf),
            deferred: DeferredCall::new(),
            gc_passed: Cell::new(0),
            starting: Cell::new(false),
            queued: Cell::new(0),
        }
    }

    /// How many operations waited for another app's since boot.
    pub fn queued_count(&self) -> u32 {
        self.queued.get()
    }

    /// The apps this driver serves.
    pub fn apps(&self) -> &A {
        &self.apps
    }

    /// What the app's allowed buffers say about `op`, checked the same way at the call and
    /// when a queued operation starts: `SIZE` for a key or value that cannot fit.
    fn check(&self, op: AppOp, app: &impl AppAccess) -> Result<(), ErrorCode> {
        if op == AppOp::GarbageCollect {
            return Ok(());
        }
        let key_len = app.read_key(|k| k.len()).unwrap_or(0);
        if key_len > KEY_LEN {
            return Err(ErrorCode::SIZE);
        }
        if op.has_value() {
            let value_len = app.read_value(|v| v.len()).unwrap_or(0);
            if value_len > VALUE_BUF_LEN.saturating_sub(self.kv.header_size()) {
                return Err(ErrorCode::SIZE);
            }
        }
        Ok(())
    }

    /// Copies the app's key (and value) into the driver's buffers and hands `op` down. On
    /// `Err` nothing is in flight and the buffers are back.
    fn start(&self, op: AppOp, app: &impl AppAccess) -> Result<(), ErrorCode> {
        self.check(op, app)?;
        let perms = app.storage_permissions().ok_or(ErrorCode::INVAL)?;
        if op == AppOp::GarbageCollect {
            return self.kv.garbage_collect();
        }
        let (key_buf, value_buf) = match (self.key_buf.take(), self.value_buf.take()) {
            (Some(k), Some(v)) => (k, v),
            (k, v) => {
                // Not expected: buffers are returned before any app is looked up.
                k.map(|k| self.key_buf.replace(k));
                v.map(|v| self.value_buf.replace(v));
                return Err(ErrorCode::NOMEM);
            }
        };
        let key_len = app
            .read_key(|key| {
                let n = cmp::min(key.len(), key_buf.len());
                key[..n].copy_to_slice(&mut key_buf[..n]);
                n
            })
            .unwrap_or(0);
        let header = self.kv.header_size();
        let value_len = if op.has_value() {
            app.read_value(|value| {
                let n = cmp::min(value.len(), value_buf.len().saturating_sub(header));
                value[..n].copy_to_slice(&mut value_buf[header..header + n]);
                n
            })
            .unwrap_or(0)
        } else {
            0
        };
        let mut key = SubSliceMut::new(key_buf);
        key.slice(..key_len);
        let mut value = SubSliceMut::new(value_buf);
        if op.has_value() {
            value.slice(..header + value_len);
        }
        let restore = |k: SubSliceMut<'static, u8>, v: SubSliceMut<'static, u8>, e| {
            self.key_buf.replace(k.take());
            self.value_buf.replace(v.take());
            e
        };
        match op {
            AppOp::Get => self.kv.get(key, value, perms).map_err(|(k, v, e)| restore(k, v, e)),
            AppOp::Set => self.kv.set(key, value, perms).map_err(|(k, v, e)| restore(k, v, e)),
            AppOp::Add => self.kv.add(key, value, perms).map_err(|(k, v, e)| restore(k, v, e)),
            AppOp::Update => self.kv.update(key, value, perms).map_err(|(k, v, e)| restore(k, v, e)),
            AppOp::Delete => {
                self.value_buf.replace(value.take());
                self.kv.delete(key, perms).map_err(|(k, e)| {
                    self.key_buf.replace(k.take());
                    e
                })
            }
            // Handled above.
            AppOp::GarbageCollect => Ok(()),
        }
    }

    /// Schedules the next queued operation, if nothing runs.
    fn schedule_next(&self) {
        if self.active.is_none() {
            self.starting.set(true);
            self.deferred.set();
        }
    }

    /// Starts the first queued operation after the app served last, answering in its upcall
    /// any that cannot start, until one runs or none is left (bounded: an app that cannot be
    /// entered is skipped, never retried forever).
    fn start_next(&self) {
        self.starting.set(false);
        for _ in 0..MAX_STARTS {
            if self.active.is_some() {
                return;
            }
            let Some(next) = self.next_pending() else { return };
            self.last.set(next);
            let _ = self.apps.enter(next, |app| {
                let Some(op) = app.op() else { return };
                match self.start(op, app) {
                    Ok(()) => self.active.set(next),
                    Err(e) => {
                        app.set_op(None);
                        app.upcall(into_statuscode(Err(e)), 0);
                    }
                }
            });
        }
    }

    /// The app whose queued operation runs next: the first after `last` in process order,
    /// except that a garbage collection waits behind other apps' operations, up to
    /// [`GC_PATIENCE`] of them.
    fn next_pending(&self) -> Option<A::Id> {
        let last = self.last.get();
        let mut seen_last = false;
        // (first after `last`, first overall), for other operations and for collections.
        let mut other: (Option<A::Id>, Option<A::Id>) = (None, None);
        let mut gc: (Option<A::Id>, Option<A::Id>) = (None, None);
        self.apps.each(|id, op| {
            if let Some(op) = op.filter(|_| Some(id) != self.active.get()) {
                let slot = if op == AppOp::GarbageCollect { &mut gc } else { &mut other };
                if seen_last && slot.0.is_none() {
                    slot.0 = Some(id);
                }
                slot.1.get_or_insert(id);
            }
            if Some(id) == last {
                seen_last = true;
            }
        });
        let other = other.0.or(other.1);
        let gc = gc.0.or(gc.1);
        match (other, gc) {
            (Some(o), Some(_)) if self.gc_passed.get() < GC_PATIENCE => {
                self.gc_passed.set(self.gc_passed.get() + 1);
                Some(o)
            }
            (_, Some(g)) => {
                self.gc_passed.set(0);
                Some(g)
            }
            (o, None) => o,
        }
    }

    /// The running operation ended: answer its app (if it still exists), then run the next.
    /// The buffers are already back.
    fn finish(&self, op: AppOp, result: Result<(), ErrorCode>, value: Option<&SubSliceMut<'static, u8>>) {
        if let Some(id) = self.active.take() {
            let _ = self.apps.enter(id, |app| {
                if app.op() != Some(op) {
                    return;
                }
                app.set_op(None);
                let (status, len) = match (result, value) {
                    (Ok(()), Some(v)) => {
                        let len = v.len();
                        let copied = app
                            .write_value(|out| {
                                let n = cmp::min(len, out.len());
                                out[..n].copy_from_slice(&v.as_slice()[..n]);
                                n == len
                            })
                            .unwrap_or(false);
                        // A value longer than the app's buffer: its first bytes, and SIZE.
                        let r = if copied { Ok(()) } else { Err(ErrorCode::SIZE) };
                        (into_statuscode(r), len)
                    }
                    _ => (into_statuscode(result), 0),
                };
                app.upcall(status, len);
            });
        }
        self.schedule_next();
    }

    /// A driver command (`command_num`, upstream's numbering) from app `id`: `Ok` when it is
    /// running or queued (its upcall follows), else the error the app's command returns.
    pub fn app_command(&self, command_num: usize, id: A::Id) -> Result<(), ErrorCode> {
        if command_num == 0 {
            return Ok(());
        }
        let op = AppOp::from_command(command_num).ok_or(ErrorCode::NOSUPPORT)?;
        self.apps
            .enter(id, |app| {
                if app.op().is_some() {
                    // This app's previous operation is still outstanding (upstream's code).
                    return Err(ErrorCode::NOMEM);
                }
                if app.storage_permissions().is_none() {
                    return Err(ErrorCode::INVAL);
                }
                if self.active.is_some() || self.starting.get() || self.key_buf.is_none() {
                    // Another app's operation runs: queue, after checking what can be checked now.
                    self.check(op, app)?;
                    app.set_op(Some(op));
                    self.queued.set(self.queued.get().wrapping_add(1));
                    return Ok(());
                }
                self.start(op, app)?;
                app.set_op(Some(op));
                self.active.set(id);
                self.last.set(id);
                Ok(())
            })
            .and_then(|r| r)
    }
}

impl<'a, V: KVPermissions<'a>, A: Apps> KvSyscallDriver<'a, V, A> {
    /// The end of a set, add or update: both buffers come back before the app is looked
    /// up (it may have died meanwhile), then the app hears the result.
    fn write_complete(
        &self,
        op: AppOp,
        result: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) {
        self.key_buf.replace(key.take());
        self.value_buf.replace(value.take());
        self.finish(op, result, None);
    }
}

impl<'a, V: KVPermissions<'a>, A: Apps> KVClient for KvSyscallDriver<'a, V, A> {
    fn get_complete(
        &self,
        result: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) {
        self.key_buf.replace(key.take());
        self.finish(AppOp::Get, result, Some(&value));
        self.value_buf.replace(value.take());
    }

    fn set_complete(
        &self,
        result: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) {
        self.write_complete(AppOp::Set, result, key, value);
    }

    fn add_complete(
        &self,
        result: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) {
        self.write_complete(AppOp::Add, result, key, value);
    }

    fn update_complete(
        &self,
        result: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) {
        self.write_complete(AppOp::Update, result, key, value);
    }

    fn delete_complete(&self, result: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>) {
        self.key_buf.replace(key.take());
        self.finish(AppOp::Delete, result, None);
    }

    fn garbage_collection_complete(&self, result: Result<(), ErrorCode>) {
        self.finish(AppOp::GarbageCollect, result, None);
    }
}

impl<'a, V: KVPermissions<'a>, A: Apps> DeferredCallClient for KvSyscallDriver<'a, V, A> {
    fn handle_deferred_call(&self) {
        self.start_next();
    }

    fn register(&'static self) {
        self.deferred.register(self);
    }
}
