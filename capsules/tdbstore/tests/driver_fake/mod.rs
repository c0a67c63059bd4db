// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Fakes for the KV syscall driver's host tests: processes, and the KV layer below.
//!
//! [`FakeApps`] holds processes with allows, subscriptions and storage permissions that a
//! test changes at any moment; [`FakeKv`] holds each operation until the test completes it.
//!
//! ```text
//! test code: spawn/kill/restart processes, allow, subscribe, command, complete
//!
//! FakeApps (kv_syscall::Apps) --> KvSyscallDriver (under test) --> FakeKv (KVPermissions)
//!    upcalls recorded                                               calls recorded
//! ```
//!
//! A process slot keeps its place in process order when the process restarts, with a new
//! id and fresh driver state, as Tock's process array does.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::num::NonZeroU32;
use std::rc::Rc;

use capsules_tdbstore::kv_syscall::{AppAccess, AppOp, Apps, KvSyscallDriver, KEY_LEN, VALUE_BUF_LEN};
use kernel::capabilities::ApplicationStorageCapability;
use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::errorcode::into_statuscode;
use kernel::hil::kv::{KVClient, KVPermissions};
use kernel::processbuffer::{ReadableProcessSlice, WriteableProcessSlice};
use kernel::storage_permissions::StoragePermissions;
use kernel::utilities::cells::OptionalCell;
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;

use crate::common::{count_deferred_call, leak};

struct Cap;
// SAFETY: test code stands in for the kernel's process loader, which holds this capability.
unsafe impl ApplicationStorageCapability for Cap {}

/// Storage permissions for an app that reads and writes its own records (`write_id`).
pub fn self_only(write_id: u32) -> StoragePermissions {
    StoragePermissions::new_self_only(NonZeroU32::new(write_id).unwrap(), &Cap)
}

/// A process id: a restarted process gets a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pid(pub u32);

/// An upcall as the process would receive it: to the subscription it had when scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upcall {
    pub pid: Pid,
    pub sub: u32,
    pub status: usize,
    pub len: usize,
}

/// The status an upcall carries for `r` (0, or the error code's number).
pub fn status(r: Result<(), ErrorCode>) -> usize {
    into_statuscode(r)
}

struct Proc {
    pid: Pid,
    op: Cell<Option<AppOp>>,
    key: RefCell<Vec<u8>>,
    value: RefCell<Vec<u8>>,
    rw: RefCell<Vec<u8>>,
    sub: Cell<u32>,
    perms: Cell<Option<StoragePermissions>>,
}

/// The processes: slots in process order, each empty or holding a live process.
pub struct FakeApps {
    slots: RefCell<Vec<Option<Rc<Proc>>>>,
    next_pid: Cell<u32>,
    upcalls: Rc<RefCell<Vec<Upcall>>>,
}

/// One entered process.
pub struct FakeAccess {
    proc: Rc<Proc>,
    upcalls: Rc<RefCell<Vec<Upcall>>>,
}

impl AppAccess for FakeAccess {
    fn op(&self) -> Option<AppOp> {
        self.proc.op.get()
    }
    fn set_op(&self, op: Option<AppOp>) {
        self.proc.op.set(op);
    }
    fn read_key<R>(&self, f: impl FnOnce(&ReadableProcessSlice) -> R) -> Option<R> {
        Some(f(self.proc.key.borrow().as_slice().into()))
    }
    fn read_value<R>(&self, f: impl FnOnce(&ReadableProcessSlice) -> R) -> Option<R> {
        Some(f(self.proc.value.borrow().as_slice().into()))
    }
    fn write_value<R>(&self, f: impl FnOnce(&WriteableProcessSlice) -> R) -> Option<R> {
        Some(f(self.proc.rw.borrow_mut().as_mut_slice().into()))
    }
    fn upcall(&self, status: usize, len: usize) {
        let p = &self.proc;
        self.upcalls.borrow_mut().push(Upcall { pid: p.pid, sub: p.sub.get(), status, len });
    }
    fn storage_permissions(&self) -> Option<StoragePermissions> {
        self.proc.perms.get()
    }
}

impl Apps for FakeApps {
    type Id = Pid;
    type Access<'b> = FakeAccess;

    fn enter<R>(&self, id: Pid, f: impl FnOnce(&FakeAccess) -> R) -> Result<R, ErrorCode> {
        let proc = self.find(id).ok_or(ErrorCode::NODEVICE)?;
        Ok(f(&FakeAccess { proc, upcalls: self.upcalls.clone() }))
    }

    fn each(&self, mut f: impl FnMut(Pid, Option<AppOp>)) {
        let procs: Vec<Rc<Proc>> = self.slots.borrow().iter().flatten().cloned().collect();
        for p in procs {
            f(p.pid, p.op.get());
        }
    }
}

impl FakeApps {
    pub fn new() -> FakeApps {
        FakeApps { slots: RefCell::new(Vec::new()), next_pid: Cell::new(1), upcalls: Rc::default() }
    }

