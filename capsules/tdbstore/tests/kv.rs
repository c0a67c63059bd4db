//! The capsule on the host: a simulated NOR-flash HIL that completes operations later (as
//! interrupts would), backed by the STM32H7 flash simulator, driven through `hil::kv::KV`
//! directly and through upstream's permission layer with two clients.
//!
//! Tock's deferred calls are process-global, so every scenario runs in one test function.

use std::cell::{Cell, RefCell};

use capsules_extra::kv_store_permissions::KVStorePermissions;
use capsules_extra::virtualizers::virtual_kv::{MuxKVPermissions, VirtualKVPermissions};
use capsules_tdbstore::component::TdbStoreComponent;
use capsules_tdbstore::tdbstore_kv::{MountState, TdbStoreKv};
use capsules_tdbstore::IndexEntry;
use flash_sim::FlashSim;
use kernel::capabilities::ApplicationStorageCapability;
use kernel::component::Component;
use kernel::deferred_call::DeferredCall;
use kernel::hil::kv::{KVClient, KVPermissions, KV};
use kernel::platform::chip::ThreadIdProvider;
use kernel::storage_permissions::StoragePermissions;
use kernel::utilities::cells::OptionalCell;
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{Geometry, NorFlash, NorFlashClient};

struct HostThread;
// SAFETY: the tests run every scenario on one thread.
unsafe impl ThreadIdProvider for HostThread {
    fn running_thread_id() -> usize {
        0
    }
}

