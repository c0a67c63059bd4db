//! The stores under test behind one small interface: [`Backend`] opens a store over a flash
//! and caller-owned buffers, [`Kv`] is what the workloads call.
//!
//! Opening takes the flash by value and [`Kv::into_flash`] gives it back, so a "reboot" is
//! `into_flash` followed by a fresh `open` + [`Kv::mount`] with empty RAM state (caches
//! included). Buffers that a store borrows for its lifetime (the engine's work buffer and
//! index, TicKV's region buffer) live in [`Backend::Bufs`], outside the store, and are reused
//! across reboots like a device's static RAM.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::rc::Rc;

use embassy_futures::block_on;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use flash_sim::{FlashSim, Stats};
use sequential_storage::cache::key_pointers::ArrayKeyPointers;
use sequential_storage::cache::page_pointers::ArrayPagePointers;
use sequential_storage::cache::page_states::ArrayPageStates;
use sequential_storage::cache::{Cache, CacheImpl, Uncached};
use sequential_storage::map::{Key, MapConfig, MapStorage, SerializationError};
use tdbstore::blocking::BlockingStore;
use tdbstore::{IndexEntry, SetWhen, Store, StoreOptions};

use crate::flash::{self, Counting, EkvFlash, Requests, SsFlash, TickvFlash, TICKV_REGION};
use crate::StoreId;

/// What a workload does with a store. Errors are strings: the harness only records them.
pub trait Kv {
    /// Makes the fresh, erased device a store (format/initialise as the library requires).
    fn format(&mut self) -> Result<(), String>;
    /// Mounts the store already on the device (after a reboot).
    fn mount(&mut self) -> Result<(), String>;
    /// Reads `key` into `out`: its length, or `None` if absent.
    fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<Option<usize>, String>;
    /// Writes `value` under `key`, replacing any older value.
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String>;
    /// Idle-time background work between user operations (only the engine has any).
    fn idle(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// The device's simulated time so far, in ns.
    fn time_ns(&mut self) -> u64;
    /// The device's counters.
    fn stats(&mut self) -> Stats;
    /// Ends the store, giving the device back.
    fn into_flash(self) -> FlashSim;
}

/// RAM a store needs for its state, as reported in the table.
#[derive(Clone, Debug)]
pub struct Ram {
    /// Bytes per live key.
    pub per_key: f64,
    /// Bytes independent of the key count (buffers, page caches).
    pub fixed: u64,
    /// How this was computed.
    pub how: String,
}

/// A way to open one kind of store.
pub trait Backend {
    /// Buffers the store borrows (kept across reboots).
    type Bufs;
    /// The open store.
    type Store<'b>: Kv
    where
        Self: 'b;
    /// Which row this is.
    fn id(&self) -> StoreId;
    /// A fresh device for one run (the target flash, except for reference rows).
    fn new_flash(&self) -> FlashSim {
        flash::target()
    }
    /// Fresh buffers.
    fn new_bufs(&self) -> Self::Bufs;
    /// A store over `flash` (no flash access yet).
    fn open<'b>(&'b self, flash: FlashSim, bufs: &'b mut Self::Bufs) -> Result<Self::Store<'b>, String>;
    /// Its RAM needs.
    fn ram(&self) -> Ram;
}

// ------------------------------------------------------------------------------------------
// The engine. Every call of the engine's API in the benchmark is in this section.

/// Engine work buffer: what the CLI uses and a device port would likely give it.
pub const ENGINE_WORK: usize = 4096;
/// Engine index capacity (keys).
pub const ENGINE_INDEX: usize = 512;

/// Free bytes below which the maintained rows compact early (one eighth of a sector), as the
/// Tock capsule does.
pub const COMPACT_BELOW: u32 = 16 * 1024;

/// The Portenta capsule's work buffer (`capsules/tdbstore/src/component.rs`,
/// `DEFAULT_WORK_LEN`, which the board uses; a test checks they agree).
pub const CAPSULE_WORK: usize = 512;
/// The Portenta capsule's index capacity (`DEFAULT_KEYS` there).
pub const CAPSULE_KEYS: usize = 256;

/// The engine's geometry for a simulated flash (the one place that converts it).
fn engine_geometry(g: &flash_sim::Geometry) -> tdbstore::Geometry {
    *g
}

/// The engine, in one of its configurations.
pub struct EngineBackend {
    id: StoreId,
    label: &'static str,
    /// Call `maintain_all` between user operations.
    pub maintain: bool,
    options: StoreOptions,
    work: usize,
    index: usize,
}

impl EngineBackend {
    /// The configuration a row names.
    pub fn new(id: StoreId) -> Self {
        let maintained = StoreOptions { compact_below: COMPACT_BELOW, ..StoreOptions::default() };
        let (id, maintain, options) = match id {
            StoreId::TdbstoreMaint => (id, true, maintained),
            StoreId::TdbstoreCompact => (
                id,
                true,
                StoreOptions { record_format: tdbstore::format::RecordFormat::Compact, ..maintained },
            ),
            _ => (StoreId::Tdbstore, false, StoreOptions::default()),
        };
        EngineBackend { id, label: id.id(), maintain, options, work: ENGINE_WORK, index: ENGINE_INDEX }
    }

