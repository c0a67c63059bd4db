// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Fake of the kernel's KV syscall driver (0x50003) over a shared store, with storage
//! permissions.
//!
//! ```text
//! +----------------------------------------------+
//! | libtock_key_value::KeyValue<fake::Syscalls>  |
//! +----------------------------------------------+
//!    syscalls: KV driver 0x50003
//! +----------------------------------------------+
//! | KeyValue (this file): KVStoreDriver +        |
//! | KVStorePermissions semantics                 |
//! +----------------------------------------------+
//! | Store (this file): key -> (write id, value)  |
//! +----------------------------------------------+
//! ```
//!
//! # The syscall interface (`capsules/extra/src/kv_driver.rs`)
//!
//! | syscall | number | meaning |
//! |---|---|---|
//! | command | 0 | driver present: success |
//! | command | 1 / 2 / 3 / 4 / 5 / 6 | get / set / delete / add / update / garbage collect |
//! | allow read-only | 0 | key |
//! | allow read-only | 1 | value to write (set, add, update) |
//! | allow read-write | 0 | value read by get |
//! | subscribe | 0 | completion: `(status, value length for get, 0)` |
//!
//! Other command numbers fail with `NOSUPPORT`.
//!
//! # Return values
//!
//! Refused at the command (synchronous `CommandReturn` failure, no upcall):
//!
//! | error | when |
//! |---|---|
//! | `SIZE` | key longer than the driver's key buffer (64 bytes); value longer than the value buffer less the 9-byte header (503 bytes) |
//! | `INVAL` | set / add / update by a process without write permission (no TBF `write_id`, or no fixed ShortId) |
//! | injected | [`KeyValue::fail_next`] with [`Failure::Command`] |
//!
//! Completed through the upcall `(status, len, 0)`:
//!
//! | op | status | len |
//! |---|---|---|
//! | get | `SUCCESS`: copied whole | value length (header excluded) |
//! | get | `SIZE`: the app's buffer is shorter than the value; the first `buffer.len()` bytes were copied | full value length |
//! | get | `SIZE`: the stored record is longer than the kernel's 512-byte value buffer; nothing copied | 0 |
//! | get | `NOSUPPORT`: no such key, **or** the caller may not read it (the kernel does not distinguish) | 0 |
//! | set | `SUCCESS`; `NOSUPPORT`: the key exists and the caller may not modify it | 0 |
//! | add | `SUCCESS`; `NOSUPPORT`: the key exists (no permission check: add never overwrites) | 0 |
//! | update | `SUCCESS`; `NOSUPPORT`: no such key, or the caller may not modify it | 0 |
//! | delete | `SUCCESS`; `NOSUPPORT`: no such key, or the caller may not modify it | 0 |
//! | set / add / update | `NOMEM`: the store is full ([`Store::set_capacity`]) | 0 |
//! | garbage collect | `SUCCESS` | 0 |
//!
//! A successful set / add / update stores the value under the caller's write id, which is the
//! process's ShortId (not the number in the TBF `write_id` field: that only grants write
//! permission; see [`Permissions::from_tbf`]).
//!
//! Keys are any bytes, 0 to 64 of them: the upstream driver passes a zero-length key (also
//! what it reads when no key buffer is allowed) down to the store, and this project's capsule
//! maps every key, the empty one and those with bytes Mbed forbids included, onto a stored
//! key (`tdbstore::app_key`); the fake, like the kernel, treats them all as keys.
//!
//! The kernel copies the key (and the value to write) when the command is issued, so the
//! operation does not depend on the buffers staying allowed; only `get`'s read-write buffer is
//! used at completion. The fake completes every operation at the command and queues the
//! upcall, which the app receives at its next yield: the order the app observes is the
//! kernel's.

use core::cell::RefCell;
use core::num::NonZeroU32;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use libtock_platform::{CommandReturn, ErrorCode};
use libtock_unittest::{command_return, DriverInfo, DriverShareRef, RoAllowBuffer, RwAllowBuffer};

/// The KV driver's number (`capsules_core::driver::NUM::Kv`).
pub const DRIVER_NUM: u32 = 0x50003;

