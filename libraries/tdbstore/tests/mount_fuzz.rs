//! Mount fuzzing: whatever a flash region holds, mounting it never panics, terminates, reads
//! a bounded number of bytes, and ends in a clean result.
//!
//! Images come from five sources: random bytes; random records built with the format's own
//! types (`format::Header`, `crc::Crc32`), including truncated records, lying length
//! fields, valid CRCs over absurd sizes, odd master records and reserved trailers; stores
//! written by the engine itself, then damaged (bit flips, byte overwrites, erased or
//! garbage spans, ECC-bad units); and the golden Mbed images (`TDBSTORE_VECTORS`, else
//! `../shared/vectors` beside the repository; skipped with a note when absent, never
//! written), damaged the same way. Every image is mounted on the 8-byte and 32-byte
//! program-unit geometries it fits.
//!
//! For every mount: no panic; fewer than [`MAX_REQUESTS`] flash requests (else the engine
//! loops); at most 4 x the region's size read. When it mounts: iteration either works or
//! fails cleanly, every listed key reads (or fails cleanly) with `get` agreeing with
//! `get_info`, and a set of a fresh key followed by a remount works and shows the key
//! (unless the set is refused with `Full` or `IndexFull`, or the image has ECC-bad units),
//! leaves every key that read before reading the same, and never programs a unit twice.

use std::path::PathBuf;
use std::sync::OnceLock;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use flash_sim::{FlashSim, Geometry, SimError};
use proptest::prelude::*;
use tdbstore::blocking::BlockingStore;
use tdbstore::crc::Crc32;
use tdbstore::format::{self, Header, Layout, RecordFormat};
use tdbstore::{Error, IndexEntry, IoError, StoreOptions};

/// A well-behaved mount of a 32 KiB region makes a few thousand requests at most.
const MAX_REQUESTS: u64 = 200_000;

const G8: Geometry = Geometry::SMALL;
const G32: Geometry = Geometry { program_size: 32, ..Geometry::SMALL };

/// The simulator, counting requests and panicking when an operation makes too many (so a
/// looping engine fails the property instead of hanging the test).
struct Bounded {
    sim: FlashSim,
    requests: u64,
}

impl Bounded {
    fn tick(&mut self) {
        self.requests += 1;
        assert!(self.requests < MAX_REQUESTS, "the engine did not terminate ({MAX_REQUESTS} flash requests)");
    }
}

impl ErrorType for Bounded {
    type Error = SimError;
}

impl ReadNorFlash for Bounded {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.tick();
        self.sim.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.sim.geometry().size as usize
    }
}

impl NorFlash for Bounded {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.tick();
        NorFlash::erase(&mut self.sim, from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.tick();
        self.sim.program(offset, bytes)
    }
}