    /// The engine as the Portenta board's capsule runs it: its component's options (Mbed
    /// records, early compaction below an eighth of a sector), work buffer and index, and
    /// maintenance whenever it is idle. (Its row in the workload tables would be
    /// tdbstore-maint's: the work buffer changes how many requests, not what is written.)
    pub fn capsule() -> Self {
        EngineBackend {
            label: "capsule",
            work: CAPSULE_WORK,
            index: CAPSULE_KEYS,
            ..EngineBackend::new(StoreId::TdbstoreMaint)
        }
    }

    /// The same with room for `keys` keys in the index.
    pub fn with_index(mut self, keys: usize) -> Self {
        self.index = keys.max(1);
        self
    }

    /// Its name in the per-operation table.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// How it is configured, for the notes.
    pub fn setup(&self) -> String {
        format!(
            "{} records, {}-byte work buffer, {}-entry index, {}",
            if self.options.record_format == tdbstore::format::RecordFormat::Compact {
                "compact"
            } else {
                "Mbed"
            },
            self.work,
            self.index,
            if self.maintain {
                format!(
                    "`maintain_all()` after every user operation, early compaction below {} free bytes",
                    self.options.compact_below
                )
            } else {
                "no idle maintenance".to_string()
            }
        )
    }
}

/// Buffers of the engine.
pub struct EngineBufs {
    work: Vec<u8>,
    index: Vec<IndexEntry>,
}

/// An open engine store, over a flash that counts its requests.
pub struct EngineStore<'b> {
    s: BlockingStore<'b, Counting<FlashSim>>,
    maintain: bool,
}

impl Backend for EngineBackend {
    type Bufs = EngineBufs;
    type Store<'b> = EngineStore<'b>;

    fn id(&self) -> StoreId {
        self.id
    }

    fn new_bufs(&self) -> EngineBufs {
        let g = engine_geometry(&flash::GEOMETRY);
        EngineBufs {
            work: vec![0; self.work.max(Store::min_work_len(&g))],
            index: vec![IndexEntry::default(); self.index],
        }
    }

    fn open<'b>(&'b self, flash: FlashSim, bufs: &'b mut EngineBufs) -> Result<EngineStore<'b>, String> {
        let g = engine_geometry(&flash.geometry());
        let s = BlockingStore::new(Counting::new(flash), g, self.options, &mut bufs.work, &mut bufs.index)
            .map_err(|e| format!("open: {e:?}"))?
            .with_error_map(tdbstore::sim::classify);
        Ok(EngineStore { s, maintain: self.maintain })
    }

    fn ram(&self) -> Ram {
        Ram {
            per_key: std::mem::size_of::<IndexEntry>() as f64,
            fixed: self.work as u64,
            how: format!(
                "one {}-byte index entry per key (hash + offset); fixed: the {}-byte work buffer",
                std::mem::size_of::<IndexEntry>(),
                self.work
            ),
        }
    }
}

