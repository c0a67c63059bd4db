// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host test harness: a split-phase NOR-flash HIL over the flash simulator, a recording KV
//! client, and the kernel's deferred calls serviced from a test-driven loop.
//!
//! ```text
//! test code (calls, then `settle`/`step`)
//!
//!    hil::kv::KV / KVPermissions
//!
//! TdbStoreKv (under test) [+ upstream permission layers]
//!
//!    nor_flash_hil::NorFlash
//!
//! SimHil (this file): queues each operation, completes it from `step`
//!    flash_sim::FlashSim (strict: a second program of a unit is refused)
//! ```
//!
//! Tock's deferred-call state is global to the process (32 slots, one per capsule), so
//! every test takes [`setup`]'s lock and each test binary creates at most 32 capsules.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use capsules_tdbstore::component::TdbStoreComponent;
use capsules_tdbstore::tdbstore_kv::TdbStoreKv;
use flash_sim::{FlashSim, SimError};
use kernel::component::Component;
use kernel::deferred_call::DeferredCall;
use kernel::hil::kv::{KVClient, KV};
use kernel::platform::chip::ThreadIdProvider;
use kernel::utilities::cells::OptionalCell;
use kernel::utilities::io_write::IoWrite;
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{Geometry, NorFlash, NorFlashClient};

/// 8 sectors of 8 KiB with the STM32H7's 32-byte flash words: two 32 KiB areas.
pub const GEOMETRY: Geometry =
    Geometry { size: 8 * 8192, read_size: 1, program_size: 32, erase_size: 8192, erase_value: 0xFF };

// ------------------------------------------------------------------------------------------
// Global kernel state.

struct TestThread;
// SAFETY: every test holds `LOCK` while it touches kernel state, so the deferred-call and
// debug-writer cells are only ever used by one thread at a time (with the lock's
// happens-before ordering between tests).
unsafe impl ThreadIdProvider for TestThread {
    fn running_thread_id() -> usize {
        0
    }
}

static LOCK: Mutex<()> = Mutex::new(());
static INIT: Once = Once::new();
static CAPSULES: AtomicUsize = AtomicUsize::new(0);

/// Collects `debug!` output.
struct DebugCapture {
    out: RefCell<String>,
}

impl kernel::debug::DebugWriter for DebugCapture {
    fn write(&self, bytes: &[u8], _overflow: &[u8]) -> usize {
        self.out.borrow_mut().push_str(&String::from_utf8_lossy(bytes));
        bytes.len()
    }
    fn available_len(&self) -> usize {
        usize::MAX
    }
    fn to_write_len(&self) -> usize {
        0
    }
    fn publish(&self) -> usize {
        0
    }
    fn flush(&self, _writer: &mut dyn IoWrite) {}
}

struct DebugCap;
// SAFETY: test code stands in for the board, which holds this capability.
unsafe impl kernel::capabilities::SetDebugWriterCapability for DebugCap {}

struct Captured(&'static DebugCapture);
// SAFETY: only touched under `LOCK` (see `TestThread`).
unsafe impl Sync for Captured {}
unsafe impl Send for Captured {}
static DEBUG: Mutex<Option<Captured>> = Mutex::new(None);

/// Takes the test lock, initializes the kernel's deferred calls and debug writer once, and
/// drains anything a failed earlier test left pending.
pub fn setup() -> MutexGuard<'static, ()> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    INIT.call_once(|| {
        kernel::deferred_call::initialize_deferred_call_state::<TestThread>();
        kernel::debug::initialize_debug_writer_wrapper::<TestThread>();
        let capture: &'static DebugCapture =
            Box::leak(Box::new(DebugCapture { out: RefCell::new(String::new()) }));
        kernel::debug::set_debug_writer_wrapper(capture, DebugCap);
        *DEBUG.lock().unwrap() = Some(Captured(capture));
    });
    for _ in 0..10_000 {
        if DeferredCall::service_next_pending().is_none() {
            break;
        }
    }
    take_debug_output();
    guard
}

/// `debug!` output since the last call.
pub fn take_debug_output() -> String {
    DEBUG.lock().unwrap().as_ref().map(|c| c.0.out.take()).unwrap_or_default()
}

/// Leaks an uninitialized static slot, as `static_buf!` gives a board.
pub fn slot<T>() -> &'static mut MaybeUninit<T> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

