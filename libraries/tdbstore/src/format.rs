//! The on-flash format of Mbed OS's TDBStore: the one place that knows byte positions.
//!
//! A device is split into two equal **areas** of whole erase units; one is active, the other
//! is the standby that garbage collection compacts into. Every area looks like this
//! (offsets from the area start, `P` = program size, `H = align_up(24, P)`):
//!
//! ```text
//! 0             reserved data (0..=64 bytes, write-once, copied by compaction)
//! 64            reserved trailer  { u16 trailer_size = 8, u16 data_size, u32 crc }
//! MRO           master record = align_up(72, P): an ordinary record, key "TDBS",
//!               data { u16 version, u16 tdbstore_revision = 1, u32 reserved = 0 }
//! MRO + MRS     first data record; records follow back to back, each P-aligned
//! ```
//!
//! A record is a 24-byte header padded to `H`, then the key, then **immediately** the data,
//! padded to `P`:
//!
//! ```text
//! 0  u32 magic 0x54686683   4  u16 header_size 24   6  u16 revision 1
//! 8  u32 flags              12 u16 key_size          14 u16 reserved 0
//! 16 u32 data_size          20 u32 crc  (over bytes 0..20, key, data; padding excluded)
//! H  key bytes, data bytes, padding to P
//! ```
//!
//! All integers are little-endian. `header_size` and `revision` are written but, as in
//! Mbed, never checked on read. Padding is don't-care on read.
//!
//! **Compact records** (opt-in, [`RecordFormat::Compact`], for stores that need no Mbed
//! compatibility) keep the areas, reserved area, master record and compaction, but shrink
//! the record header to 12 bytes with the key right behind it, so a small record (the
//! tutorial's 5-byte key and 12-byte value) fits one 32-byte flash word instead of two:
//!
//! ```text
//! 0 u16 magic 0xC7DB   2 u8 flags (bits 0,1,3 as above; bit 7 delete)   3 u8 key_size
//! 4 u32 data_size      8 u32 crc (over bytes 0..8, key, data)          12 key, data, padding
//! ```
//!
//! A compact store's master record is an ordinary Mbed master record whose
//! `tdbstore_revision` is [`COMPACT_REVISION`]; Mbed mounts it as an empty store.
//!
//! Deviations from Mbed's defects (`docs/format.md` §18), all chosen so that images stay
//! mutually readable: a record ending exactly at the area end is read as valid (Mbed rejects
//! it, B2) but never written: in Mbed format the log stops at [`Layout::log_limit`], one
//! program unit and one master record short of the area end, so Mbed's own garbage
//! collection, which copies its master record (B1), always fits (B10); keys are 1..=[`MAX_KEY_LEN`] bytes everywhere (B3);
//! the key `"TDBS"` is never a user key and master-record copies in the data region are
//! skipped (B1, B7).

use crate::crc::Crc32;

/// Record magic (`83 66 68 54` on flash).
pub const MAGIC: u32 = 0x5468_6683;
/// Bytes at the start of every record that hold its magic (Mbed's 4-byte magic; the compact
/// header's 2-byte magic lies within them). A record counts as written only once these are
/// programmed, so they are programmed last.
pub const MAGIC_SPAN: u32 = 4;
/// Header size field value and the unpadded header length.
pub const HEADER_LEN: u32 = 24;
/// Record revision field value.
pub const REVISION: u16 = 1;
/// The master record's key.
pub const MASTER_KEY: &[u8] = b"TDBS";
/// Length of the master record's data.
pub const MASTER_DATA_LEN: u32 = 8;
/// Flag bit marking a delete record (tombstone). Internal; never a user flag.
pub const DELETE_FLAG: u32 = 1 << 31;
/// User flag: the key can never be overwritten or removed.
pub const WRITE_ONCE: u32 = 1 << 0;
/// User flag, stored and reported only (confidentiality is SecureStore's business).
pub const REQUIRE_CONFIDENTIALITY: u32 = 1 << 1;
/// User flag, stored and reported only (replay protection is SecureStore's business).
pub const REQUIRE_REPLAY_PROTECTION: u32 = 1 << 3;
/// Every flag a user may set.
pub const USER_FLAGS: u32 = WRITE_ONCE | REQUIRE_CONFIDENTIALITY | REQUIRE_REPLAY_PROTECTION;
/// Longest key, in bytes. Mbed's `read_record` rejects 128 (`key_size >= 128`), so 127 is the
/// real limit; this engine enforces it on every path.
pub const MAX_KEY_LEN: usize = 127;
/// Bytes of reserved data an area can hold.
pub const RESERVED_LEN: usize = 64;
/// Offset of the reserved trailer.
pub const RESERVED_TRAILER_OFFSET: u32 = 64;
/// Length of the reserved trailer.
pub const RESERVED_TRAILER_LEN: u32 = 8;
/// Bytes a key may not contain: Mbed's forbidden characters, plus NUL (keys are C strings
/// to Mbed).
pub const FORBIDDEN_KEY_BYTES: &[u8] = b" */?:;\"|<>\\\0";