    fn find(&self, pid: Pid) -> Option<Rc<Proc>> {
        self.slots.borrow().iter().flatten().find(|p| p.pid == pid).cloned()
    }

    fn proc(&self, pid: Pid) -> Rc<Proc> {
        self.find(pid).unwrap_or_else(|| panic!("{pid:?} is not alive"))
    }

    fn new_proc(&self, perms: Option<StoragePermissions>) -> Rc<Proc> {
        let pid = Pid(self.next_pid.get());
        self.next_pid.set(pid.0 + 1);
        Rc::new(Proc {
            pid,
            op: Cell::new(None),
            key: RefCell::default(),
            value: RefCell::default(),
            rw: RefCell::default(),
            sub: Cell::new(1),
            perms: Cell::new(perms),
        })
    }

    /// A new process in the next slot, with storage permissions for its own records.
    pub fn spawn(&self) -> Pid {
        let p = self.new_proc(None);
        p.perms.set(Some(self_only(100 + p.pid.0)));
        self.slots.borrow_mut().push(Some(p.clone()));
        p.pid
    }

    /// A new process without storage permissions.
    pub fn spawn_without_permissions(&self) -> Pid {
        let p = self.new_proc(None);
        self.slots.borrow_mut().push(Some(p.clone()));
        p.pid
    }

    fn slot_of(&self, pid: Pid) -> usize {
        self.slots.borrow().iter().position(|s| s.as_ref().is_some_and(|p| p.pid == pid)).unwrap()
    }

    /// The process faults or exits: its state and buffers are gone.
    pub fn kill(&self, pid: Pid) {
        let i = self.slot_of(pid);
        self.slots.borrow_mut()[i] = None;
    }

    /// The process restarts in its slot: a new id, no allows, no driver state.
    pub fn restart(&self, pid: Pid) -> Pid {
        let i = self.slot_of(pid);
        let perms = self.proc(pid).perms.get();
        let p = self.new_proc(perms);
        self.slots.borrow_mut()[i] = Some(p.clone());
        p.pid
    }

    pub fn allow_key(&self, pid: Pid, key: &[u8]) {
        *self.proc(pid).key.borrow_mut() = key.to_vec();
    }
    pub fn allow_value(&self, pid: Pid, value: &[u8]) {
        *self.proc(pid).value.borrow_mut() = value.to_vec();
    }
    /// Allows a read-write buffer of `len` bytes, filled with 0xEE.
    pub fn allow_rw(&self, pid: Pid, len: usize) {
        *self.proc(pid).rw.borrow_mut() = vec![0xEE; len];
    }
    /// The read-write buffer's contents.
    pub fn rw(&self, pid: Pid) -> Vec<u8> {
        self.proc(pid).rw.borrow().clone()
    }
    /// Revokes all three allows (what `libtock` does when a call returns).
    pub fn revoke(&self, pid: Pid) {
        let p = self.proc(pid);
        p.key.borrow_mut().clear();
        p.value.borrow_mut().clear();
        p.rw.borrow_mut().clear();
    }
    /// A new subscription to upcall 0: later upcalls carry its number.
    pub fn subscribe(&self, pid: Pid) -> u32 {
        let p = self.proc(pid);
        p.sub.set(p.sub.get() + 1);
        p.sub.get()
    }
    pub fn storage_permissions(&self, pid: Pid) -> Option<StoragePermissions> {
        self.proc(pid).perms.get()
    }

    /// The upcalls scheduled since the last call.
    pub fn take_upcalls(&self) -> Vec<Upcall> {
        self.upcalls.take()
    }
}

/// A call the driver made on the KV layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: AppOp,
    pub key: Vec<u8>,
    /// The value after the permission header (set, add, update).
    pub value: Vec<u8>,
    /// The caller's write id.
    pub write_id: Option<u32>,
}

enum Held {
    KeyValue(SubSliceMut<'static, u8>, SubSliceMut<'static, u8>),
    Key(SubSliceMut<'static, u8>),
    None,
}

/// A KV layer that holds each operation until the test completes it.
pub struct FakeKv {
    client: OptionalCell<&'static dyn KVClient>,
    header: usize,
    pending: RefCell<Option<(AppOp, Held)>>,
    /// Refuses the next call at once with this error.
    pub refuse_next: Cell<Option<ErrorCode>>,
    pub calls: RefCell<Vec<Call>>,
}

impl FakeKv {
    pub fn new(header: usize) -> &'static FakeKv {
        Box::leak(Box::new(FakeKv {
            client: OptionalCell::empty(),
            header,
            pending: RefCell::new(None),
            refuse_next: Cell::new(None),
            calls: RefCell::new(Vec::new()),
        }))
    }

    /// The operation in flight.
    pub fn pending(&self) -> Option<AppOp> {
        self.pending.borrow().as_ref().map(|p| p.0)
    }

    pub fn take_calls(&self) -> Vec<Call> {
        self.calls.take()
    }

