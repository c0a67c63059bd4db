// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `kv_stress`: the end-to-end stress test's apps, one binary built once per role and slot.
//! Many apps use the KV driver (0x50003) at the same time, one of them hostile, one dying
//! over and over, one collecting garbage in a loop; each checks what it can and prints
//! `VIOLATION ...` for anything the kernel promised and did not do.
//!
//! ```text
//! e2e/run_e2e.py --boots QEMU with 9 of these, reads the console--> kv_stress (this file)
//!     --KV 0x50003, alarm--> kernel: KvSyscallDriver -> ... -> TDBStore -> pflash
//! ```
//!
//! The role comes from the build (`KV_STRESS_ROLE`, and `KV_STRESS_INDEX` for workers;
//! the Makefile builds one TAB per role, each with its own storage id and slot):
//!
//! - `worker` (four of them): `KV_STRESS_OPS` random set/get/add/update/delete per boot on
//!   its own keys (1 to 64 bytes) with values of 1 to 503 bytes (the limits), each result
//!   checked against its own model. A marker key holds the rounds done; each boot first
//!   replays the earlier rounds' model and checks every key survived the reboot.
//! - `reader`: reads the workers' keys (its TBF `read_ids` list theirs) while they change:
//!   each value found must be one a worker wrote (values describe themselves).
//! - `canary`: owns one key with a fixed value, checks it throughout the run.
//! - `fuzz`: 6 x `KV_STRESS_OPS` seeded random raw syscalls (or short sleeps) to the KV driver (every command
//!   number, key and value lengths 0, 1, the limit, over it and huge, buffers not allowed,
//!   outside its memory, in flash for a read-write allow, swapped or revoked while an
//!   operation is in flight, subscribe misuse, commands while one is in flight): each must
//!   return a well-formed success or failure.
//! - `die`: each life reads and bumps its life counter, starts a KV operation (a `get`, a
//!   `set`, a `delete` or a garbage collection) and faults before it completes; the board's
//!   fault policy restarts it. After `KV_STRESS_LIVES` lives it deletes the counter and exits.
//! - `gc`: garbage collection (command 6) in a loop, `KV_STRESS_OPS` / 8 times.
//!
//! Console lines (one console write each): `<role>: ...` progress and figures, `VIOLATION
//! <role>: ...` for a broken promise.

#![no_main]
#![no_std]

use libtock::alarm::{Alarm, Milliseconds};
use libtock::key_value::KeyValue;
use libtock::platform::{syscall_class, ErrorCode, RawSyscalls, Register, Syscalls};
use libtock::runtime::{set_main, stack_size, TockSyscalls};

set_main! {main}
stack_size! {0x2000}

const KV: u32 = 0x50003;
/// The longest key the driver takes, and the longest value (512-byte buffer less the
/// permission layer's 9-byte header).
const MAX_KEY: usize = 64;
const MAX_VALUE: usize = 503;
/// Keys per worker.
const KEYS: usize = 24;

const ROLE: &str = match option_env!("KV_STRESS_ROLE") {
    Some(r) => r,
    None => "worker",
};

const fn parse(s: Option<&str>, default: u32) -> u32 {
    let Some(s) = s else { return default };
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}
const INDEX: u32 = parse(option_env!("KV_STRESS_INDEX"), 0);
const OPS: u32 = parse(option_env!("KV_STRESS_OPS"), 400);
const LIVES: u32 = parse(option_env!("KV_STRESS_LIVES"), 20);

use e2e_line::line;

/// xorshift32: reproducible from a seed, no dependencies.
struct Rng(u32);

