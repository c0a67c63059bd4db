// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The KV syscall driver over the boards' real stack: fake processes, then upstream's
//! permission layers and the TDBStore capsule on simulated flash, with the boards' minimum
//! value length (the 9-byte permission header).
//!
//! ```text
//! FakeApps --> KvSyscallDriver --> VirtualKVPermissions -> MuxKVPermissions
//!   -> KVStorePermissions (upstream) --> TdbStoreKv --> SimHil (common) --> FlashSim
//! ```

mod common;
mod driver_fake;

use capsules_extra::kv_store_permissions::HEADER_LENGTH;
use capsules_extra::virtualizers::virtual_kv::VirtualKVPermissions;
use capsules_tdbstore::kv_syscall::{KEY_LEN, VALUE_BUF_LEN};
use common::{noise, settle, setup, upstream_stack, SimHil, Virt, GEOMETRY};
use driver_fake::{cmd, driver, status, Driver, Pid, Upcall};
use flash_sim::FlashSim;
use kernel::ErrorCode;

struct Board {
    hil: &'static SimHil,
    d: &'static Driver<Virt>,
}

impl Board {
    /// The stack as `boards/qemu_rv32_virt_kv` wires it, on blank simulated flash.
    fn new() -> Board {
        let hil = SimHil::new(FlashSim::new(GEOMETRY));
        let mux = upstream_stack(hil);
        let virt: &'static Virt = Box::leak(Box::new(VirtualKVPermissions::new(mux)));
        virt.setup();
        let d = driver(virt);
        Board { hil, d }
    }

    fn spawn(&self) -> Pid {
        self.d.apps().spawn()
    }

    fn issue(&self, pid: Pid, n: usize, key: &[u8], value: &[u8]) -> Result<(), ErrorCode> {
        self.d.apps().allow_key(pid, key);
        self.d.apps().allow_value(pid, value);
        self.d.app_command(n, pid)
    }

    /// Issues `n` and runs the stack until idle: the command's result and the upcalls.
    fn run(
        &self,
        pid: Pid,
        n: usize,
        key: &[u8],
        value: &[u8],
    ) -> (Result<(), ErrorCode>, Vec<(Pid, usize, usize)>) {
        let r = self.issue(pid, n, key, value);
        settle(self.hil);
        (r, self.upcalls())
    }

    fn upcalls(&self) -> Vec<(Pid, usize, usize)> {
        self.d.apps().take_upcalls().iter().map(|u: &Upcall| (u.pid, u.status, u.len)).collect()
    }
}

fn ok() -> usize {
    status(Ok(()))
}

fn err(e: ErrorCode) -> usize {
    status(Err(e))
}

#[test]
fn an_empty_value_at_the_boards_minimum_length_is_stored_and_read_back_empty() {
    let _g = setup();
    let b = Board::new();
    let a = b.spawn();
    b.d.apps().allow_rw(a, 4);
    assert_eq!(b.run(a, cmd::GET, b"empty", b""), (Ok(()), vec![(a, err(ErrorCode::NOSUPPORT), 0)]));
    assert_eq!(b.run(a, cmd::SET, b"empty", b""), (Ok(()), vec![(a, ok(), 0)]));
    // Present, and empty: (OK, 0), not "not found", and nothing written into the buffer.
    assert_eq!(b.run(a, cmd::GET, b"empty", b""), (Ok(()), vec![(a, ok(), 0)]));
    assert_eq!(b.d.apps().rw(a), [0xEE; 4]);
    assert_eq!(b.run(a, cmd::ADD, b"empty", b""), (Ok(()), vec![(a, err(ErrorCode::NOSUPPORT), 0)]));
    assert_eq!(b.run(a, cmd::UPDATE, b"empty", b"x"), (Ok(()), vec![(a, ok(), 0)]));
    assert_eq!(b.run(a, cmd::GET, b"empty", b""), (Ok(()), vec![(a, ok(), 1)]));
    assert_eq!(b.d.apps().rw(a), b"x\xEE\xEE\xEE");
    assert_eq!(b.run(a, cmd::UPDATE, b"empty", b""), (Ok(()), vec![(a, ok(), 0)]));
    assert_eq!(b.run(a, cmd::GET, b"empty", b""), (Ok(()), vec![(a, ok(), 0)]));
    assert_eq!(b.run(a, cmd::DELETE, b"empty", b""), (Ok(()), vec![(a, ok(), 0)]));
    assert_eq!(b.run(a, cmd::GET, b"empty", b""), (Ok(()), vec![(a, err(ErrorCode::NOSUPPORT), 0)]));
}