/// Magic of a compact record (`DB C7` on flash).
pub const COMPACT_MAGIC: u16 = 0xC7DB;
/// Header length of a compact record.
pub const COMPACT_HEADER_LEN: u32 = 12;
/// `tdbstore_revision` in the master record of an Mbed-format store.
pub const MBED_REVISION: u16 = 1;
/// `tdbstore_revision` in the master record of a compact-record store.
pub const COMPACT_REVISION: u16 = 2;

/// How records are laid out in a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordFormat {
    /// Mbed OS TDBStore records: byte-compatible both ways. The default.
    #[default]
    Mbed,
    /// 12-byte headers, key packed behind them: one flash word per small update.
    Compact,
}

impl RecordFormat {
    /// The master record's `tdbstore_revision` for this format.
    pub const fn revision(self) -> u16 {
        match self {
            RecordFormat::Mbed => MBED_REVISION,
            RecordFormat::Compact => COMPACT_REVISION,
        }
    }

    /// The format a master record's revision names, if known.
    pub const fn from_revision(rev: u16) -> Option<RecordFormat> {
        match rev {
            MBED_REVISION => Some(RecordFormat::Mbed),
            COMPACT_REVISION => Some(RecordFormat::Compact),
            _ => None,
        }
    }
}

/// Copies as much of `src` as fits to the front of `dst`.
fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Rounds `v` up to a multiple of `a` (`a` > 0).
pub const fn align_up(v: u32, a: u32) -> u32 {
    v.div_ceil(a) * a
}

/// Why a key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Zero bytes long.
    Empty,
    /// Longer than [`MAX_KEY_LEN`].
    TooLong,
    /// Contains one of [`FORBIDDEN_KEY_BYTES`].
    ForbiddenByte(u8),
    /// The key `"TDBS"`, which names the master record.
    Reserved,
}

/// Checks a user key.
pub fn validate_key(key: &[u8]) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    if let Some(&b) = key.iter().find(|&&b| is_forbidden(b)) {
        return Err(KeyError::ForbiddenByte(b));
    }
    if key == MASTER_KEY {
        return Err(KeyError::Reserved);
    }
    Ok(())
}

/// [`FORBIDDEN_KEY_BYTES`] as a bit set over the bytes below 128 (all of them are): one
/// lookup per key byte instead of a scan of the list.
const FORBIDDEN_SET: [u32; 4] = {
    let mut set = [0u32; 4];
    let mut i = 0;
    while i < FORBIDDEN_KEY_BYTES.len() {
        let b = FORBIDDEN_KEY_BYTES[i];
        assert!(b < 128);
        set[(b >> 5) as usize] |= 1 << (b & 31);
        i += 1;
    }
    set
};

fn is_forbidden(b: u8) -> bool {
    b < 128 && FORBIDDEN_SET[(b >> 5) as usize] >> (b & 31) & 1 != 0
}

