// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The driver's apps in a Tock kernel: a `Grant`, and `SyscallDriver`.
//!
//! The grant holds each app's outstanding operation, allows and upcall. This file is kept
//! thin (every decision is the driver's), so that host tests, which cannot build a grant
//! without a kernel and processes, exercise the driver itself through a fake [`Apps`].

use kernel::grant::{AllowRoCount, AllowRwCount, Grant, GrantKernelData, UpcallCount};
use kernel::hil::kv::KVPermissions;
use kernel::processbuffer::{
    ReadableProcessBuffer, ReadableProcessSlice, WriteableProcessBuffer, WriteableProcessSlice,
};
use kernel::storage_permissions::StoragePermissions;
use kernel::syscall::{CommandReturn, SyscallDriver};
use kernel::utilities::cells::OptionalCell;
use kernel::{ErrorCode, ProcessId};

use super::{AppAccess, AppOp, Apps, KvSyscallDriver};

mod ro_allow {
    pub const KEY: usize = 0;
    pub const VALUE: usize = 1;
    pub const COUNT: u8 = 2;
}
mod rw_allow {
    pub const VALUE: usize = 0;
    pub const COUNT: u8 = 1;
}
mod upcall {
    pub const DONE: usize = 0;
    pub const COUNT: u8 = 1;
}

/// Per-app state in the grant: the app's one outstanding operation, queued or running.
#[derive(Default)]
pub struct App {
    op: OptionalCell<AppOp>,
}

/// The driver's grant: upcall 0, read-only allows 0 (key) and 1 (value), read-write allow 0.
pub type AppGrant = Grant<
    App,
    UpcallCount<{ upcall::COUNT }>,
    AllowRoCount<{ ro_allow::COUNT }>,
    AllowRwCount<{ rw_allow::COUNT }>,
>;

/// The apps as Tock holds them: the driver's grant, in process order.
pub struct GrantApps(AppGrant);

/// One entered app: its grant state, its buffers and upcall, and its process (for its
/// storage permissions).
pub struct GrantApp<'b> {
    app: &'b App,
    data: &'b GrantKernelData<'b>,
    id: ProcessId,
}

impl AppAccess for GrantApp<'_> {
    fn op(&self) -> Option<AppOp> {
        self.app.op.get()
    }

    fn set_op(&self, op: Option<AppOp>) {
        self.app.op.insert(op);
    }

    fn read_key<R>(&self, f: impl FnOnce(&ReadableProcessSlice) -> R) -> Option<R> {
        self.data.get_readonly_processbuffer(ro_allow::KEY).and_then(|b| b.enter(f)).ok()
    }

    fn read_value<R>(&self, f: impl FnOnce(&ReadableProcessSlice) -> R) -> Option<R> {
        self.data.get_readonly_processbuffer(ro_allow::VALUE).and_then(|b| b.enter(f)).ok()
    }

    fn write_value<R>(&self, f: impl FnOnce(&WriteableProcessSlice) -> R) -> Option<R> {
        self.data.get_readwrite_processbuffer(rw_allow::VALUE).and_then(|b| b.mut_enter(f)).ok()
    }

    fn upcall(&self, status: usize, len: usize) {
        let _ = self.data.schedule_upcall(upcall::DONE, (status, len, 0));
    }

    fn storage_permissions(&self) -> Option<StoragePermissions> {
        self.id.get_storage_permissions()
    }
}

impl Apps for GrantApps {
    type Id = ProcessId;
    type Access<'b> = GrantApp<'b>;

    fn enter<R>(&self, id: ProcessId, f: impl FnOnce(&GrantApp<'_>) -> R) -> Result<R, ErrorCode> {
        self.0.enter(id, |app, data| f(&GrantApp { app, data, id })).map_err(ErrorCode::from)
    }

    fn each(&self, mut f: impl FnMut(ProcessId, Option<AppOp>)) {
        for grant in self.0.iter() {
            let id = grant.processid();
            let op = grant.enter(|app, _| app.op.get());
            f(id, op);
        }
    }
}

impl<'a, V: KVPermissions<'a>> KvSyscallDriver<'a, V, GrantApps> {
    /// A driver over `kv` for the apps of `grant` (see [`KvSyscallDriver::with_apps`]).
    pub fn new(kv: &'a V, key_buf: &'static mut [u8], value_buf: &'static mut [u8], grant: AppGrant) -> Self {
        Self::with_apps(kv, key_buf, value_buf, GrantApps(grant))
    }
}

impl<'a, V: KVPermissions<'a>> SyscallDriver for KvSyscallDriver<'a, V, GrantApps> {
    fn command(&self, command_num: usize, _: usize, _: usize, processid: ProcessId) -> CommandReturn {
        match self.app_command(command_num, processid) {
            Ok(()) => CommandReturn::success(),
            Err(e) => CommandReturn::failure(e),
        }
    }

    fn allocate_grant(&self, processid: ProcessId) -> Result<(), kernel::process::Error> {
        self.apps().0.enter(processid, |_, _| {})
    }
}