pub fn leak(bytes: &[u8]) -> &'static mut [u8] {
    Box::leak(bytes.to_vec().into_boxed_slice())
}

// ------------------------------------------------------------------------------------------
// The simulated NOR-flash HIL.

/// What happened, in order: flash operations as they complete, client callbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Read(u32, usize),
    Program(u32, usize),
    Erase(u32),
    Client(&'static str),
}

/// An operation in flight, holding the lent buffer with the window it was lent with (the
/// window is the range read into or programmed from; it goes back to the client unchanged).
enum Pending {
    Read(u32, SubSliceMut<'static, u8>),
    Program(u32, SubSliceMut<'static, u8>),
    Erase(u32),
}

/// Which operation an injected fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Program,
    Erase,
}

/// A NOR-flash HIL driver over [`FlashSim`]: one operation at a time, completed only by
/// [`SimHil::complete_one`] (never inside the call), like an interrupt-driven driver.
pub struct SimHil {
    pub sim: RefCell<FlashSim>,
    client: OptionalCell<&'static dyn NorFlashClient>,
    pending: RefCell<Option<Pending>>,
    /// Completes the next operation of this kind with this error (and does nothing).
    pub fail_next: Cell<Option<(Kind, ErrorCode)>>,
    /// Refuses the next operation of this kind synchronously with this error.
    pub refuse_next: Cell<Option<(Kind, ErrorCode)>>,
    pub events: RefCell<Vec<Event>>,
}

impl SimHil {
    pub fn new(mut sim: FlashSim) -> &'static SimHil {
        sim.set_strict(true);
        Box::leak(Box::new(SimHil {
            sim: RefCell::new(sim),
            client: OptionalCell::empty(),
            pending: RefCell::new(None),
            fail_next: Cell::new(None),
            refuse_next: Cell::new(None),
            events: RefCell::new(Vec::new()),
        }))
    }

    pub fn image(&self) -> Vec<u8> {
        self.sim.borrow().image().to_vec()
    }

    pub fn is_pending(&self) -> bool {
        self.pending.borrow().is_some()
    }

    pub fn pending_kind(&self) -> Option<Kind> {
        self.pending.borrow().as_ref().map(|p| match p {
            Pending::Read(..) => Kind::Read,
            Pending::Program(..) => Kind::Program,
            Pending::Erase(..) => Kind::Erase,
        })
    }

    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.borrow().iter().filter(|e| f(e)).count()
    }

    fn injected(&self, kind: Kind) -> Option<ErrorCode> {
        match self.fail_next.get() {
            Some((k, e)) if k == kind => {
                self.fail_next.set(None);
                Some(e)
            }
            _ => None,
        }
    }

    fn refused(&self, kind: Kind) -> Option<ErrorCode> {
        match self.refuse_next.get() {
            Some((k, e)) if k == kind => {
                self.refuse_next.set(None);
                Some(e)
            }
            _ => None,
        }
    }

    /// The simulator's errors as the HIL reports them.
    fn code(e: SimError) -> ErrorCode {
        match e {
            SimError::Ecc { .. } => ErrorCode::FAIL,
            SimError::DoubleProgram { .. } => ErrorCode::RESERVE,
            SimError::PowerLost => ErrorCode::OFF,
            SimError::OutOfBounds | SimError::NotAligned => ErrorCode::INVAL,
        }
    }

    /// Completes the pending operation, if any.
    pub fn complete_one(&self) -> bool {
        let Some(p) = self.pending.borrow_mut().take() else { return false };
        match p {
            Pending::Read(addr, mut buf) => {
                let len = buf.len();
                let r = match self.injected(Kind::Read) {
                    Some(e) => Err(e),
                    None => self.sim.borrow_mut().read(addr, buf.as_mut_slice()).map_err(Self::code),
                };
                self.events.borrow_mut().push(Event::Read(addr, len));
                self.client.map(|c| c.read_complete(buf, r));
            }
            Pending::Program(addr, buf) => {
                let len = buf.len();
                let r = match self.injected(Kind::Program) {
                    Some(e) => Err(e),
                    None => self.sim.borrow_mut().program(addr, buf.as_slice()).map_err(Self::code),
                };
                self.events.borrow_mut().push(Event::Program(addr, len));
                self.client.map(|c| c.program_complete(buf, r));
            }
            Pending::Erase(addr) => {
                let size = self.sim.borrow().geometry().erase_size;
                let r = match self.injected(Kind::Erase) {
                    Some(e) => Err(e),
                    None => self.sim.borrow_mut().erase(addr, size).map_err(Self::code),
                };
                self.events.borrow_mut().push(Event::Erase(addr));
                self.client.map(|c| c.erase_complete(r));
            }
        }
        true
    }
}