/// The hash that orders the RAM index: Mbed's CRC of the key bytes. Iteration walks keys in
/// descending hash order, as Mbed's does.
pub fn key_hash(key: &[u8]) -> u32 {
    Crc32::of(key)
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Flags, including [`DELETE_FLAG`] for a tombstone.
    pub flags: u32,
    /// Key length.
    pub key_len: u16,
    /// Data length.
    pub data_len: u32,
    /// Stored CRC.
    pub crc: u32,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes. `None` if the magic is wrong or the key length is
    /// outside 1..=[`MAX_KEY_LEN`] (Mbed's `read_record` checks; bounds are [`Layout`]'s job).
    pub fn parse(b: &[u8]) -> Option<Header> {
        let b: &[u8; 24] = b.get(..24)?.try_into().ok()?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(0) != MAGIC {
            return None;
        }
        let key_len = u16::from_le_bytes([b[12], b[13]]);
        if key_len == 0 || key_len as usize > MAX_KEY_LEN {
            return None;
        }
        Some(Header { flags: u32_at(8), key_len, data_len: u32_at(16), crc: u32_at(20) })
    }

    /// The header's 24 bytes, with `crc`.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN as usize] {
        // Built from whole arrays, not slice copies: at opt-level "z" each slice copy stays a
        // bounds-checked call.
        let [m0, m1, m2, m3] = MAGIC.to_le_bytes();
        let [h0, h1] = (HEADER_LEN as u16).to_le_bytes();
        let [r0, r1] = REVISION.to_le_bytes();
        let [f0, f1, f2, f3] = self.flags.to_le_bytes();
        let [k0, k1] = self.key_len.to_le_bytes();
        let [d0, d1, d2, d3] = self.data_len.to_le_bytes();
        let [c0, c1, c2, c3] = self.crc.to_le_bytes();
        // Bytes 14 and 15 are reserved, zero.
        [m0, m1, m2, m3, h0, h1, r0, r1, f0, f1, f2, f3, k0, k1, 0, 0, d0, d1, d2, d3, c0, c1, c2, c3]
    }

    /// Encodes the header with `crc` into the first 24 bytes of `out` (as many as it has).
    pub fn encode(&self, out: &mut [u8]) {
        copy_prefix(out, &self.to_bytes());
    }

    /// A CRC primed with the 20 header bytes the record CRC covers (everything but `crc`).
    pub fn crc_start(&self) -> Crc32 {
        let mut c = Crc32::new();
        c.update(&self.to_bytes()[..20]);
        c
    }

    /// Whether this is a tombstone.
    pub fn is_delete(&self) -> bool {
        self.flags & DELETE_FLAG != 0
    }
}

/// Where things are in an area, derived from the program size, the area size and the
/// record format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Record format.
    pub format: RecordFormat,
    /// Program unit.
    pub program_size: u32,
    /// Size of one area.
    pub area_size: u32,
    /// Padded Mbed header length `align_up(24, P)` (the master record always uses it).
    pub header_span: u32,
    /// Where a record's key starts: `header_span` (Mbed) or 12 (compact).
    pub body_offset: u32,
    /// The record's leading program units that hold the header; programmed last.
    pub head_span: u32,
    /// Master record offset `align_up(72, P)`.
    pub master_offset: u32,
    /// Master record size.
    pub master_size: u32,
}

impl Layout {
    /// The Mbed-format layout for program size `p` and areas of `area_size` bytes.
    pub const fn new(p: u32, area_size: u32) -> Layout {
        Self::with_format(p, area_size, RecordFormat::Mbed)
    }

    /// The layout for a record format.
    pub const fn with_format(p: u32, area_size: u32, format: RecordFormat) -> Layout {
        let header_span = align_up(HEADER_LEN, p);
        let master_offset = align_up(RESERVED_TRAILER_OFFSET + RESERVED_TRAILER_LEN, p);
        let master_size = header_span + align_up(MASTER_KEY.len() as u32 + MASTER_DATA_LEN, p);
        let (body_offset, head_span) = match format {
            RecordFormat::Mbed => (header_span, header_span),
            RecordFormat::Compact => (COMPACT_HEADER_LEN, align_up(COMPACT_HEADER_LEN, p)),
        };
        Layout {
            format,
            program_size: p,
            area_size,
            header_span,
            body_offset,
            head_span,
            master_offset,
            master_size,
        }
    }

    /// Bytes of a record header in this format.
    pub const fn header_len(&self) -> u32 {
        match self.format {
            RecordFormat::Mbed => HEADER_LEN,
            RecordFormat::Compact => COMPACT_HEADER_LEN,
        }
    }