/// Command numbers.
pub mod command {
    /// Driver present.
    pub const EXISTS: u32 = 0;
    /// Get.
    pub const GET: u32 = 1;
    /// Set (create or overwrite).
    pub const SET: u32 = 2;
    /// Delete.
    pub const DELETE: u32 = 3;
    /// Add (create only).
    pub const ADD: u32 = 4;
    /// Update (overwrite only).
    pub const UPDATE: u32 = 5;
    /// Garbage collect.
    pub const GARBAGE_COLLECT: u32 = 6;
}

/// Read-only allow numbers.
pub mod allow_ro {
    /// The key.
    pub const KEY: u32 = 0;
    /// The value to write.
    pub const VALUE: u32 = 1;
}

/// Read-write allow numbers.
pub mod allow_rw {
    /// The buffer `get` fills.
    pub const VALUE: u32 = 0;
}

/// The single upcall: `(status, value length, 0)`.
pub const UPCALL: u32 = 0;

/// Length of the header `KVStorePermissions` stores in front of every value:
/// `version: u8 (0), length: u32 LE, write_id: u32 LE`.
pub const HEADER_LENGTH: usize = 9;

/// The header version `KVStorePermissions` writes and accepts.
const HEADER_VERSION: u8 = 0;

/// Buffer sizes of the kernel's KV driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes (the driver's key buffer).
    pub key_buffer: usize,
    /// The driver's value buffer: a stored record (header and value) up to this size can be
    /// read; a written value may be this size less [`HEADER_LENGTH`].
    pub value_buffer: usize,
}

impl Limits {
    /// The sizes `components::kv::KVDriverComponent` gives the driver upstream (and on this
    /// project's boards): a 64-byte key buffer and a 512-byte value buffer.
    pub const UPSTREAM: Limits = Limits { key_buffer: 64, value_buffer: 512 };

    /// Longest value an app can write.
    pub fn max_value_len(&self) -> usize {
        self.value_buffer.saturating_sub(HEADER_LENGTH)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::UPSTREAM
    }
}

/// One stored key: the id of the process that wrote it and the value (without the header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The writer's storage id (its ShortId; 0 for the kernel).
    pub write_id: u32,
    /// The value as the app wrote it.
    pub value: Vec<u8>,
}

impl Record {
    /// The bytes the permission layer hands to the store (`hil::kv::KV`): header, then value.
    pub fn stored_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LENGTH + self.value.len());
        b.push(HEADER_VERSION);
        b.extend_from_slice(&(self.value.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.write_id.to_le_bytes());
        b.extend_from_slice(&self.value);
        b
    }

    fn stored_len(&self) -> usize {
        HEADER_LENGTH + self.value.len()
    }
}

/// The key-value store shared by every simulated process (and by test code, which can seed
/// and inspect it directly).
#[derive(Debug, Default)]
pub struct Store {
    records: RefCell<BTreeMap<Vec<u8>, Record>>,
    capacity: RefCell<Option<usize>>,
}

impl Store {
    /// An empty store without a capacity limit.
    pub fn new() -> Rc<Store> {
        Rc::new(Store::default())
    }

    /// The record under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Record> {
        self.records.borrow().get(key).cloned()
    }

    /// Stores `value` under `key` as written by `write_id` (0 = the kernel), bypassing
    /// permissions, as another process or a provisioning tool would have.
    pub fn insert(&self, key: &[u8], write_id: u32, value: &[u8]) {
        self.records.borrow_mut().insert(key.to_vec(), Record { write_id, value: value.to_vec() });
    }

    /// Removes `key`, bypassing permissions.
    pub fn remove(&self, key: &[u8]) -> Option<Record> {
        self.records.borrow_mut().remove(key)
    }

    /// All keys, in byte order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.records.borrow().keys().cloned().collect()
    }

    /// Limits the bytes the store holds (sum over records of key length + header + value);
    /// a write that would exceed it completes with `NOMEM`. `None` removes the limit.
    pub fn set_capacity(&self, capacity: Option<usize>) {
        *self.capacity.borrow_mut() = capacity;
    }

    /// Whether replacing `key`'s record by one with a `value_len`-byte value fits.
    fn fits(&self, key: &[u8], value_len: usize) -> bool {
        let Some(capacity) = *self.capacity.borrow() else { return true };
        let used: usize = self
            .records
            .borrow()
            .iter()
            .filter(|(k, _)| k.as_slice() != key)
            .map(|(k, r)| k.len() + r.stored_len())
            .sum();
        used + key.len() + HEADER_LENGTH + value_len <= capacity
    }
}