fn engine_error(e: tdbstore::Error) -> String {
    format!("{e:?}")
}

/// How [`EngineStore::add`] and [`EngineStore::update`] reach the engine, for the reports.
pub const ADD_UPDATE: &str = "one conditional write each, as the capsule does them: `Op::Set` with \
    `SetWhen::Absent` (add) or `SetWhen::Present` (update)";

impl EngineStore<'_> {
    /// `add`: writes `value` under `key` only if `key` is absent: one conditional write
    /// (`set_if(.., SetWhen::Absent)`, the capsule's `Op::Set { when }`).
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self.s.set_if(key, value, 0, SetWhen::Absent) {
            Err(tdbstore::Error::Exists) => Err("add: the key exists".into()),
            r => r.map_err(engine_error),
        }
    }

    /// `update`: writes `value` under `key` only if `key` is present: one conditional write
    /// (`set_if(.., SetWhen::Present)`).
    pub fn update(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self.s.set_if(key, value, 0, SetWhen::Present) {
            Err(tdbstore::Error::NotFound) => Err("update: no such key".into()),
            r => r.map_err(engine_error),
        }
    }

    /// Removes `key` (`Op::Remove`).
    pub fn remove(&mut self, key: &[u8]) -> Result<(), String> {
        self.s.remove(key).map_err(engine_error)
    }

    /// One full compaction now (`Op::Compact`).
    pub fn compact(&mut self) -> Result<(), String> {
        self.s.compact().map_err(engine_error)
    }

    /// Background work until none is left, whatever the configuration.
    pub fn maintain_all(&mut self) -> Result<(), String> {
        self.s.maintain_all().map_err(engine_error)
    }

    /// The engine's state (log end, compactions).
    pub fn info(&self) -> tdbstore::StoreInfo {
        self.s.store().info()
    }

    /// Flash requests made so far.
    pub fn requests(&self) -> Requests {
        self.s.flash().requests
    }
}

impl Kv for EngineStore<'_> {
    fn format(&mut self) -> Result<(), String> {
        // Default options format a blank region at mount.
        self.mount()
    }

    fn mount(&mut self) -> Result<(), String> {
        self.s.mount().map(|_| ()).map_err(engine_error)
    }

    fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<Option<usize>, String> {
        match self.s.get(key, out) {
            Ok(v) if v.copied == v.size => Ok(Some(v.size)),
            Ok(v) => Err(format!("value of {} bytes truncated", v.size)),
            Err(tdbstore::Error::NotFound) => Ok(None),
            Err(e) => Err(engine_error(e)),
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.s.set(key, value, 0).map_err(engine_error)
    }

    fn idle(&mut self) -> Result<(), String> {
        if self.maintain {
            self.maintain_all()
        } else {
            Ok(())
        }
    }

    fn time_ns(&mut self) -> u64 {
        self.s.flash().inner.stats().time_ns
    }

    fn stats(&mut self) -> Stats {
        self.s.flash().inner.stats().clone()
    }

    fn into_flash(self) -> FlashSim {
        self.s.into_flash().inner
    }
}

// ------------------------------------------------------------------------------------------
// sequential-storage.

/// Longest key the sequential-storage key type holds.
pub const SS_KEY_MAX: usize = 7;
/// Key-pointer cache capacity (covers the 400-key mount test).
pub const SS_KEY_CACHE: usize = 512;

/// A short byte-string key for sequential-storage's map: stored as one length byte and the
/// bytes (its built-in keys are integers and fixed-size arrays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsKey {
    len: u8,
    bytes: [u8; SS_KEY_MAX],
}

impl SsKey {
    /// The key for `k` (at most [`SS_KEY_MAX`] bytes).
    pub fn new(k: &[u8]) -> Result<Self, String> {
        if k.len() > SS_KEY_MAX {
            return Err(format!("key longer than {SS_KEY_MAX} bytes"));
        }
        let mut bytes = [0; SS_KEY_MAX];
        bytes[..k.len()].copy_from_slice(k);
        Ok(SsKey { len: k.len() as u8, bytes })
    }
}

