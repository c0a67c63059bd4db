//! An independent reader of Mbed OS TDBStore images: what the real Mbed `TDBStore::init()`,
//! `get()` and `reserved_data_get()` would see in an image, for tests only.
//!
//! It is written from the project's format document (`docs/format.md`, cited as §n), not from
//! the engine, and shares no code with it (not even the CRC), so that an engine bug in the
//! format cannot hide behind the same bug here. It follows Mbed's rules, defects included:
//! the area size from `calc_area_params` (§4); a record is rejected when its magic is wrong,
//! its key size is 0 or **>= 128**, key + data sizes wrap, its last byte is at or past the
//! area end (**`>=`**, B2), or its CRC does not match (§6.4); the active area is area 0 when
//! `v0 > v1 || v0 == 0` (§11.1, §12, B5); the scan starts **at** the master record, so `"TDBS"` is a
//! key (B1), and stops at the first invalid record (§11.3); reserved data comes from the first
//! area, 0 then 1, whose trailer checks out (§14). [`Image::gc`] runs Mbed's garbage
//! collection on paper (§13): whether it copies every RAM-table entry, its own `"TDBS"`
//! included, and reads each copy back (B10, B11). Flash is modelled as NOR that reads back
//! whatever bits are there (the golden vectors' model): a torn unit reads as its bytes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;

/// Record magic (§2.1).
const MAGIC: u32 = 0x5468_6683;
/// Header length (§6.1).
const HEADER: u32 = 24;
/// Delete flag (§2.1).
const DELETE: u32 = 1 << 31;
/// Mbed's `_size` cap on the device (§2.1).
const BD_CAP: u64 = 0x8000_0000;

/// `calc_crc(0xFFFFFFFF, data)` (§3): the reflected CRC-32 register, not inverted, then
/// bit-reversed.
pub fn mbed_crc(data: &[u8]) -> u32 {
    let mut reg: u32 = 0xFFFF_FFFF;
    for &b in data {
        reg = (reg >> 8) ^ CRC_TABLE[((reg ^ b as u32) & 0xFF) as usize];
    }
    reg.reverse_bits()
}

/// The reflected CRC-32 table (polynomial 0xEDB88320), one entry per byte value.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut reg = i as u32;
        let mut bit = 0;
        while bit < 8 {
            reg = if reg & 1 != 0 { (reg >> 1) ^ 0xEDB8_8320 } else { reg >> 1 };
            bit += 1;
        }
        t[i] = reg;
        i += 1;
    }
    t
};

/// `align_up(v, p)` (§4).
fn align_up(v: u64, p: u64) -> u64 {
    v.div_ceil(p) * p
}

/// A key's flags (delete bit removed) and value.
pub type Entry = (u32, Vec<u8>);

/// What Mbed's init finds in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    /// The area init picks.
    pub active: u8,
    /// Its master record's version.
    pub version: u16,
    /// Its master record's `tdbstore_revision` (1 for Mbed; this engine's compact-record
    /// stores say 2, and Mbed reads them as holding no keys).
    pub revision: u16,
    /// Every key in the RAM table, `"TDBS"` included when the scan picked it up (B1).
    pub keys: BTreeMap<Vec<u8>, Entry>,
    /// Where the scan stopped: Mbed's `_free_space_offset` (area-relative).
    pub free_offset: u32,
    /// What `reserved_data_get` returns, and from which area.
    pub reserved: Option<(u8, Vec<u8>)>,
}