impl Rng {
    fn new(seed: u32) -> Self {
        Rng(seed.wrapping_mul(2_654_435_761) | 1)
    }
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// Microseconds since boot (wraps after ~7 minutes of emulated time at QEMU's 10 MHz).
fn now_us() -> u64 {
    let hz = Alarm::get_frequency().map(|h| h.0).unwrap_or(1_000_000).max(1);
    let t = Alarm::get_ticks().unwrap_or(0);
    u64::from(t) * 1_000_000 / u64::from(hz)
}

/// Wait and retry accounting for one app's KV calls.
#[derive(Default)]
struct Stats {
    ops: u32,
    busy: u32,
    nomem: u32,
    max_wait_us: u64,
    violations: u32,
}

impl Stats {
    /// Runs one KV call, retrying on `BUSY`/`NOMEM` (counted: with every app queued in the
    /// driver, neither should happen), and records how long it took.
    fn call<T>(&mut self, mut f: impl FnMut() -> Result<T, ErrorCode>) -> Result<T, ErrorCode> {
        let start = now_us();
        let mut tries = 0;
        loop {
            tries += 1;
            match f() {
                // Bounded: a store that stays full (NOMEM) is reported, not waited out.
                Err(ErrorCode::Busy) if tries < 1000 => self.busy += 1,
                Err(ErrorCode::NoMem) if tries < 1000 => self.nomem += 1,
                r => {
                    let waited = now_us().wrapping_sub(start);
                    if waited < 1 << 40 {
                        self.max_wait_us = self.max_wait_us.max(waited);
                    }
                    self.ops += 1;
                    return r;
                }
            }
            let _ = Alarm::sleep_for(Milliseconds(1));
        }
    }