impl Key for SsKey {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let n = self.len as usize;
        let dst = buffer.get_mut(..n + 1).ok_or(SerializationError::BufferTooSmall)?;
        dst[0] = self.len;
        dst[1..].copy_from_slice(&self.bytes[..n]);
        Ok(n + 1)
    }

    fn deserialize_from(buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        let n = *buffer.first().ok_or(SerializationError::BufferTooSmall)? as usize;
        if n > SS_KEY_MAX {
            return Err(SerializationError::InvalidFormat);
        }
        let src = buffer.get(1..n + 1).ok_or(SerializationError::BufferTooSmall)?;
        let mut bytes = [0; SS_KEY_MAX];
        bytes[..n].copy_from_slice(src);
        Ok((SsKey { len: n as u8, bytes }, n + 1))
    }

    fn get_len(buffer: &[u8]) -> Result<usize, SerializationError> {
        let n = *buffer.first().ok_or(SerializationError::BufferTooSmall)? as usize;
        Ok(n + 1)
    }
}

/// sequential-storage's cache with every array cache enabled.
pub type SsFullCache = Cache<
    ArrayPageStates<{ flash::SECTORS as usize }>,
    ArrayPagePointers<{ flash::SECTORS as usize }>,
    ArrayKeyPointers<SsKey, SS_KEY_CACHE>,
    SsKey,
>;
/// sequential-storage without a cache.
pub type SsNoCache = Cache<Uncached, Uncached, Uncached, SsKey>;

/// sequential-storage's map over the whole flash, with cache type `C`.
pub struct SsBackend<C> {
    make_cache: fn() -> C,
    id: StoreId,
}

impl SsBackend<SsNoCache> {
    /// No cache.
    pub fn uncached() -> Self {
        SsBackend { make_cache: SsNoCache::new_uncached, id: StoreId::SsNoCache }
    }
}

impl SsBackend<SsFullCache> {
    /// Page-state, page-pointer and key-pointer caches.
    pub fn cached() -> Self {
        SsBackend {
            make_cache: || {
                Cache::new(ArrayPageStates::new(), ArrayPagePointers::new(), ArrayKeyPointers::new())
            },
            id: StoreId::SsCache,
        }
    }
}

/// An open sequential-storage map.
pub struct SsStore<C: CacheImpl<SsKey>> {
    map: MapStorage<SsKey, SsFlash, C>,
    buf: Vec<u8>,
}

/// sequential-storage's data buffer: key + value, rounded up to the word size.
const SS_BUF: usize = 512;

impl<C: CacheImpl<SsKey>> Backend for SsBackend<C> {
    type Bufs = ();
    type Store<'b>
        = SsStore<C>
    where
        C: 'b;

    fn id(&self) -> StoreId {
        self.id
    }

    fn new_bufs(&self) {}

    fn open<'b>(&'b self, flash: FlashSim, _bufs: &'b mut ()) -> Result<SsStore<C>, String> {
        let config = MapConfig::<SsFlash>::try_new(0..flash::SIZE).map_err(|e| format!("config: {e:?}"))?;
        Ok(SsStore {
            map: MapStorage::new(SsFlash { sim: flash }, config, (self.make_cache)()),
            buf: vec![0; SS_BUF],
        })
    }

    fn ram(&self) -> Ram {
        let cache = std::mem::size_of::<C>();
        if self.id == StoreId::SsCache {
            let keys = std::mem::size_of::<ArrayKeyPointers<SsKey, SS_KEY_CACHE>>();
            let entry = keys as f64 / SS_KEY_CACHE as f64;
            debug_assert_eq!(entry as usize, std::mem::size_of::<Option<(SsKey, NonZeroU32)>>());
            Ram {
                per_key: entry,
                fixed: (cache - keys + SS_BUF) as u64,
                how: format!(
                    "ArrayKeyPointers: {entry} B per cached key (key + u32 address; sized for \
                     {SS_KEY_CACHE} keys = {keys} B); fixed: page-state and page-pointer caches for 12 \
                     pages + the {SS_BUF}-byte data buffer"
                ),
            }
        } else {
            Ram {
                per_key: 0.0,
                fixed: (cache + SS_BUF) as u64,
                how: format!("no per-key state; fixed: the {SS_BUF}-byte data buffer"),
            }
        }
    }
}