/// A process's storage permissions, as `kernel::storage_permissions::StoragePermissions`
/// decides them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions(Kind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// `StoragePermissions::new_null()`: no reads, no writes.
    Null,
    /// `StoragePermissions::new_fixed_size(..)` with `read_modify_self = false`.
    Fixed { app_id: NonZeroU32, write_allowed: bool, read_ids: Vec<u32>, modify_ids: Vec<u32> },
}

/// How many read / modify ids the kernel keeps (`NUM_STORAGE_PERMISSIONS` in `tock-tbf`).
const MAX_IDS: usize = 8;

impl Permissions {
    /// The permissions `TbfHeaderStoragePermissions` (capsules/system) gives a process whose
    /// ShortId is `short_id` and whose TBF storage-permissions header holds `write_id`,
    /// `read_ids` and `access_ids`, as elf2tab's `--write_id`, `--read_ids`, `--access_ids`
    /// write them:
    ///
    /// - `short_id` 0 stands for `ShortId::LocallyUnique`: null permissions.
    /// - The process writes under its ShortId. `write_id` only decides *whether* it may
    ///   write (non-zero); its value is not used.
    /// - `read_modify_self` is false: a process reads or modifies its own keys only if its
    ///   own id is in `read_ids` / `access_ids`.
    /// - Id 0 (the kernel's) in a list grants nothing; at most 8 ids per list count.
    ///
    /// This project's TABs set `--short-id` to the `write_id`, so with the board's
    /// `AppIdAssignerTbfHeader` the two agree.
    pub fn from_tbf(short_id: u32, write_id: u32, read_ids: &[u32], access_ids: &[u32]) -> Permissions {
        match NonZeroU32::new(short_id) {
            None => Permissions::null(),
            Some(app_id) => Permissions(Kind::Fixed {
                app_id,
                write_allowed: write_id != 0,
                read_ids: read_ids.iter().copied().take(MAX_IDS).collect(),
                modify_ids: access_ids.iter().copied().take(MAX_IDS).collect(),
            }),
        }
    }

    /// No storage access at all (no fixed ShortId, or no storage-permissions TBF header).
    pub fn null() -> Permissions {
        Permissions(Kind::Null)
    }

    /// The id this process's writes are stored under, if it may write.
    pub fn write_id(&self) -> Option<u32> {
        match &self.0 {
            Kind::Null => None,
            Kind::Fixed { app_id, write_allowed, .. } => write_allowed.then_some(app_id.get()),
        }
    }

    /// `check_read_permission(stored_id)`.
    pub fn can_read(&self, stored_id: u32) -> bool {
        match &self.0 {
            Kind::Null => false,
            Kind::Fixed { read_ids, .. } => stored_id != 0 && read_ids.contains(&stored_id),
        }
    }

    /// `check_modify_permission(stored_id)`.
    pub fn can_modify(&self, stored_id: u32) -> bool {
        match &self.0 {
            Kind::Null => false,
            Kind::Fixed { modify_ids, .. } => stored_id != 0 && modify_ids.contains(&stored_id),
        }
    }
}

/// How an operation ended, as the app saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The command failed; no upcall.
    Refused(ErrorCode),
    /// The command succeeded and the upcall `(status, len, 0)` was queued.
    Upcall {
        /// `Ok(())` for `SUCCESS`, else the error code.
        status: Result<(), ErrorCode>,
        /// The upcall's second argument (the value length for `get`).
        len: u32,
    },
}

/// One operation the driver saw (command numbers 1 to 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The command number ([`command`]).
    pub command: u32,
    /// The key as copied in at the command.
    pub key: Vec<u8>,
    /// How it ended.
    pub completion: Completion,
}