    /// Parses a record header in this format (magic and key length checked).
    pub fn parse_header(&self, b: &[u8]) -> Option<Header> {
        match self.format {
            RecordFormat::Mbed => Header::parse(b),
            RecordFormat::Compact => {
                let b: &[u8; 12] = b.get(..12)?.try_into().ok()?;
                if u16::from_le_bytes([b[0], b[1]]) != COMPACT_MAGIC {
                    return None;
                }
                let key_len = b[3] as u16;
                if key_len == 0 || key_len as usize > MAX_KEY_LEN {
                    return None;
                }
                let f = b[2] as u32;
                let flags = (f & 0x0F) | if f & 0x80 != 0 { DELETE_FLAG } else { 0 };
                let data_len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
                Some(Header { flags, key_len, data_len, crc })
            }
        }
    }

    /// A record header in this format: its first [`Layout::header_len`] bytes.
    pub fn header_bytes(&self, h: &Header) -> [u8; HEADER_LEN as usize] {
        match self.format {
            RecordFormat::Mbed => h.to_bytes(),
            RecordFormat::Compact => {
                let [m0, m1] = COMPACT_MAGIC.to_le_bytes();
                let flags = (h.flags & 0x0F) as u8 | if h.is_delete() { 0x80 } else { 0 };
                let [d0, d1, d2, d3] = h.data_len.to_le_bytes();
                let [c0, c1, c2, c3] = h.crc.to_le_bytes();
                let mut b = [0u8; HEADER_LEN as usize];
                b[..COMPACT_HEADER_LEN as usize].copy_from_slice(&[
                    m0,
                    m1,
                    flags,
                    h.key_len as u8,
                    d0,
                    d1,
                    d2,
                    d3,
                    c0,
                    c1,
                    c2,
                    c3,
                ]);
                b
            }
        }
    }

    /// Encodes a record header in this format into the first [`Layout::header_len`] bytes of
    /// `out` (as many as it has).
    pub fn encode_header(&self, h: &Header, out: &mut [u8]) {
        let b = self.header_bytes(h);
        copy_prefix(out, &b[..self.header_len() as usize]);
    }

    /// A CRC primed with the header bytes the record CRC covers (all but the CRC itself,
    /// which is the last field in both formats).
    pub fn crc_start(&self, h: &Header) -> Crc32 {
        let mut c = Crc32::new();
        c.update(&self.header_bytes(h)[..self.header_len() as usize - 4]);
        c
    }

    /// Offset of the first data record.
    pub const fn first_record(&self) -> u32 {
        self.master_offset + self.master_size
    }

    /// Bytes a record with this key and data length occupies, or `None` on overflow.
    pub fn record_size(&self, key_len: u32, data_len: u32) -> Option<u32> {
        let body = (self.body_offset as u64) + key_len as u64 + data_len as u64;
        let size = body.div_ceil(self.program_size as u64) * self.program_size as u64;
        u32::try_from(size).ok()
    }

    /// The size of the record whose header is `h` at area offset `off`, if it lies inside
    /// the area. Unlike Mbed (B2) a record may end exactly at the area end.
    pub fn record_extent(&self, off: u32, h: &Header) -> Option<u32> {
        let size = self.record_size(h.key_len as u32, h.data_len)?;
        let end = off as u64 + self.body_offset as u64 + h.key_len as u64 + h.data_len as u64;
        (end <= self.area_size as u64).then_some(size)
    }