impl Store {
    /// The keys without the master record's `"TDBS"` (which Mbed lists after a reboot, B1).
    pub fn user_keys(&self) -> BTreeMap<Vec<u8>, Entry> {
        self.keys
            .iter()
            .filter(|(k, _)| k.as_slice() != b"TDBS")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The outcome of Mbed's `init()` on an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A store (see [`Store`]).
    Store(Store),
    /// Neither area has a valid master record: Mbed would format area 0 (§11.1).
    NoStore,
    /// `MBED_ERROR` at init, a system halt (§11.1): why.
    Fatal(String),
}

/// What Mbed's own garbage collection would do with a store (§13.1, `copy_record`
/// ): copy every RAM-table entry, `"TDBS"` included (B1), in table order
/// (descending key hash), to the standby area from the first record's offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gc {
    /// Every entry is copied and Mbed reads every copy back: the copies end at `end`.
    Fits {
        /// Area-relative offset after the last copy (Mbed's `_free_space_offset` after it).
        end: u32,
    },
    /// `copy_record` refuses an entry (`to_offset + total_size > _size`, MEDIA_FULL) after
    /// copying part of the table: Mbed's RAM table is left pointing into the standby area,
    /// every later set and remove fails, also after a reboot, and `get` can return another
    /// key's value (B10).
    MediaFull {
        /// The entry that no longer fits.
        key: Vec<u8>,
        /// Where it would have gone.
        at: u32,
        /// Its record size.
        size: u32,
    },
    /// An entry is copied so that its last byte is the area's last byte: Mbed's reader
    /// rejects it (B2), so after the collection the value is lost (B11).
    LostAtEnd {
        /// The entry Mbed would lose.
        key: Vec<u8>,
        /// Where its copy starts.
        at: u32,
    },
}

/// One decoded record.
struct Record {
    flags: u32,
    key: Vec<u8>,
    data: Vec<u8>,
    /// Area-relative offset of the next record.
    next: u64,
}

/// An image and the geometry Mbed's block device would report.
pub struct Image<'a> {
    bytes: &'a [u8],
    program_size: u64,
    area_size: u64,
}

impl<'a> Image<'a> {
    /// The image of a whole block device with uniform `erase_size` sectors and `program_size`
    /// program units (§4: each area is as many whole sectors as fit in half the device).
    pub fn new(bytes: &'a [u8], program_size: u32, erase_size: u32) -> Image<'a> {
        let bd = (bytes.len() as u64).min(BD_CAP);
        let es = erase_size.max(1) as u64;
        Image { bytes, program_size: program_size.max(1) as u64, area_size: (bd / 2) / es * es }
    }

    /// Size of one area.
    pub fn area_size(&self) -> u32 {
        self.area_size as u32
    }

    fn bytes(&self, area: u8, off: u64, len: u64) -> Option<&'a [u8]> {
        let start = area as u64 * self.area_size + off;
        self.bytes.get(start as usize..(start + len) as usize)
    }

    /// `read_record` at `off` of `area` (§6.4), with the full CRC check.
    fn record(&self, area: u8, off: u64) -> Option<Record> {
        let h = self.bytes(area, off, HEADER as u64)?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if u32_at(0) != MAGIC {
            return None;
        }
        let key_size = u16::from_le_bytes([h[12], h[13]]) as u64;
        let data_size = u32_at(16) as u64;
        if key_size == 0 || key_size >= 128 {
            return None;
        }
        // §6.4: key + data sizes must not wrap.
        (key_size as u32).checked_add(data_size as u32)?;
        let after_header = off + align_up(HEADER as u64, self.program_size);
        // `read_record` (§6.4): `>=`, so a record whose last byte is the area's last byte is rejected (B2).
        if after_header + key_size + data_size >= self.area_size {
            return None;
        }
        let key = self.bytes(area, after_header, key_size)?;
        let data = self.bytes(area, after_header + key_size, data_size)?;
        let mut covered = Vec::with_capacity(20 + (key_size + data_size) as usize);
        covered.extend_from_slice(&h[..20]);
        covered.extend_from_slice(key);
        covered.extend_from_slice(data);
        if mbed_crc(&covered) != u32_at(20) {
            return None;
        }
        Some(Record {
            flags: u32_at(8),
            key: key.to_vec(),
            data: data.to_vec(),
            next: align_up(after_header + key_size + data_size, self.program_size),
        })
    }

    /// Master record offset `align_up(72, P)` (§5).
    fn master_offset(&self) -> u64 {
        align_up(72, self.program_size)
    }

    /// An area's master record: `Ok(Some((version, revision)))`, `Ok(None)` if invalid, or
    /// the reason init would halt.
    fn master(&self, area: u8) -> Result<Option<(u16, u16)>, String> {
        let Some(r) = self.record(area, self.master_offset()) else { return Ok(None) };
        if r.key != b"TDBS" {
            return Err(format!("area {area}: a valid record at the master offset with key {:?}", r.key));
        }
        if r.data.len() > 8 || r.data.len() < 4 {
            return Err(format!("area {area}: master record data of {} bytes", r.data.len()));
        }
        Ok(Some((u16::from_le_bytes([r.data[0], r.data[1]]), u16::from_le_bytes([r.data[2], r.data[3]]))))
    }

