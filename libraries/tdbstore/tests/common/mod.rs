//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use flash_sim::FlashSim;
use serde_json::Value;
use tdbstore::sim::{self, SimStore};
use tdbstore::{Geometry, IndexEntry, StoreOptions};

/// The golden vectors directory: `TDBSTORE_VECTORS`, else `../shared/vectors` beside the repo.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TDBSTORE_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: golden vectors not found at {} (set TDBSTORE_VECTORS)", dir.display());
        None
    }
}

/// Every `<geometry>/<scenario>/` with a manifest, sorted.
pub fn vector_dirs(root: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for g in std::fs::read_dir(root).unwrap().flatten() {
        if !g.path().is_dir() {
            continue;
        }
        for s in std::fs::read_dir(g.path()).unwrap().flatten() {
            if s.path().join("manifest.json").is_file() {
                out.push(s.path());
            }
        }
    }
    out.sort();
    out
}

pub fn manifest(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

pub fn geometry_of(m: &Value) -> Geometry {
    let g = &m["geometry"];
    let u = |k: &str| g[k].as_u64().unwrap() as u32;
    Geometry {
        size: u("size"),
        read_size: u("read_size"),
        program_size: u("program_size"),
        erase_size: u("erase_size"),
        erase_value: u("erase_value") as u8,
    }
}

/// Buffers for one store: a work buffer and an index.
pub struct Bufs {
    pub work: Vec<u8>,
    pub index: Vec<IndexEntry>,
}

impl Bufs {
    pub fn new(keys: usize) -> Self {
        Bufs { work: vec![0; 512], index: vec![IndexEntry::default(); keys] }
    }
    pub fn with_work(work: usize, keys: usize) -> Self {
        Bufs { work: vec![0; work], index: vec![IndexEntry::default(); keys] }
    }
    pub fn open(&mut self, flash: FlashSim) -> SimStore<'_> {
        self.open_with(flash, StoreOptions::default())
    }
    pub fn open_with(&mut self, flash: FlashSim, opts: StoreOptions) -> SimStore<'_> {
        sim::open(flash, opts, &mut self.work, &mut self.index).unwrap()
    }
}

/// A strict simulator: a second program of a unit is refused and counted, never silent.
pub fn strict(flash: FlashSim) -> FlashSim {
    let mut f = flash;
    f.set_strict(true);
    f
}

pub fn blank(g: &Geometry) -> FlashSim {
    strict(FlashSim::new(*g))
}

/// Logical contents: key -> (flags, value).
pub type Contents = std::collections::BTreeMap<Vec<u8>, (u32, Vec<u8>)>;

pub fn contents(s: &mut SimStore<'_>) -> Contents {
    let mut keys = Vec::new();
    s.for_each_key(b"", |k| keys.push(k.to_vec())).unwrap();
    let mut out = Contents::new();
    for k in keys {
        let (size, _) = s.get_info(&k).unwrap();
        let mut v = vec![0; size];
        let info = s.get(&k, &mut v).unwrap();
        assert_eq!(info.copied, size);
        out.insert(k, (info.flags, v));
    }
    out
}

/// Keys in iteration order.
pub fn key_order(s: &mut SimStore<'_>) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    s.for_each_key(b"", |k| keys.push(k.to_vec())).unwrap();
    keys
}

