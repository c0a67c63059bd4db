// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `kv_check`: the end-to-end suite's KV conformance app, in the style of upstream's C and
//! Rust KV tests. It drives the KV syscall driver (0x50003) as any Tock app would and checks
//! every result against the codes the libtock-rs and libtock-c APIs document: `NOSUPPORT`
//! for a missing key, an existing key on `add`, a missing key on `update` or `delete`;
//! `SIZE` for a key or value the driver cannot take, or a value longer than the app's buffer.
//!
//! ```text
//! e2e/run_e2e.py --boots QEMU, reads the console--> kv_check (this file)
//!     --KV 0x50003, IPC 0x10000--> kernel: KVStoreDriver -> ... -> TDBStore -> pflash
//! ```
//!
//! Console protocol (one line each, parsed by `e2e/run_e2e.py`):
//!
//! ```text
//! kv_check: start
//! PASS <check>
//! FAIL <check>: <what happened>
//! kv_check: done <passed> passed <failed> failed
//! ```
//!
//! It leaves three keys behind for the host-side checks: `kv_check` (a valid Mbed key,
//! stored as is), `First Key` padded with NULs to 16 bytes (stored escaped), and the empty
//! key.

#![no_main]
#![no_std]

use core::cell::Cell;
use libtock::key_value::KeyValue;
use libtock::platform::allow_ro::AllowRo;
use libtock::platform::subscribe::Subscribe;
use libtock::platform::{share, DefaultConfig, ErrorCode, Syscalls};
use libtock::runtime::{set_main, stack_size, TockSyscalls};

set_main! {main}
stack_size! {0x2000}

const KV: u32 = 0x50003;
/// Driver command 6: garbage collection (libtock-rs has no wrapper for it).
const KV_GARBAGE_COLLECT: u32 = 6;
const IPC: u32 = 0x10000;
const IPC_DISCOVER: u32 = 1;

/// The longest key upstream's KV driver takes (its kernel key buffer, `components::kv`).
const MAX_KEY: usize = 64;
/// The longest value: the driver's 512-byte kernel buffer less the permission layer's
/// 9-byte header.
const MAX_VALUE: usize = 512 - 9;
/// Values written in the garbage-collection check: enough whole-buffer writes of one key to
/// pass through an area of the store (786,432 bytes on this board) more than once.
const GC_WRITES: usize = 1700;

use e2e_line::line;

/// Counts checks; prints each.
struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    /// Records one check: `got` must equal `want`.
    fn eq<T: PartialEq + core::fmt::Debug>(&mut self, name: &str, got: T, want: T) -> bool {
        if got == want {
            self.passed += 1;
            line!("PASS {}", name);
            true
        } else {
            self.failed += 1;
            line!("FAIL {}: got {:?}, want {:?}", name, got, want);
            false
        }
    }

    /// Records a check over many cases, printed once: `bad` is the first failing case.
    fn all(&mut self, name: &str, cases: u32, bad: Option<(u32, &str)>) {
        match bad {
            None => {
                self.passed += 1;
                line!("PASS {} ({} cases)", name, cases);
            }
            Some((case, what)) => {
                self.failed += 1;
                line!("FAIL {}: case {}: {}", name, case, what);
            }
        }
    }
}

/// `KeyValue::get`, returning the value's length.
fn get(key: &[u8], buf: &mut [u8]) -> Result<usize, ErrorCode> {
    KeyValue::get(key, buf).map(|n| n as usize)
}

/// Garbage collection (driver command 6): the upcall carries only a status.
fn garbage_collect() -> Result<(), ErrorCode> {
    let done: Cell<Option<Result<(), ErrorCode>>> = Cell::new(None);
    share::scope::<Subscribe<_, KV, 0>, _, _>(|subscribe| {
        TockSyscalls::subscribe::<_, _, DefaultConfig, KV, 0>(subscribe, &done)?;
        TockSyscalls::command(KV, KV_GARBAGE_COLLECT, 0, 0).to_result::<(), ErrorCode>()?;
        loop {
            TockSyscalls::yield_wait();
            if let Some(r) = done.get() {
                return r;
            }
        }
    })
}