    /// `reserved_data_get` (§14): the first area whose trailer checks out.
    fn reserved(&self) -> Option<(u8, Vec<u8>)> {
        (0..2u8).find_map(|area| {
            let t = self.bytes(area, 64, 8)?;
            let size = u16::from_le_bytes([t[0], t[1]]);
            let len = u16::from_le_bytes([t[2], t[3]]) as u64;
            let crc = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
            let data = self.bytes(area, 0, len.min(64))?;
            (size == 8 && len <= 64 && mbed_crc(data) == crc).then(|| (area, data.to_vec()))
        })
    }

    /// Mbed's garbage collection of `store` (what [`Image::mount`] found in this image), as
    /// Mbed's next `set` that does not fit would run it (§13). `None` if the store holds a key
    /// Mbed's RAM table could not have (none from [`Image::mount`]).
    pub fn gc(&self, store: &Store) -> Gc {
        let p = self.program_size;
        let header = align_up(HEADER as u64, p);
        let first = self.master_offset() + header + align_up(4 + 8, p);
        let mut table: Vec<(u32, &Vec<u8>, u64)> =
            store.keys.iter().map(|(k, (_, d))| (mbed_crc(k), k, d.len() as u64)).collect();
        // The RAM table is sorted by hash, descending (§8.2); equal hashes alias in Mbed (B12),
        // and keeping both here only makes the copy longer, never shorter.
        table.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let mut to = first;
        for (_, key, data_len) in table {
            let key_len = key.len() as u64;
            let total = header + align_up(key_len + data_len, p);
            if to + total > self.area_size {
                return Gc::MediaFull { key: key.clone(), at: to as u32, size: total as u32 };
            }
            if to + header + key_len + data_len >= self.area_size {
                return Gc::LostAtEnd { key: key.clone(), at: to as u32 };
            }
            to = align_up(to + total, p);
        }
        Gc::Fits { end: to as u32 }
    }