enum Pending {
    Read(u32, &'static mut [u8], usize),
    Program(u32, &'static mut [u8], usize),
    Erase(u32),
}

/// The simulated flash behind the HIL; completions wait for [`SimHil::run_one`].
struct SimHil {
    sim: RefCell<FlashSim>,
    client: OptionalCell<&'static dyn NorFlashClient>,
    pending: RefCell<Option<Pending>>,
}

impl SimHil {
    fn new(sim: FlashSim) -> &'static SimHil {
        Box::leak(Box::new(SimHil { sim: RefCell::new(sim), client: OptionalCell::empty(), pending: RefCell::new(None) }))
    }

    /// Completes the pending operation, if any.
    fn run_one(&self) -> bool {
        let Some(p) = self.pending.borrow_mut().take() else { return false };
        let map = |r: Result<(), flash_sim::SimError>| r.map_err(|_| ErrorCode::FAIL);
        match p {
            Pending::Read(addr, buf, len) => {
                let r = map(self.sim.borrow_mut().read(addr, &mut buf[..len]));
                self.client.map(|c| c.read_complete(buf, r));
            }
            Pending::Program(addr, buf, len) => {
                let r = map(self.sim.borrow_mut().program(addr, &buf[..len]));
                self.client.map(|c| c.program_complete(buf, r));
            }
            Pending::Erase(addr) => {
                let size = self.sim.borrow().geometry().erase_size;
                let r = map(self.sim.borrow_mut().erase(addr, size));
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
        let g = self.sim.borrow().geometry();
        Geometry {
            size: g.size,
            read_size: g.read_size,
            program_size: g.program_size,
            erase_size: g.erase_size,
            erase_value: g.erase_value,
        }
    }
    fn read(&self, addr: u32, buffer: &'static mut [u8], len: usize) -> Result<(), (ErrorCode, &'static mut [u8])> {
        let g = self.geometry();
        if self.pending.borrow().is_some() {
            return Err((ErrorCode::BUSY, buffer));
        }
        if let Err(e) = nor_flash_hil::check_range(&g, addr, len, g.read_size, buffer.len()) {
            return Err((e, buffer));
        }
        *self.pending.borrow_mut() = Some(Pending::Read(addr, buffer, len));
        Ok(())
    }
    fn program(&self, addr: u32, buffer: &'static mut [u8], len: usize) -> Result<(), (ErrorCode, &'static mut [u8])> {
        let g = self.geometry();
        if self.pending.borrow().is_some() {
            return Err((ErrorCode::BUSY, buffer));
        }
        if let Err(e) = nor_flash_hil::check_range(&g, addr, len, g.program_size, buffer.len()) {
            return Err((e, buffer));
        }
        *self.pending.borrow_mut() = Some(Pending::Program(addr, buffer, len));
        Ok(())
    }
    fn erase(&self, addr: u32) -> Result<(), ErrorCode> {
        let g = self.geometry();
        if self.pending.borrow().is_some() {
            return Err(ErrorCode::BUSY);
        }
        nor_flash_hil::check_range(&g, addr, g.erase_size as usize, g.erase_size, usize::MAX)?;
        *self.pending.borrow_mut() = Some(Pending::Erase(addr));
        Ok(())
    }
}

/// Runs flash completions and deferred calls until nothing is left.
fn settle(hil: &SimHil) {
    for _ in 0..1_000_000 {
        let progressed = hil.run_one() || DeferredCall::service_next_pending().is_some();
        if !progressed {
            return;
        }
    }
    panic!("the capsule never went idle");
}

#[derive(Debug, Clone, PartialEq)]
enum Done {
    Get(Result<(), ErrorCode>, Vec<u8>),
    Set(Result<(), ErrorCode>),
    Add(Result<(), ErrorCode>),
    Update(Result<(), ErrorCode>),
    Delete(Result<(), ErrorCode>),
    Gc(Result<(), ErrorCode>),
}

/// Records completions and keeps the buffers for the next call.
struct Recorder {
    done: RefCell<Vec<Done>>,
    key: Cell<Option<&'static mut [u8]>>,
    value: Cell<Option<&'static mut [u8]>>,
}

impl Recorder {
    fn new() -> &'static Recorder {
        Box::leak(Box::new(Recorder {
            done: RefCell::new(Vec::new()),
            key: Cell::new(Some(Box::leak(Box::new([0u8; 64])))),
            value: Cell::new(Some(Box::leak(Box::new([0u8; 512])))),
        }))
    }
    fn bufs(&self, key: &[u8], value: &[u8], value_room: usize) -> (SubSliceMut<'static, u8>, SubSliceMut<'static, u8>) {
        let k = self.key.take().expect("key buffer out");
        let v = self.value.take().expect("value buffer out");
        k[..key.len()].copy_from_slice(key);
        v[..value.len()].copy_from_slice(value);
        let mut ks = SubSliceMut::new(k);
        ks.slice(..key.len());
        let mut vs = SubSliceMut::new(v);
        vs.slice(..value_room.max(value.len()));
        (ks, vs)
    }
    fn last(&self) -> Done {
        self.done.borrow_mut().pop().expect("no completion")
    }
    fn give_back(&self, key: SubSliceMut<'static, u8>, value: Option<SubSliceMut<'static, u8>>) {
        self.key.set(Some(key.take()));
        if let Some(v) = value {
            self.value.set(Some(v.take()));
        }
    }
}

impl KVClient for Recorder {
    fn get_complete(&self, r: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>, value: SubSliceMut<'static, u8>) {
        self.done.borrow_mut().push(Done::Get(r, value.as_slice().to_vec()));
        self.give_back(key, Some(value));
    }
    fn set_complete(&self, r: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>, value: SubSliceMut<'static, u8>) {
        self.done.borrow_mut().push(Done::Set(r));
        self.give_back(key, Some(value));
    }
    fn add_complete(&self, r: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>, value: SubSliceMut<'static, u8>) {
        self.done.borrow_mut().push(Done::Add(r));
        self.give_back(key, Some(value));
    }
    fn update_complete(&self, r: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>, value: SubSliceMut<'static, u8>) {
        self.done.borrow_mut().push(Done::Update(r));
        self.give_back(key, Some(value));
    }
    fn delete_complete(&self, r: Result<(), ErrorCode>, key: SubSliceMut<'static, u8>) {
        self.done.borrow_mut().push(Done::Delete(r));
        self.give_back(key, None);
    }
    fn garbage_collection_complete(&self, r: Result<(), ErrorCode>) {
        self.done.borrow_mut().push(Done::Gc(r));
    }
}

const GEOMETRY: flash_sim::Geometry =
    flash_sim::Geometry { size: 8 * 8192, read_size: 1, program_size: 32, erase_size: 8192, erase_value: 0xFF };

type Kv = TdbStoreKv<'static, SimHil>;

/// A capsule (through its component) over `sim`, mounted.
fn capsule(sim: FlashSim) -> (&'static SimHil, &'static Kv, &'static Recorder) {
    let hil = SimHil::new(sim);
    let bufs = (
        Box::leak(Box::new(core::mem::MaybeUninit::<Kv>::uninit())),
        Box::leak(vec![0u8; 512].into_boxed_slice()) as &'static mut [u8],
        Box::leak(vec![0u8; 512].into_boxed_slice()) as &'static mut [u8],
        Box::leak(vec![IndexEntry::default(); 32].into_boxed_slice()) as &'static mut [IndexEntry],
    );
    let kv = TdbStoreComponent::new(hil).finalize(bufs);
    let rec = Recorder::new();
    kv.set_client(rec);
    kv.mount().unwrap();
    settle(hil);
    (hil, kv, rec)
}

fn image(hil: &SimHil) -> FlashSim {
    hil.sim.borrow().clone()
}

fn set(hil: &SimHil, kv: &Kv, rec: &Recorder, key: &[u8], value: &[u8]) -> Done {
    let (k, v) = rec.bufs(key, value, 0);
    if let Err((k, v, e)) = kv.set(k, v) {
        rec.give_back(k, Some(v));
        return Done::Set(Err(e));
    }
    settle(hil);
    rec.last()
}

fn get(hil: &SimHil, kv: &Kv, rec: &Recorder, key: &[u8], room: usize) -> Done {
    let (k, v) = rec.bufs(key, &[], room);
    if let Err((k, v, e)) = kv.get(k, v) {
        rec.give_back(k, Some(v));
        return Done::Get(Err(e), vec![]);
    }
    settle(hil);
    rec.last()
}

#[test]
fn capsule_scenarios() {
    kernel::deferred_call::initialize_deferred_call_state::<HostThread>();

    // A blank region is formatted at mount; every KV operation's success and error paths.
    let (hil, kv, rec) = capsule(FlashSim::new(GEOMETRY));
    assert_eq!(kv.mount_state(), MountState::Mounted);
    let stats = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    assert_eq!(set(hil, kv, rec, b"stats", &stats), Done::Set(Ok(())));
    assert_eq!(get(hil, kv, rec, b"stats", 64), Done::Get(Ok(()), stats.to_vec()));
    assert_eq!(get(hil, kv, rec, b"stats", 4), Done::Get(Err(ErrorCode::SIZE), stats[..4].to_vec()));
    assert!(matches!(get(hil, kv, rec, b"missing", 64), Done::Get(Err(ErrorCode::NOSUPPORT), _)));
    assert_eq!(set(hil, kv, rec, b"a b", b"x"), Done::Set(Err(ErrorCode::INVAL)));
    assert_eq!(set(hil, kv, rec, b"TDBS", b"x"), Done::Set(Err(ErrorCode::INVAL)));

    let (k, v) = rec.bufs(b"stats", b"new", 0);
    kv.add(k, v).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Add(Err(ErrorCode::NOSUPPORT)), "add of an existing key");
    let (k, v) = rec.bufs(b"other", b"1", 0);
    kv.add(k, v).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Add(Ok(())));
    let (k, v) = rec.bufs(b"nope", b"1", 0);
    kv.update(k, v).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Update(Err(ErrorCode::NOSUPPORT)), "update of a missing key");
    let (k, v) = rec.bufs(b"other", b"22", 0);
    kv.update(k, v).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Update(Ok(())));
    assert_eq!(get(hil, kv, rec, b"other", 64), Done::Get(Ok(()), b"22".to_vec()));

    // One operation at a time.
    let (k, v) = rec.bufs(b"stats", &[], 64);
    kv.get(k, v).map_err(|_| ()).unwrap();
    let k2 = SubSliceMut::new(Box::leak(Box::new([b'x'; 1])) as &'static mut [u8]);
    let v2 = SubSliceMut::new(Box::leak(Box::new([0u8; 8])) as &'static mut [u8]);
    match kv.get(k2, v2) {
        Err((_, _, e)) => assert_eq!(e, ErrorCode::BUSY),
        Ok(()) => panic!("second operation accepted"),
    }
    settle(hil);
    assert_eq!(rec.last(), Done::Get(Ok(()), stats.to_vec()));

    let k = { let (k, v) = rec.bufs(b"other", &[], 0); rec.value.set(Some(v.take())); k };
    kv.delete(k).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Delete(Ok(())));
    let k = { let (k, v) = rec.bufs(b"other", &[], 0); rec.value.set(Some(v.take())); k };
    kv.delete(k).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Delete(Err(ErrorCode::NOSUPPORT)));

    kv.garbage_collect().unwrap();
    settle(hil);
    assert_eq!(rec.last(), Done::Gc(Ok(())));

    // Fill to NOMEM; everything written stays readable.
    let big = [0x5Au8; 400];
    let mut n = 0;
    loop {
        match set(hil, kv, rec, format!("k{n}").as_bytes(), &big) {
            Done::Set(Ok(())) => n += 1,
            Done::Set(Err(ErrorCode::NOMEM)) => break,
            other => panic!("{other:?}"),
        }
        assert!(n < 1000);
    }
    assert!(n > 10);
    assert_eq!(hil.sim.borrow().stats().double_programs, 0);

    // Remount: a new capsule over the same flash sees the same store.
    let (hil2, kv2, rec2) = capsule(image(hil));
    assert_eq!(get(hil2, kv2, rec2, b"stats", 64), Done::Get(Ok(()), stats.to_vec()));
    assert_eq!(get(hil2, kv2, rec2, format!("k{}", n - 1).as_bytes(), 512), Done::Get(Ok(()), big.to_vec()));
    assert!(kv2.info().is_some());

    // A foreign region: mount refuses, operations fail, nothing is written.
    let mut noise = vec![0u8; GEOMETRY.size as usize];
    let mut x = 0x9E37_79B9u32;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let (hil3, kv3, rec3) = capsule(FlashSim::from_image(GEOMETRY, noise.clone()).unwrap());
    assert!(matches!(kv3.mount_state(), MountState::Failed(tdbstore::Error::Foreign)));
    assert_eq!(set(hil3, kv3, rec3, b"k", b"v"), Done::Set(Err(ErrorCode::FAIL)));
    assert_eq!(hil3.sim.borrow().image(), &noise[..], "a foreign region is never touched");
    // An explicit format makes it usable.
    kv3.format().unwrap();
    settle(hil3);
    assert_eq!(kv3.mount_state(), MountState::Mounted);
    assert_eq!(set(hil3, kv3, rec3, b"k", b"v"), Done::Set(Ok(())));

    permissions_scenario();
}