impl NorFlash<'static> for SimHil {
    fn set_client(&self, client: &'static dyn NorFlashClient) {
        self.client.set(client);
    }

    fn geometry(&self) -> Geometry {
        self.sim.borrow().geometry()
    }

    fn read(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        let g = self.geometry();
        if self.is_pending() {
            return Err((ErrorCode::BUSY, buffer));
        }
        if let Some(e) = self.refused(Kind::Read) {
            return Err((e, buffer));
        }
        if let Err(e) = nor_flash_hil::check_range(&g, addr, buffer.len(), g.read_size) {
            return Err((e, buffer));
        }
        *self.pending.borrow_mut() = Some(Pending::Read(addr, buffer));
        Ok(())
    }

    fn program(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        let g = self.geometry();
        if self.is_pending() {
            return Err((ErrorCode::BUSY, buffer));
        }
        if let Some(e) = self.refused(Kind::Program) {
            return Err((e, buffer));
        }
        if let Err(e) = nor_flash_hil::check_range(&g, addr, buffer.len(), g.program_size) {
            return Err((e, buffer));
        }
        *self.pending.borrow_mut() = Some(Pending::Program(addr, buffer));
        Ok(())
    }

    fn erase(&self, addr: u32) -> Result<(), ErrorCode> {
        let g = self.geometry();
        if self.is_pending() {
            return Err(ErrorCode::BUSY);
        }
        if let Some(e) = self.refused(Kind::Erase) {
            return Err(e);
        }
        nor_flash_hil::check_range(&g, addr, g.erase_size as usize, g.erase_size)?;
        *self.pending.borrow_mut() = Some(Pending::Erase(addr));
        Ok(())
    }
}

/// One unit of progress: a flash completion, else one deferred call. `false` when idle.
pub fn step(hil: &SimHil) -> bool {
    hil.complete_one() || DeferredCall::service_next_pending().is_some()
}

/// Runs flash completions and deferred calls until nothing is left.
pub fn settle(hil: &SimHil) {
    for _ in 0..1_000_000 {
        if !step(hil) {
            return;
        }
    }
    panic!("never went idle");
}

// ------------------------------------------------------------------------------------------
// A recording client.

/// A completed (or refused) operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// The call itself returned this error (buffers came back at once).
    Refused(ErrorCode),
    /// `get_complete`: result and the value buffer's active range.
    Get(Result<(), ErrorCode>, Vec<u8>),
    Set(Result<(), ErrorCode>),
    Add(Result<(), ErrorCode>),
    Update(Result<(), ErrorCode>),
    Delete(Result<(), ErrorCode>),
    Gc(Result<(), ErrorCode>),
}

/// Records completions; flags any callback that arrives while the test is inside a call.
pub struct Recorder {
    pub done: RefCell<Vec<Done>>,
    pub in_call: Cell<bool>,
    pub sync_callbacks: Cell<usize>,
    /// The returned key buffers' contents (checks the capsule hands back what it was given).
    pub keys: RefCell<Vec<Vec<u8>>>,
    events: Cell<Option<&'static SimHil>>,
}