    fn begin(
        &self,
        op: AppOp,
        key: Option<&SubSliceMut<'static, u8>>,
        value: Option<&SubSliceMut<'static, u8>>,
        perms: Option<StoragePermissions>,
    ) -> Result<(), ErrorCode> {
        assert!(self.pending.borrow().is_none(), "the driver started {op:?} while another ran");
        let value = match value {
            Some(v) if op != AppOp::Get => v.as_slice()[self.header..].to_vec(),
            _ => Vec::new(),
        };
        self.calls.borrow_mut().push(Call {
            op,
            key: key.map_or(Vec::new(), |k| k.as_slice().to_vec()),
            value,
            write_id: perms.and_then(|p| p.get_write_id()),
        });
        match self.refuse_next.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn kv(
        &self,
        op: AppOp,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
        perms: StoragePermissions,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        match self.begin(op, Some(&key), Some(&value), Some(perms)) {
            Err(e) => Err((key, value, e)),
            Ok(()) => {
                *self.pending.borrow_mut() = Some((op, Held::KeyValue(key, value)));
                Ok(())
            }
        }
    }

    /// Completes the operation in flight with `result`; a `get` finds `value`.
    pub fn complete_with(&self, result: Result<(), ErrorCode>, found: &[u8]) {
        let (op, held) = self.pending.borrow_mut().take().expect("nothing in flight");
        let client = self.client.get().expect("no client");
        match (op, held) {
            (AppOp::Get, Held::KeyValue(k, mut v)) => {
                v.reset();
                v.as_mut_slice()[..found.len()].copy_from_slice(found);
                v.slice(..found.len());
                client.get_complete(result, k, v)
            }
            (AppOp::Set, Held::KeyValue(k, v)) => client.set_complete(result, k, v),
            (AppOp::Add, Held::KeyValue(k, v)) => client.add_complete(result, k, v),
            (AppOp::Update, Held::KeyValue(k, v)) => client.update_complete(result, k, v),
            (AppOp::Delete, Held::Key(k)) => client.delete_complete(result, k),
            (AppOp::GarbageCollect, Held::None) => client.garbage_collection_complete(result),
            _ => unreachable!(),
        }
    }

    pub fn complete(&self, result: Result<(), ErrorCode>) {
        self.complete_with(result, &[]);
    }
}

impl KVPermissions<'static> for FakeKv {
    fn set_client(&self, client: &'static dyn KVClient) {
        self.client.set(client);
    }
    fn get(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
        perms: StoragePermissions,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.kv(AppOp::Get, key, value, perms)
    }
    fn set(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
        perms: StoragePermissions,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.kv(AppOp::Set, key, value, perms)
    }
    fn add(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
        perms: StoragePermissions,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.kv(AppOp::Add, key, value, perms)
    }
    fn update(
        &self,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
        perms: StoragePermissions,
    ) -> Result<(), (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>, ErrorCode)> {
        self.kv(AppOp::Update, key, value, perms)
    }
    fn delete(
        &self,
        key: SubSliceMut<'static, u8>,
        perms: StoragePermissions,
    ) -> Result<(), (SubSliceMut<'static, u8>, ErrorCode)> {
        match self.begin(AppOp::Delete, Some(&key), None, Some(perms)) {
            Err(e) => Err((key, e)),
            Ok(()) => {
                *self.pending.borrow_mut() = Some((AppOp::Delete, Held::Key(key)));
                Ok(())
            }
        }
    }
    fn garbage_collect(&self) -> Result<(), ErrorCode> {
        self.begin(AppOp::GarbageCollect, None, None, None)?;
        *self.pending.borrow_mut() = Some((AppOp::GarbageCollect, Held::None));
        Ok(())
    }
    fn header_size(&self) -> usize {
        self.header
    }
}

/// The driver under test over any KV layer.
pub type Driver<V> = KvSyscallDriver<'static, V, FakeApps>;

/// A driver over `kv` with upstream's buffer sizes, wired as the component wires it.
pub fn driver<V: KVPermissions<'static>>(kv: &'static V) -> &'static Driver<V> {
    count_deferred_call();
    let d: &'static Driver<V> = Box::leak(Box::new(KvSyscallDriver::with_apps(
        kv,
        leak(&[0; KEY_LEN]),
        leak(&[0; VALUE_BUF_LEN]),
        FakeApps::new(),
    )));
    kv.set_client(d);
    d.register();
    d
}

/// Runs the pending deferred calls (the driver starting queued operations).
pub fn run_deferred() {
    for _ in 0..1000 {
        if DeferredCall::service_next_pending().is_none() {
            return;
        }
    }
    panic!("deferred calls never stopped");
}

/// Command numbers (upstream's).
pub mod cmd {
    pub const EXISTS: usize = 0;
    pub const GET: usize = 1;
    pub const SET: usize = 2;
    pub const DELETE: usize = 3;
    pub const ADD: usize = 4;
    pub const UPDATE: usize = 5;
    pub const GC: usize = 6;
}