/// Opens a store like `tdbstore::sim::open`, over the request-bounded simulator.
fn with_store<R>(
    sim: FlashSim,
    opts: StoreOptions,
    keys: usize,
    f: impl FnOnce(&mut BlockingStore<'_, Bounded>) -> R,
) -> (FlashSim, R) {
    let g = sim.geometry();
    let mut work = vec![0x5Au8; 256];
    let mut index = vec![IndexEntry::default(); keys];
    let mut s = BlockingStore::new(Bounded { sim, requests: 0 }, g, opts, &mut work, &mut index)
        .expect("valid geometry")
        .with_error_map(tdbstore::sim::classify);
    let r = f(&mut s);
    (s.into_flash().sim, r)
}

/// Where damage lands: near the head of area 0 or 1 (reserved data, master record, first
/// records: what mount reads first), or anywhere.
#[derive(Clone, Copy, Debug)]
enum At {
    Head { area: u8, off: u16 },
    Anywhere(u32),
}

impl At {
    fn place(self, len: usize) -> usize {
        match self {
            At::Head { area, off } => (usize::from(area) * len / 2 + usize::from(off)) % len,
            At::Anywhere(x) => x as usize % len,
        }
    }
}

/// Damage applied to an image.
#[derive(Clone, Debug)]
enum Damage {
    /// Flip one bit.
    Flip { at: At, bit: u8 },
    /// Overwrite bytes.
    Write { at: At, bytes: Vec<u8> },
    /// Set a span to one byte value (0xFF: "erase" it without an erase).
    Fill { at: At, len: u16, byte: u8 },
    /// Make the program unit at `at` ECC-bad.
    Ecc { at: At },
}

fn position() -> impl Strategy<Value = At> {
    prop_oneof![
        3 => (0u8..2, 0u16..1024).prop_map(|(area, off)| At::Head { area, off }),
        2 => any::<u32>().prop_map(At::Anywhere),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (position(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        3 => (position(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Damage::Write { at, bytes }),
        2 => (position(), 1u16..600, prop_oneof![Just(0xFFu8), Just(0u8), any::<u8>()])
            .prop_map(|(at, len, byte)| Damage::Fill { at, len, byte }),
        1 => position().prop_map(|at| Damage::Ecc { at }),
    ]
}

/// Applies damage to an image; returns whether ECC-bad units were made.
fn apply(g: Geometry, image: Vec<u8>, damage: &[Damage]) -> (FlashSim, bool) {
    let mut image = image;
    let len = image.len();
    let mut ecc = Vec::new();
    for d in damage {
        match d {
            Damage::Flip { at, bit } => image[at.place(len)] ^= 1 << bit,
            Damage::Write { at, bytes } => {
                let at = at.place(len);
                let end = (at + bytes.len()).min(len);
                image[at..end].copy_from_slice(&bytes[..end - at]);
            }
            Damage::Fill { at, len: n, byte } => {
                let at = at.place(len);
                let end = (at + *n as usize).min(len);
                image[at..end].fill(*byte);
            }
            Damage::Ecc { at } => ecc.push(at.place(len) as u32),
        }
    }
    let mut sim = FlashSim::from_image(g, image).expect("image fits its geometry");
    for &a in &ecc {
        sim.mark_ecc_bad(a);
    }
    (sim, !ecc.is_empty())
}

/// A key that read cleanly: key, flags, the first 64 bytes of its value.
type Readable = (Vec<u8>, u32, Vec<u8>);

/// How far [`check_mount`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reached {
    /// Mount failed (cleanly).
    MountFailed,
    /// Mounted; the probe set was refused (cleanly).
    Mounted,
    /// Mounted, wrote, remounted, read back.
    Written,
}

/// Mounts `sim` and checks everything the module docs promise.
fn check_mount(sim: FlashSim, opts: StoreOptions, ecc: bool) -> Result<Reached, TestCaseError> {
    let region = sim.geometry().size as u64;
    let (sim, mounted) = with_store(sim, opts, 24, |s| {
        let r = s.mount();
        let read = s.flash().sim.stats().bytes_read;
        (r, read)
    });
    let (mounted, read) = mounted;
    prop_assert!(read <= 4 * region, "mount read {} bytes of a {} byte region", read, region);
    if mounted.is_err() {
        // A clean error (the type has no other kind). Nothing may have been written.
        prop_assert_eq!(sim.stats().programs + sim.stats().erases, 0, "a failed mount wrote");
        return Ok(Reached::MountFailed);
    }
    let (sim, readable) = with_store(sim, opts, 24, |s| -> Result<Vec<Readable>, TestCaseError> {
        s.mount().map_err(|e| TestCaseError::fail(format!("second mount failed: {e:?}")))?;
        let mut keys = Vec::new();
        // Iteration may fail cleanly (an unreadable record); the keys listed so far count.
        let _ = s.for_each_key(b"", |k| keys.push(k.to_vec()));
        let mut readable = Vec::new();
        for k in keys {
            let info = s.get_info(&k);
            let mut v = vec![0u8; 64];
            match (s.get(&k, &mut v), info) {
                (Ok(got), Ok((size, flags))) => {
                    prop_assert_eq!((got.size, got.flags), (size, flags), "get and get_info disagree");
                    prop_assert_eq!(got.copied, size.min(64));
                    v.truncate(got.copied);
                    readable.push((k, flags, v));
                }
                (Ok(got), Err(e)) => prop_assert!(false, "get gave {:?} but get_info {:?}", got, e),
                (Err(_), _) => {}
            }
        }
        Ok(readable)
    });
    let readable = readable?;
    let value = b"fuzz-value";
    let (sim, set) = with_store(sim, opts, 24, |s| s.mount().and_then(|_| s.set(b"fuzz-probe", value, 0)));
    prop_assert_eq!(sim.stats().double_programs, 0, "a unit was programmed twice");
    match set {
        Ok(()) => {}
        Err(Error::Full | Error::IndexFull | Error::Foreign) => return Ok(Reached::Mounted),
        Err(Error::Io(_, IoError::Ecc)) if ecc => return Ok(Reached::Mounted),
        Err(e) => prop_assert!(false, "set after a successful mount failed: {:?}", e),
    }
    let (_, got) = with_store(sim, opts, 24, |s| {
        s.mount()?;
        let mut v = [0u8; 16];
        let probe = s.get(b"fuzz-probe", &mut v).map(|i| v[..i.copied].to_vec());
        // Keys that read before the set read the same after it (a compaction may have run).
        let mut others = Vec::new();
        for (k, flags, before) in &readable {
            let mut v = vec![0u8; 64];
            let now = s.get(k, &mut v).map(|i| {
                v.truncate(i.copied);
                (i.flags, v)
            });
            others.push((k.clone(), (*flags, before.clone()), now));
        }
        probe.map(|p| (p, others))
    });
    match got {
        Ok((v, others)) => {
            prop_assert_eq!(&v[..], &value[..]);
            for (k, before, now) in others {
                prop_assert_eq!(now, Ok(before), "key {:?} changed by an unrelated set", k);
            }
        }
        Err(Error::Io(_, IoError::Ecc)) if ecc => return Ok(Reached::Mounted),
        Err(e) => prop_assert!(false, "the acknowledged set is unreadable after a remount: {:?}", e),
    }
    Ok(Reached::Written)
}

fn options() -> impl Strategy<Value = StoreOptions> {
    (any::<bool>(), prop_oneof![Just(RecordFormat::Mbed), Just(RecordFormat::Compact)], 0u32..3).prop_map(
        |(format_if_blank, record_format, c)| StoreOptions {
            format_if_blank,
            record_format,
            compact_below: c * 2048,
        },
    )
}

fn geometry() -> impl Strategy<Value = Geometry> {
    prop_oneof![Just(G8), Just(G32)]
}

// ------------------------------------------------------------------------------------------
// Crafted images.

/// How a crafted record lies.
#[derive(Clone, Debug)]
enum Lie {
    /// An honest record.
    None,
    /// A wrong CRC.
    BadCrc,
    /// `data_len` says this, the CRC covers the bytes really there (up to the area's end) or
    /// nothing past the key when that is past the end: a valid CRC over an absurd size.
    DataLen(u32),
    /// `key_len` says this (0, > 127 or just wrong).
    KeyLen(u16),
    /// Only this many bytes of the record were written (a torn record).
    Truncated(u16),
}

#[derive(Clone, Debug)]
struct Rec {
    key: Vec<u8>,
    data: Vec<u8>,
    flags: u32,
    lie: Lie,
}

#[derive(Clone, Debug)]
struct Craft {
    /// Master record per area: (version, revision, valid CRC).
    masters: [Option<(u16, u16, bool)>; 2],
    /// Reserved trailer per area: (declared length, bytes, valid CRC).
    reserved: [Option<(u16, Vec<u8>, bool)>; 2],
    /// Records written in each area.
    records: [Vec<Rec>; 2],
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (0u8..12).prop_map(|i| format!("k{i}").into_bytes()),
        1 => Just(b"TDBS".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..140),
    ]
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        8 => Just(Lie::None),
        1 => Just(Lie::BadCrc),
        2 => prop_oneof![any::<u32>(), 0u32..20_000, Just(u32::MAX), Just(u32::MAX - 30)].prop_map(Lie::DataLen),
        1 => prop_oneof![Just(0u16), 128u16..=u16::MAX, 1u16..20].prop_map(Lie::KeyLen),
        1 => (0u16..300).prop_map(Lie::Truncated),
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        key(),
        prop_oneof![3 => prop::collection::vec(any::<u8>(), 0..300), 1 => prop::collection::vec(Just(0xFFu8), 0..300)],
        prop_oneof![4 => Just(0u32), 1 => any::<u32>(), 1 => Just(format::DELETE_FLAG), 1 => Just(format::WRITE_ONCE)],
        lie(),
    )
        .prop_map(|(key, data, flags, lie)| Rec { key, data, flags, lie })
}

fn craft() -> impl Strategy<Value = Craft> {
    let master = prop_oneof![
        1 => Just(None),
        4 => (any::<u16>(), prop_oneof![4 => Just(1u16), 2 => Just(2u16), 1 => any::<u16>()], prop::bool::weighted(0.9))
            .prop_map(Some),
    ];
    let reserved = prop_oneof![
        3 => Just(None),
        1 => (prop_oneof![0u16..=64, any::<u16>()], prop::collection::vec(any::<u8>(), 0..64), any::<bool>()).prop_map(Some),
    ];
    (
        [master.clone(), master],
        [reserved.clone(), reserved],
        [prop::collection::vec(rec(), 0..40), prop::collection::vec(rec(), 0..8)],
    )
        .prop_map(|(masters, reserved, records)| Craft { masters, reserved, records })
}

/// Writes `c` into an erased image of geometry `g`.
fn build(g: Geometry, c: &Craft) -> Vec<u8> {
    let p = g.program_size;
    let area = (g.size / g.erase_size / 2) * g.erase_size;
    let mut img = vec![0xFFu8; g.size as usize];
    for a in 0..2usize {
        let base = a * area as usize;
        let fmt = match c.masters[a] {
            Some((_, 2, _)) => RecordFormat::Compact,
            _ => RecordFormat::Mbed,
        };
        let lay = Layout::with_format(p, area, fmt);
        if let Some((len, bytes, valid)) = &c.reserved[a] {
            img[base..base + bytes.len()].copy_from_slice(bytes);
            // Trailer {8, declared length, CRC of the declared bytes}; the length may lie.
            let crc = Crc32::of(&bytes[..(*len as usize).min(bytes.len())]) ^ if *valid { 0 } else { 0x55 };
            let mut t = [0u8; 8];
            t[..2].copy_from_slice(&8u16.to_le_bytes());
            t[2..4].copy_from_slice(&len.to_le_bytes());
            t[4..].copy_from_slice(&crc.to_le_bytes());
            img[base + 64..base + 72].copy_from_slice(&t);
        }
        if let Some((version, revision, valid)) = c.masters[a] {
            let mo = base + lay.master_offset as usize;
            let hs = lay.header_span as usize;
            let mut data = [0u8; 8];
            data[..2].copy_from_slice(&version.to_le_bytes());
            data[2..4].copy_from_slice(&revision.to_le_bytes());
            let mut h = Header { flags: 0, key_len: 4, data_len: 8, crc: 0 };
            let mut crc = h.crc_start();
            crc.update(format::MASTER_KEY);
            crc.update(&data);
            h.crc = crc.value() ^ if valid { 0 } else { 1 };
            h.encode(&mut img[mo..mo + 24]);
            img[mo + hs..mo + hs + 4].copy_from_slice(format::MASTER_KEY);
            img[mo + hs + 4..mo + hs + 12].copy_from_slice(&data);
        }
        // Records, back to back; lying CRCs are fixed up last to first.
        let mut off = lay.first_record() as usize;
        let mut fixups = Vec::new();
        let bo = lay.body_offset as usize;
        for r in &c.records[a] {
            let end_area = base + area as usize;
            let key: Vec<u8> = r.key.iter().copied().take(255).collect();
            let body = bo + key.len() + r.data.len();
            let size = body.div_ceil(p as usize) * p as usize;
            if base + off + size > end_area {
                break;
            }
            let at = base + off;
            let mut h =
                Header { flags: r.flags, key_len: key.len() as u16, data_len: r.data.len() as u32, crc: 0 };
            match r.lie {
                Lie::KeyLen(k) => h.key_len = k,
                Lie::DataLen(d) => h.data_len = d,
                _ => {}
            }
            img[at + bo..at + bo + key.len()].copy_from_slice(&key);
            img[at + bo + key.len()..at + body].copy_from_slice(&r.data);
            let mut crc = lay.crc_start(&h);
            crc.update(&key);
            crc.update(&r.data);
            h.crc = crc.value() ^ if matches!(r.lie, Lie::BadCrc) { 0x8000_0000 } else { 0 };
            lay.encode_header(&h, &mut img[at..at + lay.header_len() as usize]);
            if let Lie::DataLen(_) = r.lie {
                fixups.push((at, h, key.clone()));
            }
            if let Lie::Truncated(n) = r.lie {
                let keep = (n as usize).min(size);
                img[at + keep..at + size].fill(0xFF);
            }
            off += size;
        }
        for (at, mut h, key) in fixups.into_iter().rev() {
            let start = at + bo + key.len();
            let end = (start as u64 + h.data_len as u64).min((base + area as usize) as u64) as usize;
            let mut crc = lay.crc_start(&h);
            crc.update(&key);
            crc.update(&img[start..end]);
            h.crc = crc.value();
            lay.encode_header(&h, &mut img[at..at + lay.header_len() as usize]);
        }
    }
    img
}

// ------------------------------------------------------------------------------------------
// Engine-written and golden images.

/// Stores written by the engine on both geometries: several keys, overwrites, removals,
/// reserved data, and a compaction (so both areas hold a master record).
fn engine_images() -> &'static [(Geometry, Vec<u8>)] {
    static IMAGES: OnceLock<Vec<(Geometry, Vec<u8>)>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let mut out = Vec::new();
        for g in [G8, G32] {
            for format in [RecordFormat::Mbed, RecordFormat::Compact] {
                let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
                let (sim, _) = with_store(FlashSim::new(g), opts, 64, |s| {
                    s.mount().unwrap();
                    s.reserved_data_set(b"reserved-0123456789").unwrap();
                    for i in 0..30u32 {
                        let k = format!("key-{}", i % 11);
                        let v: Vec<u8> = (0..(i * 13) % 200).map(|j| (i + j) as u8).collect();
                        s.set(k.as_bytes(), &v, if i == 3 { tdbstore::WRITE_ONCE } else { 0 }).unwrap_or(());
                        if i % 7 == 6 {
                            s.remove(format!("key-{}", i % 5).as_bytes()).unwrap_or(());
                        }
                    }
                    s.compact().unwrap();
                    s.set(b"after", b"compaction", 0).unwrap();
                });
                out.push((g, sim.into_image()));
            }
        }
        out
    })
}