    /// What Mbed's `init()` finds (§11).
    pub fn mount(&self) -> Mount {
        if self.area_size == 0 {
            return Mount::Fatal("no room for two areas".into());
        }
        let masters = match (self.master(0), self.master(1)) {
            (Ok(a), Ok(b)) => [a, b],
            (Err(e), _) | (_, Err(e)) => return Mount::Fatal(e),
        };
        let active = match masters {
            [None, None] => return Mount::NoStore,
            [Some(_), None] => 0,
            [None, Some(_)] => 1,
            // `init` (§12), with its u16 wrap defect (B5).
            [Some((v0, _)), Some((v1, _))] => u8::from(!(v0 > v1 || v0 == 0)),
        };
        let (version, revision) = masters[active as usize].unwrap_or((0, 0));
        let mut keys = BTreeMap::new();
        let mut off = self.master_offset();
        // build_ram_table: from the master record itself (B1), while `offset + 24 < _size`.
        while off + (HEADER as u64) < self.area_size {
            let Some(r) = self.record(active, off) else { break };
            if r.flags & DELETE != 0 {
                keys.remove(&r.key);
            } else {
                keys.insert(r.key, (r.flags, r.data));
            }
            off = r.next;
        }
        Mount::Store(Store {
            active,
            version,
            revision,
            keys,
            free_offset: off as u32,
            reserved: self.reserved(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_format_notes_example() {
        // §3: the version-1 master record's CRC.
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&24u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(b"TDBS");
        b.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(mbed_crc(&b), 0xb8da_2073);
    }

    fn record(p: u64, key: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&24u16.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&(key.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        let mut c = h.clone();
        c.extend_from_slice(key);
        c.extend_from_slice(data);
        h.extend_from_slice(&mbed_crc(&c).to_le_bytes());
        h.resize(align_up(24, p) as usize, 0xFF);
        h.extend_from_slice(key);
        h.extend_from_slice(data);
        h.resize(align_up(h.len() as u64, p) as usize, 0xFF);
        h
    }

    /// A one-area-per-sector image (P = 1, 256-byte areas) with these records after the master.
    fn image(records: &[Vec<u8>]) -> Vec<u8> {
        let mut img = vec![0xFF; 512];
        let mut at = 72;
        for r in
            std::iter::once(record(1, b"TDBS", &[1, 0, 1, 0, 0, 0, 0, 0], 0)).chain(records.iter().cloned())
        {
            img[at..at + r.len()].copy_from_slice(&r);
            at += r.len();
        }
        img
    }

    #[test]
    fn a_record_ending_at_the_area_end_is_not_read() {
        // 108 + 24 + 1 + n = 256 ends exactly at the area end: Mbed stops there (B2).
        let fits = image(&[record(1, b"a", &[7; 122], 0)]);
        let exact = image(&[record(1, b"a", &[7; 123], 0)]);
        let Mount::Store(s) = Image::new(&fits, 1, 256).mount() else { panic!("store") };
        assert_eq!(s.user_keys().len(), 1);
        assert!(s.keys.contains_key(&b"TDBS"[..]), "the master record is a key (B1)");
        let Mount::Store(s) = Image::new(&exact, 1, 256).mount() else { panic!("store") };
        assert!(s.user_keys().is_empty());
    }

    /// The B10 trap (`docs/format.md` B10), at the geometry (8 KiB, P = 8, 4 KiB areas): "a"
    /// with 8 bytes and "d" with 3,911 fill the log to 4,088, one unit short of the end, which
    /// Mbed reads; but its collection copies "TDBS" as well, 40 bytes more than fit.
    #[test]
    fn mbed_gc_of_a_log_filled_past_its_own_master_copy_fails() {
        let build = |a_len: usize, d_len: usize| {
            let mut img = vec![0xFF; 8192];
            let mut at = 72;
            for r in [
                record(8, b"TDBS", &[1, 0, 1, 0, 0, 0, 0, 0], 0),
                record(8, b"a", &vec![1; a_len], 0),
                record(8, b"d", &vec![2; d_len], 0),
            ] {
                img[at..at + r.len()].copy_from_slice(&r);
                at += r.len();
            }
            img
        };
        let trapped = build(8, 3911);
        let img = Image::new(&trapped, 8, 4096);
        let Mount::Store(s) = img.mount() else { panic!("store") };
        assert_eq!(s.free_offset, 4088);
        assert_eq!(s.user_keys().len(), 2, "Mbed reads the image");
        assert!(matches!(img.gc(&s), Gc::MediaFull { .. }), "{:?}", img.gc(&s));
        // 40 bytes less (one master record) and the collection fits, one unit short of the end.
        let fits = build(8, 3911 - 40);
        let img = Image::new(&fits, 8, 4096);
        let Mount::Store(s) = img.mount() else { panic!("store") };
        assert_eq!(img.gc(&s), Gc::Fits { end: 4088 });
        // Copied last ("a" has the lowest hash) with no tail padding, "a" ends exactly at the
        // area end (112 + 3,904 + 40 + 40 = 4,096): Mbed cannot read it back (B11).
        let exact = build(15, 3879);
        let img = Image::new(&exact, 8, 4096);
        let Mount::Store(s) = img.mount() else { panic!("store") };
        assert!(matches!(img.gc(&s), Gc::LostAtEnd { .. }), "{:?}", img.gc(&s));
    }

    #[test]
    fn keys_of_128_bytes_and_deletes() {
        let img = image(&[record(1, &[b'k'; 128], b"v", 0)]);
        let Mount::Store(s) = Image::new(&img, 1, 256).mount() else { panic!("store") };
        assert!(s.user_keys().is_empty(), "key size 128 is rejected");
        let img = image(&[record(1, b"k", b"v", 2), record(1, b"k", b"", DELETE), record(1, b"j", b"w", 8)]);
        let Mount::Store(s) = Image::new(&img, 1, 256).mount() else { panic!("store") };
        assert_eq!(s.user_keys().into_iter().collect::<Vec<_>>(), vec![(b"j".to_vec(), (8, b"w".to_vec()))]);
        assert_eq!(Image::new(&[0xFF; 512], 1, 256).mount(), Mount::NoStore);
    }
}