    fn violation(&mut self) {
        self.violations += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Values that describe themselves: [tag, key index, generation (4 bytes LE), pattern...],
// or, under 6 bytes, the pattern's first bytes only.

fn pattern(tag: u8, idx: u8, gen: u32, pos: usize) -> u8 {
    (gen.wrapping_mul(31).wrapping_add(pos as u32 * 7).wrapping_add(u32::from(idx) * 13) as u8) ^ tag
}

fn make_value(tag: u8, idx: u8, gen: u32, len: usize, out: &mut [u8]) {
    for (pos, b) in out[..len].iter_mut().enumerate() {
        *b = pattern(tag, idx, gen, pos);
    }
    if len >= 6 {
        out[0] = tag;
        out[1] = idx;
        out[2..6].copy_from_slice(&gen.to_le_bytes());
    }
}

/// Whether `v` is a value the worker with `tag` could have written to key `idx`.
fn plausible(tag: u8, idx: u8, v: &[u8]) -> bool {
    if v.len() < 6 {
        return !v.is_empty();
    }
    if v[0] != tag || v[1] != idx {
        return false;
    }
    let gen = u32::from_le_bytes([v[2], v[3], v[4], v[5]]);
    v.iter().enumerate().skip(6).all(|(pos, &b)| b == pattern(tag, idx, gen, pos))
}

fn worker_tag(i: u32) -> u8 {
    0xA0 + i as u8
}

/// Worker `tag`'s key `idx`: lengths 1 (the tag alone), 64 (the limit) and 2..=63.
fn worker_key(tag: u8, idx: usize, out: &mut [u8; MAX_KEY]) -> usize {
    let len = match idx {
        0 => 1,
        1 => MAX_KEY,
        _ => 2 + (idx * 7) % 62,
    };
    out[0] = tag;
    for (j, b) in out[1..len].iter_mut().enumerate() {
        *b = if j == 0 { idx as u8 } else { (idx as u8).wrapping_mul(31).wrapping_add(j as u8) };
    }
    len
}

/// The worker's marker key: rounds done.
fn marker_key(tag: u8) -> [u8; 3] {
    [tag, 0xFF, b'#']
}

/// A worker's model of its keys: generation and length of each, or absent.
type Model = [Option<(u32, u16)>; KEYS];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Set,
    Add,
    Update,
    Delete,
    Get,
}

/// Round `round`'s operations, one at a time: (kind, key index, generation, value length).
struct Plan {
    rng: Rng,
    left: u32,
    round: u32,
    n: u32,
}

impl Plan {
    fn new(tag: u8, round: u32) -> Self {
        Plan {
            rng: Rng::new(u32::from(tag) << 16 ^ round.wrapping_mul(7919) ^ 0x5eed),
            left: OPS,
            round,
            n: 0,
        }
    }
}

impl Iterator for Plan {
    type Item = (Kind, usize, u32, usize);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.n += 1;
        let kind = match self.rng.below(10) {
            0..=2 => Kind::Set,
            3 => Kind::Add,
            4 => Kind::Update,
            5 => Kind::Delete,
            _ => Kind::Get,
        };
        let idx = self.rng.below(KEYS as u32) as usize;
        let len = match self.rng.below(10) {
            0 => 1,
            1 => MAX_VALUE,
            _ => 1 + self.rng.below(MAX_VALUE as u32) as usize,
        };
        Some((kind, idx, self.round << 16 | self.n, len))
    }
}

/// What an operation does to the model, and the result the store must give.
fn apply(model: &mut Model, kind: Kind, idx: usize, gen: u32, len: usize) -> Result<(), ErrorCode> {
    let present = model[idx].is_some();
    match kind {
        Kind::Set => {
            model[idx] = Some((gen, len as u16));
            Ok(())
        }
        Kind::Add | Kind::Update if (kind == Kind::Add) == present => Err(ErrorCode::NoSupport),
        Kind::Add | Kind::Update => {
            model[idx] = Some((gen, len as u16));
            Ok(())
        }
        Kind::Delete if !present => Err(ErrorCode::NoSupport),
        Kind::Delete => {
            model[idx] = None;
            Ok(())
        }
        Kind::Get if !present => Err(ErrorCode::NoSupport),
        Kind::Get => Ok(()),
    }
}

/// Checks key `idx` against the model with a `get`.
fn check_key(s: &mut Stats, tag: u8, model: &Model, idx: usize, buf: &mut [u8; 512], what: &str) {
    let mut key = [0u8; MAX_KEY];
    let klen = worker_key(tag, idx, &mut key);
    let got = s.call(|| KeyValue::get(&key[..klen], &mut buf[..]));
    let mut want = [0u8; MAX_VALUE];
    match (model[idx], got) {
        (None, Err(ErrorCode::NoSupport)) => {}
        (Some((gen, len)), Ok(n)) if n as usize == usize::from(len) => {
            make_value(tag, idx as u8, gen, usize::from(len), &mut want);
            if buf[..n as usize] != want[..n as usize] {
                s.violation();
                line!("VIOLATION {}{}: {} key {}: wrong bytes (gen {})", ROLE, INDEX, what, idx, gen);
            }
        }
        (m, g) => {
            s.violation();
            line!("VIOLATION {}{}: {} key {}: model {:?}, store {:?}", ROLE, INDEX, what, idx, m, g);
        }
    }
}

fn worker() {
    let tag = worker_tag(INDEX);
    let mut s = Stats::default();
    let mut buf = [0u8; 512];
    let mut model: Model = [None; KEYS];
    let marker = marker_key(tag);
    let rounds = match s.call(|| KeyValue::get(&marker, &mut buf)) {
        Ok(4) => u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
        _ => 0,
    };
    // The earlier boots' rounds: replay their model and check every key survived.
    for round in 0..rounds {
        for (kind, idx, gen, len) in Plan::new(tag, round) {
            let _ = apply(&mut model, kind, idx, gen, len);
        }
    }
    if rounds > 0 {
        let before = s.violations;
        for idx in 0..KEYS {
            check_key(&mut s, tag, &model, idx, &mut buf, "after reboot");
        }
        line!(
            "worker{}: after reboot: {} keys checked against {} rounds: {}",
            INDEX,
            KEYS,
            rounds,
            if s.violations == before { "ok" } else { "BAD" }
        );
    }
    let start = now_us();
    let first_op = s.ops;
    let mut key = [0u8; MAX_KEY];
    let mut value = [0u8; MAX_VALUE];
    for (n, (kind, idx, gen, len)) in Plan::new(tag, rounds).enumerate() {
        if n > 0 && n % 25 == 0 {
            line!("worker{}: op {} at {} us", INDEX, n, now_us());
        }
        let want = apply(&mut model, kind, idx, gen, len);
        let klen = worker_key(tag, idx, &mut key);
        let k = &key[..klen];
        if kind == Kind::Get {
            check_key(&mut s, tag, &model, idx, &mut buf, "get");
            continue;
        }
        make_value(tag, idx as u8, gen, len, &mut value);
        let v = &value[..len];
        let got = s.call(|| match kind {
            Kind::Set => KeyValue::set(k, v),
            Kind::Add => KeyValue::add(k, v),
            Kind::Update => KeyValue::update(k, v),
            _ => KeyValue::delete(k),
        });
        if got != want {
            s.violation();
            line!(
                "VIOLATION worker{}: op {:?} key {}: want {:?}, got {:?}",
                INDEX,
                kind as u8,
                idx,
                want,
                got
            );
        }
    }
    // Every key once more, then the marker: this round is done.
    for idx in 0..KEYS {
        check_key(&mut s, tag, &model, idx, &mut buf, "end of round");
    }
    let elapsed = now_us().wrapping_sub(start);
    let done = (rounds + 1).to_le_bytes();
    if s.call(|| KeyValue::set(&marker, &done)) != Ok(()) {
        s.violation();
        line!("VIOLATION worker{}: marker not written", INDEX);
    }
    line!(
        "worker{}: done round {} ops {} busy {} nomem {} max_wait_us {} us {} violations {}",
        INDEX,
        rounds,
        s.ops - first_op,
        s.busy,
        s.nomem,
        s.max_wait_us,
        elapsed,
        s.violations
    );
}

fn reader() {
    let mut s = Stats::default();
    let mut rng = Rng::new(0xBEEF);
    let mut buf = [0u8; 512];
    let mut key = [0u8; MAX_KEY];
    let (mut found, mut absent) = (0u32, 0u32);
    let start = now_us();
    for _ in 0..OPS {
        let tag = worker_tag(rng.below(4));
        let idx = rng.below(KEYS as u32) as usize;
        let klen = worker_key(tag, idx, &mut key);
        match s.call(|| KeyValue::get(&key[..klen], &mut buf)) {
            Ok(n) if plausible(tag, idx as u8, &buf[..n as usize]) => found += 1,
            Err(ErrorCode::NoSupport) => absent += 1,
            r => {
                s.violation();
                line!(
                    "VIOLATION reader: worker tag {:#x} key {}: {:?}",
                    tag,
                    idx,
                    r.map(|n| &buf[..(n as usize).min(8)])
                );
            }
        }
    }
    line!(
        "reader: done reads {} found {} absent {} busy {} nomem {} max_wait_us {} us {} violations {}",
        s.ops,
        found,
        absent,
        s.busy,
        s.nomem,
        s.max_wait_us,
        now_us().wrapping_sub(start),
        s.violations
    );
}

const CANARY_KEY: &[u8] = b"stress_canary";
const CANARY_VALUE: &[u8] = b"the canary: nobody but its owner may change this";

fn canary() {
    let mut s = Stats::default();
    let mut buf = [0u8; 512];
    match s.call(|| KeyValue::get(CANARY_KEY, &mut buf)) {
        Err(ErrorCode::NoSupport) => {
            let r = s.call(|| KeyValue::set(CANARY_KEY, CANARY_VALUE));
            line!("canary: set {:?}", r);
        }
        Ok(n) if &buf[..n as usize] == CANARY_VALUE => line!("canary: found intact"),
        r => {
            s.violation();
            line!("VIOLATION canary: at start: {:?}", r);
        }
    }
    // Check it throughout the run, sleeping in between.
    let mut checks = 0;
    for _ in 0..OPS {
        let _ = Alarm::sleep_for(Milliseconds(20));
        checks += 1;
        match s.call(|| KeyValue::get(CANARY_KEY, &mut buf)) {
            Ok(n) if &buf[..n as usize] == CANARY_VALUE => {}
            r => {
                s.violation();
                line!("VIOLATION canary: check {}: {:?}", checks, r);
            }
        }
    }
    line!(
        "canary: done checks {} busy {} nomem {} max_wait_us {} violations {}",
        checks,
        s.busy,
        s.nomem,
        s.max_wait_us,
        s.violations
    );
}

// ---------------------------------------------------------------------------------------
// The fuzzer: raw syscalls.

static mut FUZZ_RO: [u8; 4096] = [0x41; 4096];
static mut FUZZ_RW: [u8; 4096] = [0; 4096];
/// In flash: a read-write allow of it must be refused.
static FUZZ_FLASH: [u8; 600] = [0x42; 600];
static mut UPCALLS: u32 = 0;

/// Takes every queued upcall. The fuzzer's operations complete while it keeps making calls;
/// a process's upcall queue is short (Tock drops what does not fit), so if it filled with KV
/// upcalls the alarm's or the console's would be dropped and a later wait would never end.
///
/// With a short sleep, not Yield-NoWait: upstream's kernel (`kernel/src/kernel.rs`, the
/// `YieldVariant::NoWait` arm) turns a Yield-NoWait into a Yield-Wait whenever the process
/// has any queued task, and a KV completion while the fuzzer had unsubscribed is queued as a
/// null upcall (`Task::ReturnValue`), which a plain yield discards without waking the
/// process: Yield-NoWait then blocks until some other upcall arrives, which for this app
/// was never. A sleep always ends with the alarm's upcall.
fn drain_upcalls() {
    let _ = Alarm::sleep_for(Milliseconds(1));
}

unsafe extern "C" fn fuzz_upcall(_status: u32, _len: u32, _: u32, _: Register) {
    // SAFETY: upcalls run on this process's only thread, between its syscalls.
    unsafe { UPCALLS = UPCALLS.wrapping_add(1) };
}

/// Whether a return is one of the kernel's variants (failures with a Tock error code).
fn well_formed(r: [Register; 4]) -> bool {
    let variant = r[0].as_u32();
    let code = r[1].as_u32();
    match variant {
        0..=3 => (1..=13).contains(&code),
        128..=133 => true,
        _ => false,
    }
}

fn fuzz() {
    let mut rng = Rng::new(0xF022 ^ INDEX);
    let (mut calls, mut ok, mut failed, mut bad) = (0u32, 0u32, 0u32, 0u32);
    let mut s = Stats::default();
    let lens = [0usize, 1, MAX_KEY, MAX_KEY + 1, MAX_VALUE, MAX_VALUE + 1, 512, 4096];
    // SAFETY (for every block below): the buffers are statics that live forever, so the
    // kernel may keep them allowed across any number of calls; this app only touches them
    // between syscalls, as the allow rules require.
    let mut started = 0;
    for i in 0..OPS * 6 {
        let (class, regs): (usize, [Register; 4]) = match rng.below(16) {
            // Commands: every number (and a few far out), arguments anything.
            0..=3 => {
                let cmd = match rng.below(4) {
                    0 => rng.next(),
                    _ => rng.below(9),
                };
                (syscall_class::COMMAND, [KV.into(), cmd.into(), rng.next().into(), rng.next().into()])
            }
            // Read-only allows: key or value (or a slot that does not exist), any length.
            4..=8 => {
                let id = rng.below(4);
                let mut len = lens[rng.below(lens.len() as u32) as usize];
                let mut ptr = core::ptr::addr_of!(FUZZ_RO) as *const u8;
                if rng.below(4) == 0 {
                    // The canary's key: the fuzzer may not change it (its TBF ids do not allow it).
                    ptr = CANARY_KEY.as_ptr();
                    len = CANARY_KEY.len();
                }
                (syscall_class::ALLOW_RO, [KV.into(), id.into(), ptr.into(), len.into()])
            }
            // Read-write allows: in RAM, in flash (refused), outside the app (refused).
            9..=10 => {
                let id = rng.below(3);
                let len = lens[rng.below(lens.len() as u32) as usize];
                let ptr: *mut u8 = match rng.below(4) {
                    0 => FUZZ_FLASH.as_ptr() as *mut u8,
                    1 => 0x8000_0000usize as *mut u8,
                    _ => core::ptr::addr_of_mut!(FUZZ_RW) as *mut u8,
                };
                (syscall_class::ALLOW_RW, [KV.into(), id.into(), ptr.into(), len.into()])
            }
            // Revoke an allow (null, zero length), possibly mid-operation.
            11 => {
                let class = if rng.below(2) == 0 { syscall_class::ALLOW_RO } else { syscall_class::ALLOW_RW };
                (class, [KV.into(), rng.below(3).into(), core::ptr::null::<u8>().into(), 0usize.into()])
            }
            // Subscribe: the right slot, a missing one, or unsubscribe.
            12..=13 => {
                let id = rng.below(3);
                let f: *const () =
                    if rng.below(3) == 0 { core::ptr::null() } else { fuzz_upcall as *const () };
                (syscall_class::SUBSCRIBE, [KV.into(), id.into(), f.into(), 0usize.into()])
            }
            // Let time pass so operations complete (and upcalls arrive).
            _ => {
                let ms = 1 + rng.below(3);
                drain_upcalls();
                started = 0;
                let _ = Alarm::sleep_for(Milliseconds(ms));
                continue;
            }
        };
        // SAFETY: see above; every pointer passed is a static or one the kernel must refuse.
        let r = unsafe {
            match class {
                syscall_class::COMMAND => TockSyscalls::syscall4::<{ syscall_class::COMMAND }>(regs),
                syscall_class::ALLOW_RO => TockSyscalls::syscall4::<{ syscall_class::ALLOW_RO }>(regs),
                syscall_class::ALLOW_RW => TockSyscalls::syscall4::<{ syscall_class::ALLOW_RW }>(regs),
                _ => TockSyscalls::syscall4::<{ syscall_class::SUBSCRIBE }>(regs),
            }
        };
        calls += 1;
        if !well_formed(r) {
            bad += 1;
            line!(
                "VIOLATION fuzz: call {} class {}: return variant {} r1 {}",
                i,
                class,
                r[0].as_u32(),
                r[1].as_u32()
            );
        } else if r[0].as_u32() >= 128 {
            ok += 1;
        } else {
            failed += 1;
        }
        // Each started operation queues one upcall (or a null upcall) when it completes;
        // take them before they can fill this process's upcall queue (see drain_upcalls).
        if class == syscall_class::COMMAND && r[0].as_u32() >= 128 {
            started += 1;
        }
        if started >= 6 {
            drain_upcalls();
            started = 0;
        }
    }
    // Leave nothing allowed or subscribed.
    for id in 0..3u32 {
        revoke(id);
    }
    // Then wait until the driver holds nothing of this app's: an operation it queued is
    // started later with whatever the app has allowed by then, and its upcall goes to whatever
    // is subscribed when it completes (the driver's ABI, as upstream's). A libtock call made
    // while one is still queued or running gets NOMEM until that one ends, and then the old
    // operation's upcall as its own answer: in one soak boot (10,468 calls) the `set` below
    // got the NOSUPPORT of an older operation after 175 NOMEM retries over 252 ms, and the
    // `get` after it the `set`'s own (Ok, length 0).
    let (idle, probes, waited_us) = wait_until_idle();
    if !idle {
        bad += 1;
        line!("VIOLATION fuzz: an operation of its own still in flight {} us after fuzzing ({} probes)", waited_us, probes);
    }
    // The driver still serves this app: a plain set and get of its own key, each checked.
    let mut buf = [0u8; 16];
    let set = s.call(|| KeyValue::set(b"fuzz_own", b"still works"));
    let get = s.call(|| KeyValue::get(b"fuzz_own", &mut buf));
    if set != Ok(()) {
        bad += 1;
        line!("VIOLATION fuzz: after fuzzing, set of its own key: {:?}", set);
    } else if get != Ok(11) || &buf[..11] != b"still works" {
        bad += 1;
        line!("VIOLATION fuzz: after fuzzing, get of its own key: {:?}, value {:?}", get, &buf[..]);
    }
    // SAFETY: read after every syscall that could run the upcall.
    let upcalls = unsafe { UPCALLS };
    line!(
        "fuzz: done calls {} ok {} failed {} upcalls {} idle_probes {} idle_wait_us {} violations {}",
        calls,
        ok,
        failed,
        upcalls,
        probes,
        waited_us,
        bad
    );
}

/// Revokes the fuzzer's read-only and read-write allow `id` and its subscription `id`.
fn revoke(id: u32) {
    let null = core::ptr::null::<u8>();
    // SAFETY: revoking allows and a subscription hands nothing to the kernel.
    unsafe {
        TockSyscalls::syscall4::<{ syscall_class::ALLOW_RO }>([KV.into(), id.into(), null.into(), 0usize.into()]);
        TockSyscalls::syscall4::<{ syscall_class::ALLOW_RW }>([KV.into(), id.into(), null.into(), 0usize.into()]);
        TockSyscalls::syscall4::<{ syscall_class::SUBSCRIBE }>([KV.into(), id.into(), null.into(), 0usize.into()]);
    }
}

/// Waits until the driver holds no operation of this app's, probing without side effects:
/// with a key one byte over the limit allowed, a `get` is refused `SIZE` at the call when the
/// app has nothing outstanding (nothing starts), and `NOMEM` while its previous operation is
/// queued or running. An operation of its own still queued when it starts finds the same
/// over-long key and ends at once with `SIZE`. Returns (idle, probes, microseconds waited);
/// gives up after 30,000 probes a millisecond apart, far longer than the nine apps' queue
/// takes (its longest wait in a soak boot: 1.3 s).
fn wait_until_idle() -> (bool, u32, u64) {
    let start = now_us();
    let key = core::ptr::addr_of!(FUZZ_RO) as *const u8;
    // SAFETY: a static that lives forever; only read by the kernel.
    unsafe {
        TockSyscalls::syscall4::<{ syscall_class::ALLOW_RO }>([KV.into(), 0u32.into(), key.into(), (MAX_KEY + 1).into()]);
    }
    let mut probes = 0;
    let result = loop {
        probes += 1;
        match TockSyscalls::command(KV, 1, 0, 0).to_result::<(), ErrorCode>() {
            Err(ErrorCode::Size) => break true,
            Err(ErrorCode::NoMem) if probes < 30_000 => {
                let _ = Alarm::sleep_for(Milliseconds(1));
            }
            Err(ErrorCode::NoMem) => break false,
            r => {
                line!("VIOLATION fuzz: probing for an operation in flight: {:?}", r);
                break false;
            }
        }
    };
    revoke(0);
    (result, probes, now_us().wrapping_sub(start))
}

// ---------------------------------------------------------------------------------------
// The dying app.

static mut DIE_KEY: [u8; 8] = *b"die_data";
static mut DIE_VALUE: [u8; MAX_VALUE] = [0x44; MAX_VALUE];
static mut DIE_OUT: [u8; 512] = [0; 512];

fn die() {
    let mut s = Stats::default();
    let mut buf = [0u8; 8];
    let lives = match s.call(|| KeyValue::get(b"die_lives", &mut buf)) {
        Ok(4) => u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
        Err(ErrorCode::NoSupport) => 0,
        r => {
            line!("VIOLATION die: life counter: {:?}", r);
            0
        }
    };
    if lives >= LIVES {
        let r = s.call(|| KeyValue::delete(b"die_lives"));
        line!("die: done lives {} (counter deleted: {:?})", lives, r);
        return;
    }
    if s.call(|| KeyValue::set(b"die_lives", &(lives + 1).to_le_bytes())) != Ok(()) {
        line!("VIOLATION die: could not count life {}", lives + 1);
    }
    let mut rng = Rng::new(lives ^ 0xD1E);
    let cmd = [1u32, 2, 3, 6][(lives % 4) as usize];
    line!("die: life {} command {} then fault", lives + 1, cmd);
    // SAFETY: static buffers, allowed and never revoked: this process faults with the
    // operation in flight, which is the point.
    unsafe {
        let key = core::ptr::addr_of!(DIE_KEY) as *const u8;
        let value = core::ptr::addr_of!(DIE_VALUE) as *const u8;
        let out = core::ptr::addr_of_mut!(DIE_OUT) as *mut u8;
        TockSyscalls::syscall4::<{ syscall_class::ALLOW_RO }>([
            KV.into(),
            0u32.into(),
            key.into(),
            8usize.into(),
        ]);
        TockSyscalls::syscall4::<{ syscall_class::ALLOW_RO }>([
            KV.into(),
            1u32.into(),
            value.into(),
            MAX_VALUE.into(),
        ]);
        TockSyscalls::syscall4::<{ syscall_class::ALLOW_RW }>([
            KV.into(),
            0u32.into(),
            out.into(),
            512usize.into(),
        ]);
        TockSyscalls::syscall4::<{ syscall_class::SUBSCRIBE }>([
            KV.into(),
            0u32.into(),
            (fuzz_upcall as *const ()).into(),
            0usize.into(),
        ]);
    }
    let _ = TockSyscalls::command(KV, cmd, 0, 0);
    // Sometimes let the operation get under way first (still well before it completes).
    if rng.below(2) == 0 {
        TockSyscalls::yield_no_wait();
    }
    // SAFETY: not safe at all, on purpose: a load from address 0 is outside this process's
    // memory, so the kernel's memory protection faults the process here.
    unsafe {
        core::ptr::read_volatile(core::ptr::null::<u32>());
    }
    line!("VIOLATION die: survived a load from address 0");
}

// ---------------------------------------------------------------------------------------

fn gc() {
    let mut s = Stats::default();
    let (mut ok, mut err) = (0u32, 0u32);
    let start = now_us();
    line!("gc: start at {} us", start);
    // A collection copies every live record and erases an area: one per eight worker
    // operations keeps it busy for the whole run.
    for _ in 0..OPS / 8 {
        match s.call(garbage_collect) {
            Ok(()) => ok += 1,
            Err(e) => {
                err += 1;
                line!("VIOLATION gc: garbage collection: {:?}", e);
            }
        }
    }
    line!(
        "gc: done collections {} ok {} failed {} busy {} nomem {} max_wait_us {} us {} end {}",
        s.ops,
        ok,
        err,
        s.busy,
        s.nomem,
        s.max_wait_us,
        now_us().wrapping_sub(start),
        now_us()
    );
}

/// Garbage collection (driver command 6; libtock-rs has no wrapper): status in the upcall.
fn garbage_collect() -> Result<(), ErrorCode> {
    use core::cell::Cell;
    use libtock::platform::share;
    use libtock::platform::subscribe::Subscribe;
    use libtock::platform::DefaultConfig;
    let done: Cell<Option<Result<(), ErrorCode>>> = Cell::new(None);
    share::scope::<Subscribe<_, KV, 0>, _, _>(|subscribe| {
        TockSyscalls::subscribe::<_, _, DefaultConfig, KV, 0>(subscribe, &done)?;
        TockSyscalls::command(KV, 6, 0, 0).to_result::<(), ErrorCode>()?;
        loop {
            TockSyscalls::yield_wait();
            if let Some(r) = done.get() {
                return r;
            }
        }
    })
}

fn main() {
    line!("{}{}: start at {} us", ROLE, INDEX, now_us());
    match ROLE {
        "worker" => worker(),
        "reader" => reader(),
        "canary" => canary(),
        "fuzz" => fuzz(),
        "die" => die(),
        "gc" => gc(),
        _ => line!("VIOLATION kv_stress: unknown role {}", ROLE),
    }
}