/// The golden vectors directory, if present.
fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TDBSTORE_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    dir.is_dir().then_some(dir)
}

/// Every golden image with its geometry (read only; the files are never written).
fn golden_images() -> &'static [(Geometry, Vec<u8>)] {
    static IMAGES: OnceLock<Vec<(Geometry, Vec<u8>)>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let Some(root) = vectors_dir() else {
            eprintln!(
                "SKIPPED: golden vectors not found (set TDBSTORE_VECTORS); golden-image fuzzing skipped"
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|g| std::fs::read_dir(g.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.join("manifest.json").is_file() && p.join("image.bin").is_file())
            .collect();
        dirs.sort();
        for d in dirs {
            let Ok(text) = std::fs::read_to_string(d.join("manifest.json")) else { continue };
            let Ok(m) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let u = |k: &str| m["geometry"][k].as_u64().map(|v| v as u32);
            let (Some(size), Some(read_size), Some(program_size), Some(erase_size), Some(ev)) =
                (u("size"), u("read_size"), u("program_size"), u("erase_size"), u("erase_value"))
            else {
                continue;
            };
            let g = Geometry { size, read_size, program_size, erase_size, erase_value: ev as u8 };
            // The small geometry fuzzes fast; the 1.5 MiB Portenta images are sampled.
            if g.size > 65_536 && !d.ends_with("stats_14") && !d.ends_with("torn_gc_cut8") {
                continue;
            }
            if let Ok(img) = std::fs::read(d.join("image.bin")) {
                if img.len() == g.size as usize {
                    out.push((g, img));
                }
            }
        }
        out
    })
}