    /// How far this engine lets the log grow: every record it writes (a value, a delete
    /// record, an incremental set, a compaction's copy) ends at or before this offset.
    ///
    /// In Mbed format that is one program unit short of the area end. Mbed's reader rejects
    /// a record whose last byte is the area's last byte (`>=` in its `read_record`, `docs/format.md` §6.4, B2) and stops its
    /// scan there, so a record written to fit exactly would be lost to Mbed, and Mbed's next
    /// set would program over it. Keeping the whole log below `area_size - P` also keeps
    /// every compaction valid for Mbed: compaction reorders records, and a record without
    /// tail padding could otherwise land exactly at the end. This reader still accepts
    /// exact-fit records written by others ([`Layout::record_extent`]).
    ///
    /// In Mbed format the log also leaves out one master record's size. Mbed's garbage
    /// collection copies its own master record into the data region (B1), so an area whose
    /// records reach further than `area_size - P - master_size` holds more than Mbed's next
    /// collection can copy: it fails midway and leaves Mbed's store unusable (B10). This
    /// engine's compaction copies no master record, so without that margin it would fill the
    /// room Mbed needs. Compact-record stores are not Mbed's to read and use the whole area.
    pub const fn log_limit(&self) -> u32 {
        match self.format {
            RecordFormat::Mbed => self.area_size - self.program_size - self.master_size,
            RecordFormat::Compact => self.area_size,
        }
    }

    /// Bytes of records an area holds at most (from the first record to [`Layout::log_limit`]).
    pub const fn capacity(&self) -> u32 {
        self.log_limit().saturating_sub(self.first_record())
    }

    /// Whether Mbed's reader accepts a record of this header at `off` (its last byte before
    /// the area's last byte, `key_len` < 128): what `tdbstore check` warns about.
    pub fn mbed_reads(&self, off: u32, h: &Header) -> bool {
        let end = off as u64 + self.header_span as u64 + h.key_len as u64 + h.data_len as u64;
        end < self.area_size as u64 && (h.key_len as usize) < 128
    }

    /// Largest value a single key of `key_len` bytes can have in an empty area.
    pub fn max_value_len(&self, key_len: u32) -> u32 {
        self.capacity().saturating_sub(self.body_offset + key_len)
    }
}

/// Bytes of an area's reserved slot that Mbed reads: the data and its trailer.
pub const RESERVED_AREA_LEN: u32 = RESERVED_TRAILER_OFFSET + RESERVED_TRAILER_LEN;

/// What an area's master-record slot holds (see [`Layout::parse_master`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterSlot {
    /// A master record whose checksum holds.
    Valid {
        /// Area version (the higher one, in serial-number order, is the active area).
        version: u16,
        /// Record-format revision ([`RecordFormat::revision`]).
        revision: u16,
    },
    /// No store: an erased header, or a master record whose head program was cut before
    /// its magic (the body is written first, so the key is there and the magic is not).
    Blank,
    /// Something else: not a TDBStore, or damaged.
    Other,
}

/// The area Mbed's `init()` makes active when both master records are valid: area 0 when
/// `v0 > v1 || v0 == 0` (its `init`, `docs/format.md` §12). Plain u16 comparison, so at the version wrap it can
/// pick the stale area (B5); this engine compares serially and, where the two rules would
/// disagree after a compaction, erases the old area's master record ([`mbed_agrees`]).
pub const fn mbed_active_area(v0: u16, v1: u16) -> u8 {
    if v0 > v1 || v0 == 0 {
        0
    } else {
        1
    }
}

/// Whether Mbed's rule picks `new_area` (master version `new_version`) over the other area,
/// whose master record holds `new_version - 1`: false only around the version wrap.
pub const fn mbed_agrees(new_area: u8, new_version: u16) -> bool {
    let old = new_version.wrapping_sub(1);
    let (v0, v1) = if new_area == 0 { (new_version, old) } else { (old, new_version) };
    mbed_active_area(v0, v1) == new_area
}

impl Layout {
    /// Encodes a master record with `version` (and this layout's record format as its
    /// revision) into `out[..master_size]`, padding with the erase value.
    pub fn encode_master(&self, version: u16, erase_value: u8, out: &mut [u8]) {
        let hs = self.header_span as usize;
        let mut data = [0u8; MASTER_DATA_LEN as usize];
        data[..2].copy_from_slice(&version.to_le_bytes());
        data[2..4].copy_from_slice(&self.format.revision().to_le_bytes());
        let mut h = Header { flags: 0, key_len: MASTER_KEY.len() as u16, data_len: MASTER_DATA_LEN, crc: 0 };
        let mut crc = h.crc_start();
        crc.update(MASTER_KEY);
        crc.update(&data);
        h.crc = crc.value();
        let w = &mut out[..self.master_size as usize];
        w.fill(erase_value);
        h.encode(&mut w[..HEADER_LEN as usize]);
        w[hs..hs + MASTER_KEY.len()].copy_from_slice(MASTER_KEY);
        w[hs + MASTER_KEY.len()..hs + MASTER_KEY.len() + MASTER_DATA_LEN as usize].copy_from_slice(&data);
    }

