//! Mount: choosing the active area by its master record, reading the reserved data, rebuilding the
//! index from the log and checking what lies after its end.

use super::api::*;
use super::erase::BlankCheck;
use super::find::Find;
use super::format_region::Format;
use super::read_record::{ReadMode, ReadRecord};
use super::shared::*;
use crate::format::{self, Header, MasterSlot, RecordFormat, MASTER_KEY, RESERVED_AREA_LEN};
use core::task::Poll::{Pending, Ready};

/// Mounts the region. The active area is the one whose master record is valid (the later
/// version when both are); its log is scanned record by record until a record does not
/// check out, every record applied to the index as the store saw it.
pub(crate) enum Mount {
    /// Not started.
    Start,
    /// Area `area`'s master slot is being read; `first` is area 0's, once read.
    AwaitMaster { area: u8, first: MasterSlot },
    /// A blank region (both slots blank) is being formatted.
    Format(Format),
    /// The active area's reserved slot is being read.
    AwaitReserved,
    /// The record at `off` is being read.
    Scan { off: u32, read: ReadRecord },
    /// The record at `off` (its key in [`Core::key`]) is being looked up to apply it.
    Apply { off: u32, header: Header, size: u32, find: Find },
    /// The rest of the sector after the log's end (`off`) is being checked blank.
    Tail { off: u32, check: BlankCheck },
}

impl Mount {
    pub(crate) fn new() -> Self {
        Mount::Start
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<MountInfo> {
        let lay = c.lay;
        loop {
            match self {
                Mount::Start => {
                    *self = Mount::AwaitMaster { area: 0, first: MasterSlot::Blank };
                    return read_master(c, 0);
                }
                Mount::AwaitMaster { area, first } => {
                    let (area, first) = (*area, *first);
                    let slot = match ev {
                        Ev::Io(Err(IoError::PowerLost)) => {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)))
                        }
                        // An unreadable slot holds no store.
                        Ev::Io(Err(_)) => MasterSlot::Blank,
                        _ => {
                            lay.parse_master(c.got(lay.master_offset, master_read_len(c)), c.geo.erase_value)
                        }
                    };
                    if area == 0 {
                        *self = Mount::AwaitMaster { area: 1, first: slot };
                        return read_master(c, 1);
                    }
                    match choose([first, slot], c.opts.format_if_blank)? {
                        None => *self = Mount::Format(Format::new(false)),
                        Some((active, version, format)) => {
                            c.chose_area(active, version, format);
                            *self = Mount::AwaitReserved;
                            return c.read(Area::Active, 0, RESERVED_AREA_LEN);
                        }
                    }
                }
                Mount::Format(f) => {
                    let info = ready!(f.poll(c, ev));
                    return Ready(Ok(MountInfo { formatted: true, ..info }));
                }
                Mount::AwaitReserved => {
                    match ev {
                        Ev::Io(Err(IoError::PowerLost)) => {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)))
                        }
                        Ev::Io(Ok(())) => {
                            if let Some(n) = format::parse_reserved(c.got(0, RESERVED_AREA_LEN)) {
                                let skew = c.skew(0);
                                c.reserved[..n].copy_from_slice(&c.work[skew..skew + n]);
                                c.reserved_len = Some(n as u8);
                            }
                        }
                        // Only the active area's copy counts: the standby's may be from a
                        // compaction (or reserved-data set) that never committed.
                        _ => {}
                    }
                    *self = scan(c.lay.first_record());
                }
                Mount::Scan { off, read } => {
                    let off = *off;
                    if off + c.lay.header_len() > lay.area_size {
                        *self = tail(c, off);
                    } else {
                        match read.poll(c, ev) {
                            Pending => return Pending,
                            // Mbed's GC copies the master record into the data region (B1); it
                            // is not a user key.
                            Ready(Ok((_, size))) if c.key() == MASTER_KEY => *self = scan(off + size),
                            Ready(Ok((header, size))) => {
                                // Lookups read no further than the log validated so far.
                                c.scanned_to(off + size);
                                *self = Mount::Apply { off, header, size, find: Find::new() };
                            }
                            Ready(Err(Error::Io(_, IoError::PowerLost))) => {
                                return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)))
                            }
                            // Anything unreadable or invalid ends the log.
                            Ready(Err(_)) => *self = tail(c, off),
                        }
                    }
                }
                Mount::Apply { off, header, size, find } => {
                    let (off, size, delete) = (*off, *size, header.is_delete());
                    let found = ready!(find.poll(c, ev));
                    c.apply_record(found, NewRecord { offset: off, size, delete })?;
                    *self = scan(off + size);
                }
                Mount::Tail { off, check } => {
                    let off = *off;
                    let clean = ready!(check.poll(c, ev));
                    c.found_log_end(off, clean);
                    return Ready(Ok(MountInfo {
                        active_area: c.active,
                        version: c.version,
                        keys: c.index.len() as u32,
                        free_offset: c.free,
                        formatted: false,
                        torn_tail: c.torn_tail,
                    }));
                }
            }
            ev = Ev::Start;
        }
    }
}

fn master_read_len(c: &Core) -> u32 {
    c.lay.master_size.min(c.chunk)
}

fn read_master(c: &mut Core, area: u8) -> Poll<MountInfo> {
    c.read(Area::Number(area), c.lay.master_offset, master_read_len(c))
}

fn scan(off: u32) -> Mount {
    Mount::Scan { off, read: ReadRecord::new(Area::Active, off, ReadMode::Scan) }
}

fn tail(c: &Core, off: u32) -> Mount {
    let end = c.sector_end(off).min(c.lay.area_size);
    Mount::Tail { off, check: BlankCheck::new(Area::Active, off.min(end), end, None) }
}

/// The active area (number, version, record format) from both master slots; `None` to
/// format a blank region.
fn choose(slots: [MasterSlot; 2], format_if_blank: bool) -> Result<Option<(u8, u16, RecordFormat)>, Error> {
    let valid = |s: MasterSlot| match s {
        MasterSlot::Valid { version, revision } => Some((version, revision)),
        _ => None,
    };
    let area = match slots.map(valid) {
        [Some((v0, _)), Some((v1, _))] => {
            // Serial-number comparison: the area whose version is ahead, modulo 2^16.
            // Mbed's `v0 > v1 || v0 == 0` picks the stale area at the wrap (B5).
            let d = v0.wrapping_sub(v1) as i16;
            if d > 0 || (d == 0 && v0 == 0) {
                0
            } else {
                1
            }
        }
        [Some(_), None] => 0,
        [None, Some(_)] => 1,
        [None, None] if slots == [MasterSlot::Blank; 2] && format_if_blank => return Ok(None),
        [None, None] => return Err(Error::Foreign),
    };
    let (version, revision) = valid(slots[area as usize]).ok_or(Error::Internal)?;
    // An unknown revision is not a store we can write safely.
    let format = RecordFormat::from_revision(revision).ok_or(Error::Foreign)?;
    Ok(Some((area, version, format)))
}
