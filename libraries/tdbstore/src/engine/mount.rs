//! Mount: choosing the active area by its master record, reading the reserved data, rebuilding the
//! index from the log and checking what lies after its end.

use super::api::*;
use super::erase::*;
use super::find::*;
use super::format_region::*;
use super::read_record::*;
use super::shared::*;
use crate::format::{self, Header, Layout, RecordFormat, MASTER_DATA_LEN, MASTER_KEY};
use crate::index::IndexEntry;
use core::task::Poll::{Pending, Ready};

pub(crate) struct Mount {
    pub(crate) st: MState,
    /// (version, revision) of each area's master record.
    pub(crate) versions: [Option<(u16, u16)>; 2],
    pub(crate) blank: [bool; 2],
    pub(crate) formatted: bool,
    pub(crate) off: u32,
}

pub(crate) enum MState {
    Master { area: u8 },
    Format(Format),
    Reserved { area: u8 },
    Scan(ReadRecord),
    Upsert { header: Header, size: u32, find: Find },
    Tail(BlankCheck),
}

impl Mount {
    pub(crate) fn new() -> Self {
        Mount {
            st: MState::Master { area: 0 },
            versions: [None; 2],
            blank: [false; 2],
            formatted: false,
            off: 0,
        }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<MountInfo> {
        let lay = c.lay;
        loop {
            match &mut self.st {
                MState::Master { area } => {
                    let area = *area;
                    if let Ev::Io(r) = ev {
                        if r == Err(IoError::PowerLost) {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                        }
                        let got = c.got(lay.master_offset, lay.master_size.min(c.chunk));
                        let ok = r.is_ok() && got.len() >= 24;
                        // Blank, unreadable, or our own master record cut before its magic
                        // (a format interrupted between its head programs) all mean "no store".
                        let hs = lay.header_span as usize;
                        let torn_master = got[..4] != format::MAGIC.to_le_bytes()
                            && got.get(hs..hs + 4) == Some(MASTER_KEY);
                        self.blank[area as usize] = !ok || c.is_blank(&got[..24]) || torn_master;
                        if ok {
                            self.versions[area as usize] = parse_master(&lay, got);
                        }
                        if area == 0 {
                            self.st = MState::Master { area: 1 };
                        } else {
                            match self.choose(c) {
                                Ok(Some(a)) => {
                                    c.active = a;
                                    let (version, revision) = self.versions[a as usize].unwrap_or((0, 0));
                                    // An unknown revision is not a store we can write safely.
                                    let fmt = RecordFormat::from_revision(revision).ok_or(Error::Foreign)?;
                                    c.version = version;
                                    c.lay = Layout::with_format(c.geo.program_size, lay.area_size, fmt);
                                    self.st = MState::Reserved { area: c.active };
                                    ev = Ev::Start;
                                    continue;
                                }
                                Ok(None) => {
                                    self.formatted = true;
                                    self.st = MState::Format(Format::new(false));
                                    ev = Ev::Start;
                                    continue;
                                }
                                Err(e) => return Ready(Err(e)),
                            }
                        }
                    }
                    let MState::Master { area } = self.st else {
                        continue;
                    };
                    c.active = area;
                    c.pending = None;
                    return c.read(Area::Active, lay.master_offset, lay.master_size.min(c.chunk));
                }
                MState::Format(f) => {
                    let info = ready!(f.poll(c, ev));
                    return Ready(Ok(MountInfo { formatted: true, ..info }));
                }
                MState::Reserved { area } => {
                    let area = *area;
                    if let Ev::Io(r) = ev {
                        if r == Err(IoError::PowerLost) {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                        }
                        if r.is_ok() {
                            if let Some(n) = format::parse_reserved(c.got(0, 72)) {
                                let skew = c.skew(0);
                                c.reserved[..n].copy_from_slice(&c.work[skew..skew + n]);
                                c.reserved_len = Some(n as u8);
                            }
                        }
                        // Only the active area's copy counts: the standby's may be from a
                        // compaction (or reserved-data set) that never committed.
                        self.off = lay.first_record();
                        self.st = MState::Scan(ReadRecord::new(Area::Active, self.off, ReadMode::Scan));
                        ev = Ev::Start;
                        continue;
                    }
                    // 72 bytes (data and trailer), widened to whole read units by the read
                    // path: a 16- or 32-byte read unit reads 80 or 96 bytes.
                    c.active = area;
                    let len = format::RESERVED_TRAILER_OFFSET + format::RESERVED_TRAILER_LEN;
                    return c.read(Area::Active, 0, len);
                }
                MState::Scan(rr) => {
                    if self.off + c.lay.header_len() > lay.area_size {
                        self.st = self.tail(c);
                        ev = Ev::Start;
                        continue;
                    }
                    match rr.poll(c, ev) {
                        Pending => return Pending,
                        Ready(Ok((header, size))) => {
                            if c.key() == MASTER_KEY {
                                // Mbed's GC copies the master record into the data region
                                // (B1); it is not a user key.
                                self.next_record(size);
                            } else {
                                self.st = MState::Upsert { header, size, find: Find::new() };
                            }
                        }
                        Ready(Err(Error::Io(_, IoError::PowerLost))) => {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)))
                        }
                        // Anything unreadable or invalid ends the log.
                        Ready(Err(_)) => self.st = self.tail(c),
                    }
                }
                MState::Upsert { header, size, find } => {
                    let (header, size) = (*header, *size);
                    let found = ready!(find.poll(c, ev));
                    let new = IndexEntry { hash: format::key_hash(c.key()), offset: self.off };
                    match (found, header.is_delete()) {
                        (Found::Yes { pos, size: old, .. }, true) => {
                            c.index.remove(pos);
                            c.live_bytes = c.live_bytes.saturating_sub(old);
                        }
                        (Found::No, true) => {}
                        (Found::Yes { pos, size: old, .. }, false) => {
                            c.index.set_offset(pos, self.off);
                            c.live_bytes = c.live_bytes.saturating_sub(old) + size;
                        }
                        (Found::No, false) => {
                            let (_, hi) = c.index.hash_range(new.hash);
                            if !c.index.insert(hi, new) {
                                return Ready(Err(Error::IndexFull));
                            }
                            c.live_bytes += size;
                        }
                    }
                    self.next_record(size);
                }
                MState::Tail(bc) => {
                    let clean = ready!(bc.poll(c, ev));
                    c.free = self.off;
                    c.torn_tail = !clean;
                    c.erased_until = if clean { c.sector_end(self.off).min(lay.area_size) } else { self.off };
                    if self.off >= lay.area_size {
                        c.erased_until = lay.area_size;
                    }
                    c.standby_clean = 0;
                    c.mounted = true;
                    return Ready(Ok(MountInfo {
                        active_area: c.active,
                        version: c.version,
                        keys: c.index.len() as u32,
                        free_offset: c.free,
                        formatted: self.formatted,
                        torn_tail: c.torn_tail,
                    }));
                }
            }
            ev = Ev::Start;
        }
    }

    pub(crate) fn next_record(&mut self, size: u32) {
        self.off += size;
        self.st = MState::Scan(ReadRecord::new(Area::Active, self.off, ReadMode::Scan));
    }

    pub(crate) fn tail(&self, c: &Core) -> MState {
        let end = c.sector_end(self.off).min(c.lay.area_size);
        MState::Tail(BlankCheck::new(Area::Active, self.off.min(end), end, None))
    }

    /// The active area, `None` to format a blank region.
    pub(crate) fn choose(&self, c: &Core) -> Result<Option<u8>, Error> {
        match self.versions.map(|v| v.map(|(version, _)| version)) {
            [Some(v0), Some(v1)] => {
                // Serial-number comparison: the area whose version is ahead, modulo 2^16.
                // Mbed's `v0 > v1 || v0 == 0` picks the stale area at the wrap (B5).
                let d = v0.wrapping_sub(v1) as i16;
                Ok(Some(if d > 0 {
                    0
                } else if d < 0 {
                    1
                } else if v0 == 0 {
                    0
                } else {
                    1
                }))
            }
            [Some(_), None] => Ok(Some(0)),
            [None, Some(_)] => Ok(Some(1)),
            [None, None] if self.blank == [true, true] && c.opts.format_if_blank => Ok(None),
            [None, None] => Err(Error::Foreign),
        }
    }
}

/// The version in a master record, if `b` (read at the master offset) is one.
pub(crate) fn parse_master(lay: &Layout, b: &[u8]) -> Option<(u16, u16)> {
    let h = Header::parse(b)?;
    let hs = lay.header_span as usize;
    if h.key_len != 4 || h.data_len != MASTER_DATA_LEN || b.len() < hs + 12 || &b[hs..hs + 4] != MASTER_KEY {
        return None;
    }
    let mut crc = h.crc_start();
    crc.update(&b[hs..hs + 12]);
    let field = |i: usize| u16::from_le_bytes([b[hs + i], b[hs + i + 1]]);
    (crc.value() == h.crc).then(|| (field(4), field(6)))
}