/// Cases per property: 256, or `MOUNT_FUZZ_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("MOUNT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_mount_cleanly(g in geometry(), opts in options(), seed in any::<u64>(), blank_from in 0usize..40_000) {
        let mut x = seed | 1;
        let mut img: Vec<u8> = (0..g.size).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
        // Often only a prefix is garbage: the rest is erased, like a partly used device.
        let from = blank_from.min(img.len());
        img[from..].fill(0xFF);
        let sim = FlashSim::from_image(g, img).unwrap();
        check_mount(sim, opts, false)?;
    }

    #[test]
    fn crafted_records_mount_cleanly(g in geometry(), opts in options(), c in craft(), dmg in prop::collection::vec(damage(), 0..3)) {
        let (sim, ecc) = apply(g, build(g, &c), &dmg);
        check_mount(sim, opts, ecc)?;
    }

    #[test]
    fn damaged_engine_images_mount_cleanly(i in 0usize..4, opts in options(), dmg in prop::collection::vec(damage(), 1..6)) {
        let (g, img) = &engine_images()[i];
        let (sim, ecc) = apply(*g, img.clone(), &dmg);
        check_mount(sim, opts, ecc)?;
    }

    #[test]
    fn damaged_golden_images_mount_cleanly(i in any::<prop::sample::Index>(), opts in options(), dmg in prop::collection::vec(damage(), 0..6)) {
        let images = golden_images();
        if !images.is_empty() {
            let (g, img) = &images[i.index(images.len())];
            let (sim, ecc) = apply(*g, img.clone(), &dmg);
            check_mount(sim, opts, ecc)?;
        }
    }
}