/// IPC service discovery: the process index of the process with this package name.
fn ipc_discover(name: &[u8]) -> Result<u32, ErrorCode> {
    share::scope::<AllowRo<_, IPC, 0>, _, _>(|allow| {
        TockSyscalls::allow_ro::<DefaultConfig, IPC, 0>(allow, name)?;
        TockSyscalls::command(IPC, IPC_DISCOVER, 0, 0).to_result::<u32, ErrorCode>()
    })
}

/// The sequence of upstream's KV tests on one key; `Err` names the step that went wrong.
fn exercise(key: &[u8], value: &[u8], buf: &mut [u8]) -> Result<(), &'static str> {
    let step = |ok: bool, what| if ok { Ok(()) } else { Err(what) };
    step(KeyValue::set(key, value) == Ok(()), "set")?;
    step(get(key, buf) == Ok(value.len()) && buf[..value.len()] == *value, "get after set")?;
    step(KeyValue::add(key, value) == Err(ErrorCode::NoSupport), "add of an existing key")?;
    step(KeyValue::update(key, b"updated") == Ok(()), "update")?;
    step(get(key, buf) == Ok(7) && buf[..7] == *b"updated", "get after update")?;
    step(KeyValue::delete(key) == Ok(()), "delete")?;
    step(KeyValue::delete(key) == Err(ErrorCode::NoSupport), "second delete")?;
    step(KeyValue::update(key, value) == Err(ErrorCode::NoSupport), "update of a missing key")?;
    step(get(key, buf) == Err(ErrorCode::NoSupport), "get of a deleted key")?;
    step(KeyValue::add(key, value) == Ok(()), "add")?;
    step(get(key, buf) == Ok(value.len()) && buf[..value.len()] == *value, "get after add")?;
    step(KeyValue::delete(key) == Ok(()), "final delete")
}

/// A key of `len` bytes from a seed (every byte value appears across seeds).
fn mixed_key(len: usize, seed: u32, out: &mut [u8; MAX_KEY]) -> &[u8] {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    for b in out[..len].iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    &out[..len]
}