impl<C: CacheImpl<SsKey>> Kv for SsStore<C> {
    fn format(&mut self) -> Result<(), String> {
        // The map works on erased flash as it is.
        Ok(())
    }

    fn mount(&mut self) -> Result<(), String> {
        // No mount step: state is found lazily by the first operation.
        Ok(())
    }

    fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<Option<usize>, String> {
        let k = SsKey::new(key)?;
        match block_on(self.map.fetch_item::<&[u8]>(&mut self.buf, &k)) {
            Ok(Some(v)) => {
                let dst = out.get_mut(..v.len()).ok_or("output buffer too small")?;
                dst.copy_from_slice(v);
                Ok(Some(v.len()))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let k = SsKey::new(key)?;
        block_on(self.map.store_item(&mut self.buf, &k, &value)).map_err(|e| format!("{e:?}"))
    }

    fn time_ns(&mut self) -> u64 {
        self.map.flash().sim.stats().time_ns
    }

    fn stats(&mut self) -> Stats {
        self.map.flash().sim.stats().clone()
    }

    fn into_flash(self) -> FlashSim {
        self.map.destroy().0.sim
    }
}

// ------------------------------------------------------------------------------------------
// ekv.

/// ekv with the crate's compile-time configuration (see Cargo.toml and [`EkvFlash`]).
pub struct EkvBackend {
    /// Run on [`flash::ekv_reference`] instead of the target (the `ekv-4b` row).
    pub reference: bool,
}

/// An open ekv database.
pub struct EkvStore {
    db: ekv::Database<EkvFlash, NoopRawMutex>,
    sim: Rc<RefCell<FlashSim>>,
}

impl Backend for EkvBackend {
    type Bufs = ();
    type Store<'b> = EkvStore;

    fn id(&self) -> StoreId {
        if self.reference {
            StoreId::EkvReference
        } else {
            StoreId::Ekv
        }
    }

    fn new_flash(&self) -> FlashSim {
        if self.reference {
            flash::ekv_reference()
        } else {
            flash::target()
        }
    }

    fn new_bufs(&self) {}

    fn open<'b>(&'b self, flash: FlashSim, _bufs: &'b mut ()) -> Result<EkvStore, String> {
        let sim = Rc::new(RefCell::new(flash));
        let db = ekv::Database::new(EkvFlash { sim: sim.clone() }, ekv::Config::default());
        Ok(EkvStore { db, sim })
    }

    fn ram(&self) -> Ram {
        let db = std::mem::size_of::<ekv::Database<EkvFlash, NoopRawMutex>>();
        Ram {
            per_key: 0.0,
            fixed: db as u64,
            how: format!(
                "no per-key state (an LSM tree searched on flash); fixed: size_of::<Database>() = {db} B \
                 (its stack buffers during an operation not included)"
            ),
        }
    }
}

impl Kv for EkvStore {
    fn format(&mut self) -> Result<(), String> {
        block_on(self.db.format()).map_err(|e| format!("{e:?}"))
    }

    fn mount(&mut self) -> Result<(), String> {
        block_on(self.db.mount()).map_err(|e| format!("{e:?}"))
    }

    fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<Option<usize>, String> {
        block_on(async {
            let rtx = self.db.read_transaction().await;
            match rtx.read(key, out).await {
                Ok(n) => Ok(Some(n)),
                Err(ekv::ReadError::KeyNotFound) => Ok(None),
                Err(e) => Err(format!("{e:?}")),
            }
        })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        block_on(async {
            let mut wtx = self.db.write_transaction().await;
            wtx.write(key, value).await.map_err(|e| format!("write: {e:?}"))?;
            wtx.commit().await.map_err(|e| format!("commit: {e:?}"))
        })
    }