pub fn manifest_keys(v: &Value) -> Contents {
    let mut out = Contents::new();
    for (k, e) in v.as_object().unwrap() {
        if k == "TDBS" {
            continue;
        }
        let bytes = hex::decode(e["hex"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len() as u64, e["size"].as_u64().unwrap());
        out.insert(k.as_bytes().to_vec(), (e["flags"].as_u64().unwrap() as u32, bytes));
    }
    out
}

/// Decodes an image with the independent Python decoder in `../shared/tools/tdbparse.py`.
/// Returns `None` (and says so) when Python or the tool is unavailable.
pub fn tdbparse(image: &[u8], g: &Geometry) -> Option<Value> {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools");
    if !tools.join("tdbparse.py").is_file() {
        eprintln!("SKIPPED: tdbparse.py not found at {}", tools.display());
        return None;
    }
    let dir = std::env::temp_dir().join(format!(
        "tdbparse-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("image.bin");
    std::fs::write(&img, image).unwrap();
    let script = format!(
        "import sys, json; sys.path.insert(0, {tools:?}); import tdbparse\n\
         p = tdbparse.parse(open({img:?}, 'rb').read(), {size}, {prog})\n\
         if p['active'] is not None:\n\
         \x20   p['keys'] = {{k: [v[0], v[1].hex()] for k, v in p['keys'].items()}}\n\
         \x20   p['reserved'] = p['reserved'].hex() if p['reserved'] is not None else None\n\
         print(json.dumps(p))\n",
        tools = tools.to_str().unwrap(),
        img = img.to_str().unwrap(),
        size = g.size,
        prog = g.program_size
    );
    let out = std::process::Command::new("python3").arg("-c").arg(script).output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) => panic!("tdbparse failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("SKIPPED: python3 unavailable ({e})");
            None
        }
    }
}

/// Checks that the independent decoder sees exactly `expected` in `image`.
pub fn assert_tdbparse_agrees(image: &[u8], g: &Geometry, expected: &Contents) {
    let Some(p) = tdbparse(image, g) else { return };
    let keys = p["keys"].as_object().expect("tdbparse found no active area");
    let mut got = Contents::new();
    for (k, v) in keys {
        if k == "TDBS" {
            // tdbparse, like Mbed, scans from the master record and lists it (B1).
            continue;
        }
        got.insert(
            k.as_bytes().to_vec(),
            (v[0].as_u64().unwrap() as u32, hex::decode(v[1].as_str().unwrap()).unwrap()),
        );
    }
    assert_same(&got, expected, "independent decoder disagrees");
}

/// Compares contents and, on mismatch, names the first differing key without dumping values.
#[track_caller]
pub fn assert_same(got: &Contents, want: &Contents, ctx: &str) {
    if got == want {
        return;
    }
    let summary = |c: &Contents| -> Vec<String> {
        c.iter()
            .map(|(k, (f, v))| {
                format!(
                    "{}(f{} {}B {:08x})",
                    String::from_utf8_lossy(k),
                    f,
                    v.len(),
                    tdbstore::crc::Crc32::of(v)
                )
            })
            .collect()
    };
    panic!("{ctx}:\n got:  {:?}\n want: {:?}", summary(got), summary(want));
}

/// Why Mbed's own garbage collection of a store it mounted would fail or lose a record
/// (B10, B11), if it would: an image this engine writes in Mbed format must be one Mbed can
/// keep using.
pub fn mbed_gc_trap(img: &mbed_reader::Image<'_>, st: &mbed_reader::Store) -> Option<String> {
    match img.gc(st) {
        mbed_reader::Gc::Fits { .. } => None,
        trap => Some(format!(
            "Mbed's own garbage collection of this image fails (log end {}): {trap:?}",
            st.free_offset
        )),
    }
}

/// Mbed-format images the independent Mbed reader has checked in this test process.
pub static MBED_IMAGES_CHECKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The oracle in the loop: the independent Mbed reader (`mbed-reader`, written from the format
/// notes) must see in the store's image exactly what the engine shows: keys, values, flags
/// and reserved data. A compact-record image must read to Mbed as a store with no keys
/// (its records stop Mbed's scan at once). Returns a description of the first difference.
pub fn mbed_disagreement(s: &mut SimStore<'_>, format: tdbstore::format::RecordFormat) -> Option<String> {
    let g = s.flash().geometry();
    let img = mbed_reader::Image::new(s.flash().image(), g.program_size, g.erase_size);
    let m = img.mount();
    MBED_IMAGES_CHECKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mbed_reader::Mount::Store(st) = m else { return Some(format!("Mbed would not mount it: {m:?}")) };
    if format == tdbstore::format::RecordFormat::Mbed {
        if let Some(why) = mbed_gc_trap(&img, &st) {
            return Some(why);
        }
    }
    let ours = contents(s);
    let theirs: Contents = st.user_keys().into_iter().collect();
    let mut r = [0u8; 64];
    let reserved = s.reserved_data_get(&mut r).ok().map(|n| r[..n].to_vec());
    match format {
        tdbstore::format::RecordFormat::Mbed => {
            if theirs != ours {
                let names = |c: &Contents| {
                    c.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect::<Vec<_>>()
                };
                let diff: Vec<String> = ours
                    .iter()
                    .filter(|(k, v)| theirs.get(*k) != Some(v))
                    .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .collect();
                return Some(format!(
                    "keys differ (log end {}): Mbed {:?}, engine {:?}, first difference in {:?}",
                    st.free_offset,
                    names(&theirs),
                    names(&ours),
                    diff
                ));
            }
        }
        tdbstore::format::RecordFormat::Compact => {
            if !theirs.is_empty() || st.revision != tdbstore::format::COMPACT_REVISION {
                return Some(format!(
                    "a compact store reads to Mbed as revision {} with {} keys",
                    st.revision,
                    theirs.len()
                ));
            }
        }
    }
    let theirs_reserved = st.reserved.map(|(_, d)| d);
    (theirs_reserved != reserved).then(|| {
        format!(
            "reserved data: Mbed {:?}, engine {:?}",
            theirs_reserved.map(|d| d.len()),
            reserved.map(|d| d.len())
        )
    })
}