#[test]
fn the_longest_value_into_a_short_buffer_reports_size_and_its_length() {
    let _g = setup();
    let b = Board::new();
    let a = b.spawn();
    let value = noise(VALUE_BUF_LEN - HEADER_LENGTH, 7);
    assert_eq!(value.len(), 503);
    let key = [b'k'; KEY_LEN];
    assert_eq!(b.run(a, cmd::SET, &key, &value), (Ok(()), vec![(a, ok(), 0)]));
    b.d.apps().allow_rw(a, 10);
    assert_eq!(b.run(a, cmd::GET, &key, b""), (Ok(()), vec![(a, err(ErrorCode::SIZE), 503)]));
    assert_eq!(b.d.apps().rw(a), value[..10]);
    b.d.apps().allow_rw(a, 503);
    assert_eq!(b.run(a, cmd::GET, &key, b""), (Ok(()), vec![(a, ok(), 503)]));
    assert_eq!(b.d.apps().rw(a), value);
}

#[test]
fn a_queued_set_whose_key_grew_too_long_writes_nothing_and_frees_the_app() {
    let _g = setup();
    let b = Board::new();
    let (a, holder) = (b.spawn(), b.spawn());
    assert_eq!(b.issue(holder, cmd::GC, b"", b""), Ok(()));
    assert_eq!(b.issue(a, cmd::SET, b"good", b"value"), Ok(()));
    b.d.apps().allow_key(a, &[b'k'; KEY_LEN + 1]);
    settle(b.hil);
    let u = b.upcalls();
    assert_eq!(u.iter().filter(|u| u.0 == a).collect::<Vec<_>>(), [&(a, err(ErrorCode::SIZE), 0)]);
    // Nothing written: no "good", and the app's next command is accepted.
    b.d.apps().allow_rw(a, 8);
    assert_eq!(b.run(a, cmd::GET, b"good", b""), (Ok(()), vec![(a, err(ErrorCode::NOSUPPORT), 0)]));
    assert_eq!(b.run(a, cmd::SET, b"good", b"v2"), (Ok(()), vec![(a, ok(), 0)]));
    assert_eq!(b.run(a, cmd::GET, b"good", b""), (Ok(()), vec![(a, ok(), 2)]));
}

#[test]
fn an_app_that_dies_during_its_get_does_not_wedge_the_store() {
    let _g = setup();
    let b = Board::new();
    let (a, c) = (b.spawn(), b.spawn());
    assert_eq!(b.run(c, cmd::SET, b"k", b"v"), (Ok(()), vec![(c, ok(), 0)]));
    b.d.apps().allow_rw(a, 8);
    assert_eq!(b.issue(a, cmd::GET, b"k", b""), Ok(()));
    assert_eq!(b.issue(c, cmd::SET, b"k", b"w"), Ok(()));
    b.d.apps().kill(a);
    settle(b.hil);
    assert_eq!(b.upcalls(), [(c, ok(), 0)]);
    let a2 = b.d.apps().spawn();
    b.d.apps().allow_rw(a2, 8);
    assert_eq!(b.run(c, cmd::GET, b"k", b""), (Ok(()), vec![(c, err(ErrorCode::SIZE), 1)]));
    assert_eq!(b.run(a2, cmd::DELETE, b"k", b""), (Ok(()), vec![(a2, err(ErrorCode::NOSUPPORT), 0)]));
}