/// The crafted-image builder is right: an honest crafted store mounts with its keys.
#[test]
fn an_honest_crafted_store_mounts_with_its_keys() {
    let rec =
        |k: &str, d: &[u8]| Rec { key: k.as_bytes().to_vec(), data: d.to_vec(), flags: 0, lie: Lie::None };
    let c = Craft {
        masters: [Some((1, 1, true)), None],
        reserved: [Some((3, b"abc".to_vec(), true)), None],
        records: [vec![rec("a", b"1"), rec("b", b"22"), rec("a", b"333")], vec![]],
    };
    for g in [G8, G32] {
        let sim = FlashSim::from_image(g, build(g, &c)).unwrap();
        let (_, (keys, a, res)) = with_store(sim, StoreOptions::default(), 8, |s| {
            let info = s.mount().unwrap();
            assert!(!info.formatted);
            let mut v = [0u8; 8];
            let n = s.get(b"a", &mut v).unwrap().copied;
            let mut r = [0u8; 64];
            let rn = s.reserved_data_get(&mut r).unwrap();
            (info.keys, v[..n].to_vec(), r[..rn].to_vec())
        });
        assert_eq!((keys, &a[..], &res[..]), (2, &b"333"[..], &b"abc"[..]));
    }
}

/// The fuzzer is not vacuous: over a fixed sample of crafted images, some fail to mount,
/// and many mount and take a write.
#[test]
fn crafted_images_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{TestRng, TestRunner};
    let mut runner =
        TestRunner::new_with_rng(ProptestConfig::default(), TestRng::deterministic_rng(Default::default()));
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..200 {
        let g = if i % 2 == 0 { G8 } else { G32 };
        let c = craft().new_tree(&mut runner).unwrap().current();
        let sim = FlashSim::from_image(g, build(g, &c)).unwrap();
        let r = check_mount(sim, StoreOptions::default(), false).unwrap();
        *seen.entry(format!("{r:?}")).or_insert(0) += 1;
    }
    let n = |k: &str| seen.get(k).copied().unwrap_or(0);
    assert!(n("MountFailed") >= 5 && n("Written") >= 60, "{seen:?}");
}