    /// Classifies the bytes read at the master offset (`b`, at least [`HEADER_LEN`] bytes;
    /// shorter means unreadable, which counts as blank).
    pub fn parse_master(&self, b: &[u8], erase_value: u8) -> MasterSlot {
        let hs = self.header_span as usize;
        let body = hs..hs + MASTER_KEY.len() + MASTER_DATA_LEN as usize;
        let Some(head) = b.get(..HEADER_LEN as usize) else { return MasterSlot::Blank };
        let key = b.get(hs..hs + MASTER_KEY.len());
        let torn = head[..4] != MAGIC.to_le_bytes() && key == Some(MASTER_KEY);
        if torn || head.iter().all(|&x| x == erase_value) {
            return MasterSlot::Blank;
        }
        let (Some(h), Some(body)) = (Header::parse(b), b.get(body)) else { return MasterSlot::Other };
        if h.key_len as usize != MASTER_KEY.len() || h.data_len != MASTER_DATA_LEN || key != Some(MASTER_KEY)
        {
            return MasterSlot::Other;
        }
        let mut crc = h.crc_start();
        crc.update(body);
        if crc.value() != h.crc {
            return MasterSlot::Other;
        }
        let field = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
        MasterSlot::Valid { version: field(4), revision: field(6) }
    }
}