/// Upstream's permission layer over the capsule: two clients with different write ids.
fn permissions_scenario() {
    struct Cap;
    // SAFETY: test code stands in for the kernel, which holds this capability.
    unsafe impl ApplicationStorageCapability for Cap {}

    let (hil, kv, _) = capsule(FlashSim::new(GEOMETRY));
    let header = Box::leak(Box::new([0u8; capsules_extra::kv_store_permissions::HEADER_LENGTH]));
    let perms: &'static KVStorePermissions<'static, Kv> = Box::leak(Box::new(KVStorePermissions::new(kv, header)));
    kv.set_client(perms);
    let mux: &'static MuxKVPermissions<'static, KVStorePermissions<'static, Kv>> =
        Box::leak(Box::new(MuxKVPermissions::new(perms)));
    perms.set_client(mux);
    let a: &'static VirtualKVPermissions<'static, KVStorePermissions<'static, Kv>> =
        Box::leak(Box::new(VirtualKVPermissions::new(mux)));
    a.setup();
    let b: &'static VirtualKVPermissions<'static, KVStorePermissions<'static, Kv>> =
        Box::leak(Box::new(VirtualKVPermissions::new(mux)));
    b.setup();
    let ra = Recorder::new();
    let rb = Recorder::new();
    a.set_client(ra);
    b.set_client(rb);

    let id = |n| core::num::NonZeroU32::new(n).unwrap();
    // App 1 writes as 1 and reads/modifies only 1. App 2 writes as 2, may read 1 and 2,
    // modify only 2.
    let p1 = StoragePermissions::new_listed(id(1), true, true, &[1], &[1], &Cap);
    let p2 = StoragePermissions::new_listed(id(2), true, true, &[1, 2], &[2], &Cap);
    let room = capsules_extra::kv_store_permissions::HEADER_LENGTH;

    let pset = |v: &'static VirtualKVPermissions<'static, KVStorePermissions<'static, Kv>>,
                r: &'static Recorder,
                p: StoragePermissions,
                key: &[u8],
                value: &[u8]| {
        // The permission layer writes its header into the first bytes of the value.
        let (k, mut vs) = r.bufs(key, &[0; 64][..room + value.len()], 0);
        vs.as_mut_slice()[room..room + value.len()].copy_from_slice(value);
        if let Err((k, v, e)) = v.set(k, vs, p) {
            r.give_back(k, Some(v));
            return Done::Set(Err(e));
        }
        settle(hil);
        r.last()
    };
    let pget = |v: &'static VirtualKVPermissions<'static, KVStorePermissions<'static, Kv>>,
                r: &'static Recorder,
                p: StoragePermissions,
                key: &[u8]| {
        let (k, vs) = r.bufs(key, &[], 64);
        if let Err((k, v, e)) = v.get(k, vs, p) {
            r.give_back(k, Some(v));
            return Done::Get(Err(e), vec![]);
        }
        settle(hil);
        r.last()
    };

    assert_eq!(pset(a, ra, p1, b"stats", b"run1"), Done::Set(Ok(())));
    assert_eq!(pget(a, ra, p1, b"stats"), Done::Get(Ok(()), b"run1".to_vec()), "owner reads");
    assert_eq!(pget(b, rb, p2, b"stats"), Done::Get(Ok(()), b"run1".to_vec()), "granted reader reads");
    assert!(matches!(pset(b, rb, p2, b"stats", b"evil"), Done::Set(Err(_))), "no modify access");
    assert_eq!(pget(a, ra, p1, b"stats"), Done::Get(Ok(()), b"run1".to_vec()), "unchanged");
    assert_eq!(pset(b, rb, p2, b"mine", b"2"), Done::Set(Ok(())));
    assert!(matches!(pget(a, ra, p1, b"mine"), Done::Get(Err(ErrorCode::NOSUPPORT), _)), "isolation");
    // The upstream example's sequence (libtock-rs examples/kv.rs): set, get, delete, get.
    assert_eq!(pset(a, ra, p1, b"mykey", b"hello"), Done::Set(Ok(())));
    assert_eq!(pget(a, ra, p1, b"mykey"), Done::Get(Ok(()), b"hello".to_vec()));
    let (k, v0) = ra.bufs(b"mykey", &[], 0);
    ra.value.set(Some(v0.take()));
    a.delete(k, p1).map_err(|_| ()).unwrap();
    settle(hil);
    assert_eq!(ra.last(), Done::Delete(Ok(())));
    assert!(matches!(pget(a, ra, p1, b"mykey"), Done::Get(Err(ErrorCode::NOSUPPORT), _)));
}