fn main() {
    line!("kv_check: start");
    let mut c = Checks { passed: 0, failed: 0 };
    let mut buf = [0u8; MAX_VALUE + 1];

    c.eq("the KV driver is present", KeyValue::exists(), true);

    // libtock-c's first KV test: a 16-byte key, "First Key" padded with NULs.
    let mut first = [0u8; 16];
    first[..9].copy_from_slice(b"First Key");
    c.eq("get of a missing key: NOSUPPORT", get(&first, &mut buf), Err(ErrorCode::NoSupport));
    c.eq("set `First Key` + 7 NULs", KeyValue::set(&first, b"First Value"), Ok(()));
    c.eq("get `First Key` + 7 NULs", get(&first, &mut buf), Ok(11));
    c.eq("its value", &buf[..11], &b"First Value"[..]);

    // Keys of every byte value and length: each byte alone, at the driver's longest key, and
    // at a length that walks 0..=64 as the byte does.
    let mut bad = None;
    let mut cases = 0;
    'bytes: for b in 0..=255u8 {
        for len in [1, MAX_KEY, usize::from(b) % (MAX_KEY + 1)] {
            let key = [b; MAX_KEY];
            cases += 1;
            if let Err(what) = exercise(&key[..len], &[b, len as u8, 0xA5], &mut buf) {
                bad = Some((u32::from(b) << 8 | len as u32, what));
                break 'bytes;
            }
        }
    }
    c.all("every key byte value at lengths 1, 64 and 0..=64 (case = byte << 8 | length)", cases, bad);
    let (mut bad, mut cases, mut key) = (None, 0, [0u8; MAX_KEY]);
    for len in 0..=MAX_KEY {
        cases += 1;
        if let Err(what) = exercise(mixed_key(len, len as u32 + 1, &mut key), b"mixed", &mut buf) {
            bad = Some((len as u32, what));
            break;
        }
    }
    c.all("mixed-byte keys of every length 0..=64 (case = length)", cases, bad);
    c.eq("the empty key: set", KeyValue::set(b"", b"empty key"), Ok(()));
    c.eq("the empty key: get", get(b"", &mut buf), Ok(9));
    c.eq(
        "a 65-byte key (over the driver's 64): SIZE",
        KeyValue::set(&[b'k'; 65], b"v"),
        Err(ErrorCode::Size),
    );
    c.eq("a 65-byte key: get is SIZE too", get(&[b'k'; 65], &mut buf), Err(ErrorCode::Size));

    // Values: empty, at the limit, over it, longer than the reader's buffer.
    c.eq("zero-length value: set", KeyValue::set(b"kv_check", b""), Ok(()));
    c.eq("zero-length value: get", get(b"kv_check", &mut buf), Ok(0));
    let big = [0x5Au8; MAX_VALUE + 1];
    c.eq("a 503-byte value (the limit): set", KeyValue::set(b"kv_check", &big[..MAX_VALUE]), Ok(()));
    buf.fill(0);
    c.eq("a 503-byte value: get", get(b"kv_check", &mut buf), Ok(MAX_VALUE));
    c.eq("a 503-byte value: intact", buf[..MAX_VALUE].iter().all(|&b| b == 0x5A), true);
    c.eq("a 504-byte value: SIZE", KeyValue::set(b"kv_check", &big), Err(ErrorCode::Size));
    c.eq("a 504-byte value: add is SIZE too", KeyValue::add(b"kv_check_big", &big), Err(ErrorCode::Size));
    c.eq("a 504-byte value: the old value stays", get(b"kv_check", &mut buf), Ok(MAX_VALUE));
    buf.fill(0);
    c.eq("get into a 10-byte buffer: SIZE", get(b"kv_check", &mut buf[..10]), Err(ErrorCode::Size));
    c.eq("...with the first 10 bytes copied", buf[..10].iter().all(|&b| b == 0x5A), true);

    // add/add, update of a missing key, delete twice.
    c.eq("add of a new key", KeyValue::add(b"kv_check_add", b"1"), Ok(()));
    c.eq("add/add: NOSUPPORT", KeyValue::add(b"kv_check_add", b"2"), Err(ErrorCode::NoSupport));
    c.eq(
        "add/add: the first value stays",
        get(b"kv_check_add", &mut buf).map(|n| buf[..n] == *b"1"),
        Ok(true),
    );
    c.eq(
        "update of a missing key: NOSUPPORT",
        KeyValue::update(b"kv_check_none", b"x"),
        Err(ErrorCode::NoSupport),
    );
    c.eq("update did not create it", get(b"kv_check_none", &mut buf), Err(ErrorCode::NoSupport));
    c.eq("delete", KeyValue::delete(b"kv_check_add"), Ok(()));
    c.eq("delete twice: NOSUPPORT", KeyValue::delete(b"kv_check_add"), Err(ErrorCode::NoSupport));

    // Garbage collection. Upstream's test writes one key until the store says NOMEM, then
    // collects: here a set never fails while dead records take the space (the store compacts
    // by itself), so the writes below all succeed, several times the area's size.
    c.eq("garbage collection", garbage_collect(), Ok(()));
    let mut bad = None;
    for i in 0..GC_WRITES {
        let mut v = [0u8; MAX_VALUE];
        v[..4].copy_from_slice(&(i as u32).to_le_bytes());
        if let Err(e) = KeyValue::set(b"kv_check_gc", &v) {
            bad = Some((i as u32, if e == ErrorCode::NoMem { "NOMEM" } else { "error" }));
            break;
        }
    }
    c.all("one key rewritten past the area's size never reports full", GC_WRITES as u32, bad);
    c.eq("garbage collection after the rewrites", garbage_collect(), Ok(()));
    c.eq("...and again at once", garbage_collect(), Ok(()));
    let last = (GC_WRITES as u32 - 1).to_le_bytes();
    c.eq(
        "the last value survives collection",
        get(b"kv_check_gc", &mut buf).map(|n| (n, buf[..4] == last)),
        Ok((MAX_VALUE, true)),
    );
    c.eq("the other keys survive collection", get(&first, &mut buf), Ok(11));
    c.eq("delete the rewritten key", KeyValue::delete(b"kv_check_gc"), Ok(()));

    // IPC: registered, and its grant fits this process.
    c.eq("IPC discovers this process by name", ipc_discover(b"kv_check").is_ok(), true);
    c.eq("IPC: an unknown name is NODEVICE", ipc_discover(b"no such service"), Err(ErrorCode::NoDevice));

    line!("kv_check: done {} passed {} failed", c.passed, c.failed);
}