/// Encodes the reserved trailer for `data` into `out[..8]`.
pub fn encode_reserved_trailer(data: &[u8], out: &mut [u8]) {
    out[0..2].copy_from_slice(&(RESERVED_TRAILER_LEN as u16).to_le_bytes());
    out[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
    out[4..8].copy_from_slice(&Crc32::of(data).to_le_bytes());
}

/// Builds the head of an area holding reserved data `data` in `out` (the bytes before the
/// master record): the data, erased-value padding (Mbed pads with stack contents, `docs/format.md` B6),
/// and the trailer at [`RESERVED_TRAILER_OFFSET`].
pub fn encode_reserved_area(data: &[u8], erase_value: u8, out: &mut [u8]) {
    let (head, rest) = out.split_at_mut(data.len());
    head.copy_from_slice(data);
    rest.fill(erase_value);
    let at = RESERVED_TRAILER_OFFSET as usize;
    encode_reserved_trailer(data, &mut out[at..at + RESERVED_TRAILER_LEN as usize]);
}

/// Decodes a reserved area (`area[..RESERVED_AREA_LEN]`): the reserved data length if the trailer is valid.
pub fn parse_reserved(area: &[u8]) -> Option<usize> {
    let at = RESERVED_TRAILER_OFFSET as usize;
    let t = area.get(at..at + RESERVED_TRAILER_LEN as usize)?;
    let trailer_size = u16::from_le_bytes([t[0], t[1]]);
    let len = u16::from_le_bytes([t[2], t[3]]) as usize;
    let crc = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    (trailer_size as u32 == RESERVED_TRAILER_LEN && len <= RESERVED_LEN && Crc32::of(&area[..len]) == crc)
        .then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbed_disagrees_only_around_the_wrap() {
        // Area 1 holds the even versions when area 0 starts at 1 (Mbed's own parity): at the
        // wrap area 1 gets 0 while area 0 still has 65535, and Mbed picks area 0 (B5).
        assert!(!mbed_agrees(1, 0));
        // The other parity: area 0 holds 0 and area 1 gets 1; Mbed keeps area 0 (v0 == 0).
        assert!(!mbed_agrees(1, 1));
        for v in (2..=u16::MAX).chain([0, 1]) {
            for area in 0..2u8 {
                let expect = !matches!((area, v), (1, 0) | (1, 1));
                assert_eq!(mbed_agrees(area, v), expect, "area {area}, version {v}");
            }
        }
    }

    #[test]
    fn layouts_match_the_format_notes() {
        for (p, mro, mrs, first) in [(1, 72, 36, 108), (8, 72, 40, 112), (32, 96, 64, 160)] {
            let l = Layout::new(p, 1 << 16);
            assert_eq!((l.master_offset, l.master_size, l.first_record()), (mro, mrs, first));
        }
    }

    #[test]
    fn header_roundtrip_and_rejections() {
        let h = Header { flags: WRITE_ONCE, key_len: 5, data_len: 12, crc: 0x1234_5678 };
        let mut b = [0u8; 24];
        h.encode(&mut b);
        assert_eq!(&b[..4], &[0x83, 0x66, 0x68, 0x54]);
        assert_eq!(Header::parse(&b), Some(h));
        b[0] ^= 1;
        assert_eq!(Header::parse(&b), None);
        b[0] ^= 1;
        b[12] = 128;
        assert_eq!(Header::parse(&b), None);
        assert_eq!(Header::parse(&b[..23]), None);
    }

    #[test]
    fn the_forbidden_byte_set_is_the_list() {
        for b in 0..=255u8 {
            assert_eq!(is_forbidden(b), FORBIDDEN_KEY_BYTES.contains(&b), "byte {b:#04x}");
        }
    }

    #[test]
    fn key_rules() {
        assert_eq!(validate_key(b""), Err(KeyError::Empty));
        assert_eq!(validate_key(&[b'a'; 128]), Err(KeyError::TooLong));
        assert!(validate_key(&[b'a'; 127]).is_ok());
        assert_eq!(validate_key(b"a b"), Err(KeyError::ForbiddenByte(b' ')));
        assert_eq!(validate_key(b"a\0"), Err(KeyError::ForbiddenByte(0)));
        assert_eq!(validate_key(b"TDBS"), Err(KeyError::Reserved));
        assert!(validate_key(b"tdbs").is_ok());
        assert!(validate_key(&[0xC3, 0xA9]).is_ok());
    }

    #[test]
    fn compact_records_fit_a_stats_update_in_one_word() {
        let l = Layout::with_format(32, 1 << 16, RecordFormat::Compact);
        assert_eq!(l.record_size(5, 12), Some(32));
        assert_eq!(Layout::new(32, 1 << 16).record_size(5, 12), Some(64));
        let h = Header { flags: WRITE_ONCE | DELETE_FLAG, key_len: 5, data_len: 12, crc: 0xAABB_CCDD };
        let mut b = [0u8; 12];
        l.encode_header(&h, &mut b);
        assert_eq!(l.parse_header(&b), Some(h));
        assert_eq!(Header::parse(&[0; 24]), None);
        assert_eq!(l.parse_header(&[0xFF; 12]), None);
    }

    #[test]
    fn exact_fit_is_valid() {
        let l = Layout::new(32, 1024);
        let h = Header { flags: 0, key_len: 4, data_len: 1024 - 512 - 32 - 4, crc: 0 };
        assert_eq!(l.record_extent(512, &h), Some(512));
        let h2 = Header { data_len: h.data_len + 1, ..h };
        assert_eq!(l.record_extent(512, &h2), None);
        let huge = Header { data_len: u32::MAX, ..h };
        assert_eq!(l.record_extent(512, &huge), None);
        // Read as valid, but Mbed would not read it, and this engine never writes it.
        assert!(!l.mbed_reads(512, &h));
        assert!(l.mbed_reads(512, &Header { data_len: h.data_len - 1, ..h }));
        assert_eq!(l.log_limit(), 1024 - 32 - 64);
    }

    #[test]
    fn the_log_limit_keeps_mbed_format_records_off_the_area_end() {
        // Mbed format: one program unit and one master record short of the end (B2, B10);
        // compact: the whole area.
        for p in [1, 8, 32, 256] {
            let l = Layout::new(p, 1 << 14);
            let limit = (1 << 14) - p - l.master_size;
            assert_eq!((l.log_limit(), l.capacity()), (limit, limit - l.first_record()));
            assert_eq!(l.max_value_len(3), l.capacity() - l.body_offset - 3);
            let c = Layout::with_format(p, 1 << 14, RecordFormat::Compact);
            assert_eq!(c.log_limit(), 1 << 14);
        }
    }
}