/// An error to inject into the next operation with a given command number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Fail the command itself (e.g. `BUSY`, `NOMEM` when the driver's queue is full).
    Command(ErrorCode),
    /// Accept the command, leave the store alone and complete with this status (e.g. `FAIL`
    /// for a flash error).
    Upcall(ErrorCode),
}

/// The KV driver as one process sees it.
pub struct KeyValue {
    store: Rc<Store>,
    permissions: RefCell<Permissions>,
    limits: Limits,
    key: RefCell<RoAllowBuffer>,
    value_in: RefCell<RoAllowBuffer>,
    value_out: RefCell<RwAllowBuffer>,
    share_ref: DriverShareRef,
    injected: RefCell<VecDeque<(u32, Failure)>>,
    log: RefCell<Vec<Op>>,
}

impl KeyValue {
    /// A driver over `store` for a process with `permissions` and the upstream limits.
    pub fn new(store: &Rc<Store>, permissions: Permissions) -> Rc<KeyValue> {
        KeyValue::with_limits(store, permissions, Limits::UPSTREAM)
    }

    /// As [`KeyValue::new`] with other buffer sizes.
    pub fn with_limits(store: &Rc<Store>, permissions: Permissions, limits: Limits) -> Rc<KeyValue> {
        Rc::new(KeyValue {
            store: Rc::clone(store),
            permissions: RefCell::new(permissions),
            limits,
            key: Default::default(),
            value_in: Default::default(),
            value_out: Default::default(),
            share_ref: Default::default(),
            injected: Default::default(),
            log: Default::default(),
        })
    }

    /// The store this driver works on.
    pub fn store(&self) -> &Rc<Store> {
        &self.store
    }

    /// Replaces the process's permissions (as a different TBF header would).
    pub fn set_permissions(&self, permissions: Permissions) {
        *self.permissions.borrow_mut() = permissions;
    }

    /// Makes the next operation with command number `command` fail with `failure`. Several
    /// injections queue up in order.
    pub fn fail_next(&self, command: u32, failure: Failure) {
        self.injected.borrow_mut().push_back((command, failure));
    }

    /// The operations seen so far, oldest first; clears the log.
    pub fn take_log(&self) -> Vec<Op> {
        core::mem::take(&mut *self.log.borrow_mut())
    }

    fn take_injected(&self, command: u32) -> Option<Failure> {
        let mut injected = self.injected.borrow_mut();
        let i = injected.iter().position(|(c, _)| *c == command)?;
        injected.remove(i).map(|(_, f)| f)
    }

    fn complete(&self, status: Result<(), ErrorCode>, len: u32) -> Completion {
        let code = match status {
            Ok(()) => 0,
            Err(e) => e as u32,
        };
        // Like the kernel, an upcall nobody subscribed to is dropped.
        let _ = self.share_ref.schedule_upcall(UPCALL, (code, len, 0));
        Completion::Upcall { status, len }
    }

    /// `get_complete` of the driver after the permission layer: copy what fits.
    fn get(&self, key: &[u8]) -> Completion {
        let permissions = self.permissions.borrow();
        let record = match self.store.get(key) {
            Some(r) if permissions.can_read(r.write_id) => r,
            // Absent, or present but not readable: the same answer, by design.
            _ => return self.complete(Err(ErrorCode::NoSupport), 0),
        };
        if record.stored_len() > self.limits.value_buffer {
            // The store itself returned SIZE into the kernel's buffer: the driver reports it
            // without copying anything.
            return self.complete(Err(ErrorCode::Size), 0);
        }
        let mut out = self.value_out.borrow_mut();
        let n = out.len().min(record.value.len());
        out[..n].copy_from_slice(&record.value[..n]);
        let status = if n < record.value.len() { Err(ErrorCode::Size) } else { Ok(()) };
        self.complete(status, record.value.len() as u32)
    }