impl Recorder {
    pub fn new(hil: Option<&'static SimHil>) -> &'static Recorder {
        Box::leak(Box::new(Recorder {
            done: RefCell::new(Vec::new()),
            in_call: Cell::new(false),
            sync_callbacks: Cell::new(0),
            keys: RefCell::new(Vec::new()),
            events: Cell::new(hil),
        }))
    }

    fn record(&self, name: &'static str, d: Done, key: Option<&SubSliceMut<'static, u8>>) {
        if self.in_call.get() {
            self.sync_callbacks.set(self.sync_callbacks.get() + 1);
        }
        if let Some(h) = self.events.get() {
            h.events.borrow_mut().push(Event::Client(name));
        }
        if let Some(k) = key {
            self.keys.borrow_mut().push(k.as_slice().to_vec());
        }
        self.done.borrow_mut().push(d);
    }

    /// The one completion recorded since the last call.
    pub fn take(&self) -> Done {
        let mut d = self.done.borrow_mut();
        assert_eq!(d.len(), 1, "expected exactly one completion, got {:?}", *d);
        d.pop().unwrap()
    }
}

impl KVClient for Recorder {
    fn get_complete(
        &self,
        r: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        value: SubSliceMut<'static, u8>,
    ) {
        self.record("get", Done::Get(r, value.as_slice().to_vec()), Some(&key));
    }
    fn set_complete(
        &self,
        r: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        _v: SubSliceMut<'static, u8>,
    ) {
        self.record("set", Done::Set(r), Some(&key));
    }
    fn add_complete(
        &self,
        r: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        _v: SubSliceMut<'static, u8>,
    ) {
        self.record("add", Done::Add(r), Some(&key));
    }
    fn update_complete(
        &self,
        r: Result<(), ErrorCode>,
        key: SubSliceMut<'static, u8>,
        _v: SubSliceMut<'static, u8>,
    ) {
        self.record("update", Done::Update(r), Some(&key));
    }
    fn delete_complete(&self, r: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>) {
        self.record("delete", Done::Delete(r), Some(&key));
    }
    fn garbage_collection_complete(&self, r: Result<(), ErrorCode>) {
        self.record("gc", Done::Gc(r), None);
    }
}

// ------------------------------------------------------------------------------------------
// A capsule on the simulated flash.

pub type Kv = TdbStoreKv<'static, SimHil>;

/// Builds a capsule through its component with `KEYS` index entries and a `WORK`-byte work
/// buffer (the only I/O buffer: lent to the flash for each read and program).
pub fn capsule<const KEYS: usize, const WORK: usize>(hil: &'static SimHil) -> &'static Kv {
    count_deferred_call();
    TdbStoreComponent::<SimHil, KEYS, WORK>::new(hil).finalize((slot(), slot(), slot()))
}

/// Counts a capsule (a deferred call) about to be created: at most 32 per test binary.
pub fn count_deferred_call() {
    let n = CAPSULES.fetch_add(1, Ordering::Relaxed) + 1;
    assert!(n <= 32, "more than 32 capsules (deferred calls) in one test binary: split the tests");
}

/// A capsule, its flash and a recording client.
pub struct Rig {
    pub hil: &'static SimHil,
    pub kv: &'static Kv,
    pub rec: &'static Recorder,
}

impl Rig {
    /// A capsule (32 keys, 512-byte buffers) over `sim`; mounted and idle.
    pub fn new(sim: FlashSim) -> Rig {
        let rig = Rig::unmounted(SimHil::new(sim));
        rig.kv.mount().unwrap();
        rig.settle();
        rig
    }

    /// A capsule over `hil` on which nothing has been called yet.
    pub fn unmounted(hil: &'static SimHil) -> Rig {
        Rig::with(hil, capsule::<32, 512>(hil))
    }

    /// Wraps a capsule built elsewhere.
    pub fn with(hil: &'static SimHil, kv: &'static Kv) -> Rig {
        let rec = Recorder::new(Some(hil));
        kv.set_client(rec);
        Rig { hil, kv, rec }
    }

    /// A new capsule instance over the same flash (as after a reboot), mounted.
    pub fn remount(&self) -> Rig {
        let rig = Rig::unmounted(self.hil);
        rig.kv.mount().unwrap();
        rig.settle();
        rig
    }

    pub fn settle(&self) {
        settle(self.hil);
        assert_eq!(self.rec.sync_callbacks.get(), 0, "a callback arrived inside a call");
    }

    /// Calls `f` with the recorder flagged as "inside a call".
    pub fn call<R>(&self, f: impl FnOnce() -> R) -> R {
        self.rec.in_call.set(true);
        let r = f();
        self.rec.in_call.set(false);
        r
    }

    /// Starts a get with a `room`-byte value buffer; `Err` if refused at once.
    pub fn start_get(&self, key: &[u8], room: usize) -> Result<(), ErrorCode> {
        let (k, v) = (SubSliceMut::new(leak(key)), SubSliceMut::new(leak(&vec![0; room])));
        self.call(|| self.kv.get(k, v)).map_err(|(k, _, e)| {
            assert_eq!(k.as_slice(), key, "key buffer returned");
            e
        })
    }

    pub fn start_set(&self, op: &str, key: &[u8], value: &[u8]) -> Result<(), ErrorCode> {
        let (k, v) = (SubSliceMut::new(leak(key)), SubSliceMut::new(leak(value)));
        let r = self.call(|| match op {
            "set" => self.kv.set(k, v),
            "add" => self.kv.add(k, v),
            "update" => self.kv.update(k, v),
            _ => panic!("{op}"),
        });
        r.map_err(|(k, v, e)| {
            assert_eq!((k.as_slice(), v.as_slice()), (key, value), "buffers returned");
            e
        })
    }

    pub fn start_delete(&self, key: &[u8]) -> Result<(), ErrorCode> {
        let k = SubSliceMut::new(leak(key));
        self.call(|| self.kv.delete(k)).map_err(|(_, e)| e)
    }

    fn finish(&self, started: Result<(), ErrorCode>) -> Done {
        match started {
            Err(e) => {
                self.settle();
                assert!(self.rec.done.borrow().is_empty(), "a refused call also completed");
                Done::Refused(e)
            }
            Ok(()) => {
                self.settle();
                self.rec.take()
            }
        }
    }

    pub fn get(&self, key: &[u8], room: usize) -> Done {
        self.finish(self.start_get(key, room))
    }
    pub fn set(&self, key: &[u8], value: &[u8]) -> Done {
        self.finish(self.start_set("set", key, value))
    }
    pub fn add(&self, key: &[u8], value: &[u8]) -> Done {
        self.finish(self.start_set("add", key, value))
    }
    pub fn update(&self, key: &[u8], value: &[u8]) -> Done {
        self.finish(self.start_set("update", key, value))
    }
    pub fn delete(&self, key: &[u8]) -> Done {
        self.finish(self.start_delete(key))
    }
    pub fn gc(&self) -> Done {
        let r = self.call(|| self.kv.garbage_collect());
        self.finish(r)
    }

    /// The value of `key`, or the error of reading it.
    pub fn value(&self, key: &[u8]) -> Result<Vec<u8>, ErrorCode> {
        match self.get(key, 4096) {
            Done::Get(Ok(()), v) => Ok(v),
            Done::Get(Err(e), _) | Done::Refused(e) => Err(e),
            other => panic!("{other:?}"),
        }
    }

    /// Checks the flash was never asked to program a unit twice.
    pub fn check_flash(&self) {
        let s = self.hil.sim.borrow();
        assert_eq!(s.stats().double_programs, 0);
    }
}

/// Deterministic noise (xorshift).
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Upstream's permission layers over the capsule, as the boards wire them.

/// Upstream's `KVStorePermissions` over the capsule.
pub type Perms = capsules_extra::kv_store_permissions::KVStorePermissions<'static, Kv>;
/// Upstream's mux over the permission layer.
pub type Mux = capsules_extra::virtualizers::virtual_kv::MuxKVPermissions<'static, Perms>;
/// One virtual client of the mux.
pub type Virt = capsules_extra::virtualizers::virtual_kv::VirtualKVPermissions<'static, Perms>;

/// The TDBStore capsule and upstream's permission layer and mux over `hil`, mounted, wired
/// as the boards wire it (the capsule's minimum value length is the permission header).
pub fn upstream_stack(hil: &'static SimHil) -> &'static Mux {
    use capsules_extra::kv_store_permissions::{KVStorePermissions, HEADER_LENGTH};
    let kv = capsule::<32, 512>(hil);
    kv.set_min_value_len(HEADER_LENGTH);
    let header: &'static mut [u8; HEADER_LENGTH] = Box::leak(Box::new([0; HEADER_LENGTH]));
    let perms: &'static Perms = Box::leak(Box::new(KVStorePermissions::new(kv, header)));
    kv.set_client(perms);
    let mux: &'static Mux =
        Box::leak(Box::new(capsules_extra::virtualizers::virtual_kv::MuxKVPermissions::new(perms)));
    kernel::hil::kv::KVPermissions::set_client(perms, mux);
    kv.mount().unwrap();
    settle(hil);
    mux
}