    fn time_ns(&mut self) -> u64 {
        self.sim.borrow().stats().time_ns
    }

    fn stats(&mut self) -> Stats {
        self.sim.borrow().stats().clone()
    }

    fn into_flash(self) -> FlashSim {
        let EkvStore { db, sim } = self;
        drop(db);
        match Rc::try_unwrap(sim) {
            Ok(cell) => cell.into_inner(),
            // Unreachable: the database held the only other reference.
            Err(shared) => shared.borrow().clone(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// TicKV.

/// TicKV driven as Tock's `tickv_kv_store` capsule drives it: keys hashed to u64, a set is an
/// append, and if the key exists an invalidate followed by a second append. When an append
/// finds the flash full, garbage collection runs and the append is retried once.
pub struct TickvBackend;

/// The 64-bit key hash (FNV-1a; Tock hashes with SipHash, only the region choice depends on it).
pub fn tickv_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

/// An open TicKV store.
pub struct TickvStore<'b> {
    kv: tickv::TicKV<'b, TickvFlash, TICKV_REGION>,
}

impl Backend for TickvBackend {
    type Bufs = Box<[u8; TICKV_REGION]>;
    type Store<'b> = TickvStore<'b>;

    fn id(&self) -> StoreId {
        StoreId::Tickv
    }

    fn new_bufs(&self) -> Box<[u8; TICKV_REGION]> {
        vec![0u8; TICKV_REGION].into_boxed_slice().try_into().expect("region-sized buffer")
    }

    fn open<'b>(&'b self, flash: FlashSim, bufs: &'b mut Self::Bufs) -> Result<TickvStore<'b>, String> {
        let controller = TickvFlash { sim: RefCell::new(flash) };
        Ok(TickvStore { kv: tickv::TicKV::new(controller, bufs, flash::SIZE as usize) })
    }

    fn ram(&self) -> Ram {
        Ram {
            per_key: 0.0,
            fixed: TICKV_REGION as u64,
            how: format!("no per-key state; fixed: the region-sized read buffer ({TICKV_REGION} B)"),
        }
    }
}

impl TickvStore<'_> {
    fn append(&self, hash: u64, value: &[u8]) -> Result<(), tickv::error_codes::ErrorCode> {
        use tickv::error_codes::ErrorCode;
        match self.kv.append_key(hash, value) {
            Err(ErrorCode::RegionFull | ErrorCode::FlashFull) => {
                self.kv.garbage_collect()?;
                self.kv.append_key(hash, value).map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }
}

impl Kv for TickvStore<'_> {
    fn format(&mut self) -> Result<(), String> {
        self.mount()
    }

    fn mount(&mut self) -> Result<(), String> {
        // Finds the main key, or erases every region and writes it.
        self.kv.initialise(tickv_hash(tickv::MAIN_KEY)).map(|_| ()).map_err(|e| format!("initialise: {e:?}"))
    }

    fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<Option<usize>, String> {
        match self.kv.get_key(tickv_hash(key), out) {
            Ok((_, len)) => Ok(Some(len)),
            Err(tickv::error_codes::ErrorCode::KeyNotFound) => Ok(None),
            Err(e) => Err(format!("get_key: {e:?}")),
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        use tickv::error_codes::ErrorCode;
        let h = tickv_hash(key);
        match self.append(h, value) {
            Err(ErrorCode::KeyAlreadyExists) => {
                self.kv.invalidate_key(h).map_err(|e| format!("invalidate_key: {e:?}"))?;
                self.append(h, value).map_err(|e| format!("append_key (after invalidate): {e:?}"))
            }
            r => r.map_err(|e| format!("append_key: {e:?}")),
        }
    }

    fn time_ns(&mut self) -> u64 {
        self.kv.controller.sim.borrow().stats().time_ns
    }

    fn stats(&mut self) -> Stats {
        self.kv.controller.sim.borrow().stats().clone()
    }

    fn into_flash(self) -> FlashSim {
        self.kv.controller.sim.into_inner()
    }
}