    /// `KVStorePermissions::insert` and its `get_complete` for set / add / update.
    fn insert(&self, command: u32, key: &[u8], value: &[u8], write_id: u32) -> Completion {
        let permissions = self.permissions.borrow();
        let existing = self.store.get(key);
        let allowed = match (command, &existing) {
            // A key nobody wrote can be created by set; add never checks permissions.
            (command::SET, None) | (command::ADD, None) => true,
            (command::SET, Some(r)) | (command::UPDATE, Some(r)) => permissions.can_modify(r.write_id),
            // add on an existing key, update on a missing one.
            _ => false,
        };
        if !allowed {
            return self.complete(Err(ErrorCode::NoSupport), 0);
        }
        if !self.store.fits(key, value.len()) {
            return self.complete(Err(ErrorCode::NoMem), 0);
        }
        self.store.insert(key, write_id, value);
        self.complete(Ok(()), 0)
    }

    fn delete(&self, key: &[u8]) -> Completion {
        let permissions = self.permissions.borrow();
        match self.store.get(key) {
            Some(r) if permissions.can_modify(r.write_id) => {
                self.store.remove(key);
                self.complete(Ok(()), 0)
            }
            _ => self.complete(Err(ErrorCode::NoSupport), 0),
        }
    }

    /// One of commands 1..=6: what `KVStoreDriver::run` checks before the operation starts,
    /// then the operation.
    fn operation(&self, command: u32) -> (Vec<u8>, Completion) {
        let key = self.key.borrow().to_vec();
        if key.len() > self.limits.key_buffer {
            return (key, Completion::Refused(ErrorCode::Size));
        }
        let value = match command {
            command::SET | command::ADD | command::UPDATE => {
                let value = self.value_in.borrow().to_vec();
                if value.len() > self.limits.max_value_len() {
                    return (key, Completion::Refused(ErrorCode::Size));
                }
                value
            }
            _ => Vec::new(),
        };
        let write_id = self.permissions.borrow().write_id();
        let write_id = match (command, write_id) {
            (command::SET | command::ADD | command::UPDATE, None) => {
                return (key, Completion::Refused(ErrorCode::Invalid));
            }
            (_, id) => id.unwrap_or(0),
        };
        match self.take_injected(command) {
            Some(Failure::Command(e)) => return (key, Completion::Refused(e)),
            Some(Failure::Upcall(e)) => return (key, self.complete(Err(e), 0)),
            None => {}
        }
        let completion = match command {
            command::GET => self.get(&key),
            command::SET | command::ADD | command::UPDATE => self.insert(command, &key, &value, write_id),
            command::DELETE => self.delete(&key),
            _ => self.complete(Ok(()), 0), // garbage collect
        };
        (key, completion)
    }
}

impl libtock_unittest::fake::SyscallDriver for KeyValue {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(DRIVER_NUM).upcall_count(1)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share_ref.replace(share_ref);
    }

    fn command(&self, command_id: u32, _argument0: u32, _argument1: u32) -> CommandReturn {
        match command_id {
            command::EXISTS => command_return::success(),
            command::GET..=command::GARBAGE_COLLECT => {
                let (key, completion) = self.operation(command_id);
                self.log.borrow_mut().push(Op { command: command_id, key, completion });
                match completion {
                    Completion::Refused(e) => command_return::failure(e),
                    Completion::Upcall { .. } => command_return::success(),
                }
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }

    fn allow_readonly(
        &self,
        buffer_num: u32,
        buffer: RoAllowBuffer,
    ) -> Result<RoAllowBuffer, (RoAllowBuffer, ErrorCode)> {
        match buffer_num {
            allow_ro::KEY => Ok(self.key.replace(buffer)),
            allow_ro::VALUE => Ok(self.value_in.replace(buffer)),
            // The kernel's grant has two read-only allow slots.
            _ => Err((buffer, ErrorCode::Invalid)),
        }
    }

    fn allow_readwrite(
        &self,
        buffer_num: u32,
        buffer: RwAllowBuffer,
    ) -> Result<RwAllowBuffer, (RwAllowBuffer, ErrorCode)> {
        match buffer_num {
            allow_rw::VALUE => Ok(self.value_out.replace(buffer)),
            _ => Err((buffer, ErrorCode::Invalid)),
        }
    }
}
