//! Each procedure against the exact sequence of requests it must make, on a small RAM flash
//! (8-byte program units, 4 KiB sectors, two 8 KiB areas) whose layout `docs/format.md` §5 gives:
//! master record at 72 (40 bytes), first record at 112.

use super::*;
use crate::format::DELETE_FLAG;

const GEO: Geometry =
    Geometry { size: 4 * 4096, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };
const AREA: u32 = 8192;

fn read(addr: u32, len: u32) -> Request {
    Request::Read { addr, len }
}
fn program(addr: u32, len: u32) -> Request {
    Request::Program { addr, len }
}
fn erase(addr: u32) -> Request {
    Request::Erase { addr, len: 4096 }
}

/// Runs one operation to its end, performing each request on `flash` (programming only
/// erased bytes, as the STM32H7 demands) and recording it.
fn drive(
    s: &mut Store<'_>,
    flash: &mut [u8],
    op: Op<'_>,
    input: &[u8],
    out: &mut [u8],
) -> (Result<Outcome, Error>, Vec<Request>) {
    let step = s.start(op);
    let log = perform(s, flash, step, input, out);
    (s.result.take().expect("a result"), log)
}

/// Performs requests from `step` on until the operation is done, leaving its result for
/// [`Store::finish`]; the requests made, in order.
fn perform(
    s: &mut Store<'_>,
    flash: &mut [u8],
    mut step: Step,
    input: &[u8],
    out: &mut [u8],
) -> Vec<Request> {
    let mut log = Vec::new();
    while let Step::Io(req) = step {
        log.push(req);
        let buf = s.io_buf();
        match req {
            Request::Read { addr, len } => buf.copy_from_slice(&flash[addr as usize..(addr + len) as usize]),
            Request::Program { addr, len } => {
                let dst = &mut flash[addr as usize..(addr + len) as usize];
                assert!(dst.iter().all(|&b| b == 0xFF), "program of a unit not erased: {req:?}");
                dst.copy_from_slice(buf);
            }
            Request::Erase { addr, len } => flash[addr as usize..(addr + len) as usize].fill(0xFF),
            Request::Fill { offset, len } => {
                buf.copy_from_slice(&input[offset as usize..(offset + len) as usize])
            }
            Request::Deliver { offset, len } => {
                out[offset as usize..(offset + len) as usize].copy_from_slice(buf)
            }
        }
        step = s.resume(Ok(()));
    }
    log
}

fn set(key: &[u8], len: u32, when: SetWhen) -> Op<'_> {
    Op::Set { key, len, flags: 0, when }
}

/// A formatted, mounted store and its flash.
fn formatted<'w>(work: &'w mut [u8], index: &'w mut [IndexEntry], flash: &mut Vec<u8>) -> Store<'w> {
    *flash = vec![0xFF; GEO.size as usize];
    let mut s = Store::new(GEO, StoreOptions::default(), work, index).unwrap();
    let (r, _) = drive(&mut s, flash, Op::Mount, &[], &mut []);
    assert!(matches!(r, Ok(Outcome::Mounted(MountInfo { formatted: true, .. }))));
    s
}

#[test]
fn mount_reads_both_master_slots_then_formats_a_blank_region() {
    let (mut work, mut index, mut flash) =
        ([0u8; 512], [IndexEntry::default(); 8], vec![0xFF; GEO.size as usize]);
    let mut s = Store::new(GEO, StoreOptions::default(), &mut work, &mut index).unwrap();
    let (r, log) = drive(&mut s, &mut flash, Op::Mount, &[], &mut []);
    assert!(matches!(r, Ok(Outcome::Mounted(MountInfo { active_area: 0, version: 1, formatted: true, .. }))));
    let expected = [
        read(72, 40),
        read(AREA + 72, 40),
        // The area that is not the store first (neither is, unmounted: area 1), then area 0.
        erase(AREA),
        erase(0),
        // Master record: key and data, then the header with the magic's unit last.
        program(96, 16),
        program(80, 16),
        program(72, 8),
    ];
    assert_eq!(log, expected);
}

#[test]
fn set_stages_the_value_and_programs_the_head_last() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    // "stats" + 8 bytes: 24 + 5 + 8 = 37, one 40-byte record at 112. No key yet: no read.
    let (r, log) = drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    let fill = Request::Fill { offset: 0, len: 8 };
    assert_eq!(log, [fill, program(136, 16), program(120, 16), program(112, 8)]);
    assert_eq!(s.info().free_offset, 152);
}

#[test]
fn get_reads_the_header_and_key_in_one_request() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    let mut out = [0u8; 8];
    let (r, log) = drive(&mut s, &mut flash, Op::Get { key: b"stats", out_len: 8 }, &[], &mut out);
    assert_eq!(r, Ok(Outcome::Value(Value { size: 8, flags: 0, copied: 8 })));
    assert_eq!(&out, b"12345678");
    // Header and key (24 + 5), then the data, delivered.
    assert_eq!(log, [read(112, 29), read(141, 8), Request::Deliver { offset: 0, len: 8 }]);
    let (r, log) = drive(&mut s, &mut flash, Op::GetInfo { key: b"stats" }, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Info(KeyInfo { size: 8, flags: 0 })));
    assert_eq!(log, [read(112, 29)]);
}

#[test]
fn a_conditional_set_decides_on_its_one_lookup() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    // Update of a missing key: the index says so without a read; nothing is written.
    let (r, log) = drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Present), b"12345678", &mut []);
    assert_eq!((r, log), (Err(Error::NotFound), vec![]));
    // Add creates.
    let (r, log) = drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Absent), b"12345678", &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    assert_eq!(log.len(), 4);
    // Add of an existing key: one read (the lookup), then refused; the flash is unchanged.
    let before = flash.clone();
    let (r, log) = drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Absent), b"abcdefgh", &mut []);
    assert_eq!((r, log), (Err(Error::Exists), vec![read(112, 29)]));
    assert_eq!(flash, before);
    // Update replaces: the lookup, then the new record at 152.
    let (r, log) = drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Present), b"abcdefgh", &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    assert_eq!(log[0], read(112, 29));
    assert_eq!(*log.last().unwrap(), program(152, 8));
}

#[test]
fn remove_appends_a_delete_record() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    let (r, log) = drive(&mut s, &mut flash, Op::Remove { key: b"stats" }, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    // Lookup; a 32-byte delete record (24 + 5) at 152, no fill: body unit, then the head.
    assert_eq!(log, [read(112, 29), program(176, 8), program(160, 16), program(152, 8)]);
    let h = crate::format::Header::parse(&flash[152..176]).unwrap();
    assert_eq!(h.flags & DELETE_FLAG, DELETE_FLAG);
    assert_eq!(s.info().keys, 0);
}

#[test]
fn compaction_reads_each_live_record_once() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    for v in [b"11111111", b"22222222"] {
        drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), v, &mut []).0.unwrap();
    }
    drive(&mut s, &mut flash, set(b"other", 8, SetWhen::Always), b"33333333", &mut []).0.unwrap();
    let (r, log) = drive(&mut s, &mut flash, Op::Compact, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    let reads: Vec<_> = log.iter().filter(|r| matches!(r, Request::Read { .. })).collect();
    // Two live records of 40 bytes (the first "stats" is dead): per record its header, then
    // the whole record, once.
    assert_eq!(reads.len(), 4, "{log:?}");
    let bytes: u32 = reads.iter().map(|r| if let Request::Read { len, .. } = r { *len } else { 0 }).sum();
    assert_eq!(bytes, 2 * (24 + 40));
    // The new area: both records from 112, then its master record, header last.
    let programs: Vec<_> = log.iter().filter(|r| matches!(r, Request::Program { .. })).copied().collect();
    let tail = [program(AREA + 96, 16), program(AREA + 80, 16), program(AREA + 72, 8)];
    assert_eq!(programs[programs.len() - 3..], tail);
    assert!(programs[..programs.len() - 3]
        .iter()
        .all(|p| matches!(p, Request::Program { addr, .. } if (AREA + 112..AREA + 192).contains(addr))));
    let info = s.info();
    assert_eq!((info.active_area, info.version, info.free_offset, info.keys), (1, 2, 192, 2));
    let mut out = [0u8; 8];
    drive(&mut s, &mut flash, Op::Get { key: b"stats", out_len: 8 }, &[], &mut out).0.unwrap();
    assert_eq!(&out, b"22222222");
}

#[test]
fn compaction_reads_a_record_larger_than_the_work_buffer_once() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    let value: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    drive(&mut s, &mut flash, set(b"big", 1000, SetWhen::Always), &value, &mut []).0.unwrap();
    let (r, log) = drive(&mut s, &mut flash, Op::Compact, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    // 24 + 3 + 1000 = 1027 bytes, a 1032-byte record: its header, then three chunks of the
    // 488-byte work chunk, each read once and programmed from where it was read.
    let reads: Vec<_> =
        log.iter().filter(|r| matches!(r, Request::Read { addr, .. } if *addr < AREA)).collect();
    assert_eq!(reads, [&read(112, 24), &read(112, 488), &read(600, 488), &read(1088, 56)], "{log:?}");
    let copies: Vec<_> =
        log.iter().filter(|r| matches!(r, Request::Program { addr, .. } if *addr >= AREA + 112)).collect();
    assert_eq!(copies, [&program(AREA + 112, 488), &program(AREA + 600, 488), &program(AREA + 1088, 56)]);
    let mut out = vec![0u8; 1000];
    drive(&mut s, &mut flash, Op::Get { key: b"big", out_len: 1000 }, &[], &mut out).0.unwrap();
    assert_eq!(out, value);
}

/// A record that rotted after mount is found by the compaction's CRC check. If it fit one
/// chunk, nothing of it was programmed: it is left behind. If it was larger, its first chunks
/// are in the standby area already: the compaction drops it and starts over on a standby
/// area erased again (the drive checks every program lands on erased bytes).
#[test]
fn compaction_leaves_records_that_rotted_since_mount_behind() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    let big: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    drive(&mut s, &mut flash, set(b"small", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    drive(&mut s, &mut flash, set(b"big", 1000, SetWhen::Always), &big, &mut []).0.unwrap();
    drive(&mut s, &mut flash, set(b"keep", 4, SetWhen::Always), b"kept", &mut []).0.unwrap();
    // "small" at 112 (40 bytes), "big" at 152 (1032 bytes): rot a byte of each's data.
    flash[112 + 24 + 5 + 3] ^= 0x01;
    flash[152 + 1027 - 1] ^= 0x80;
    let (r, log) = drive(&mut s, &mut flash, Op::Compact, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    // The big record's first two chunks were copied before its CRC failed: the standby's
    // first sector is erased again, and the copy starts over.
    let erases = log.iter().filter(|r| matches!(r, Request::Erase { addr, .. } if *addr == AREA)).count();
    assert_eq!(erases, 1, "{log:?}");
    assert_eq!(s.info().keys, 1);
    let mut out = [0u8; 8];
    let (r, _) = drive(&mut s, &mut flash, Op::Get { key: b"keep", out_len: 8 }, &[], &mut out);
    assert_eq!(r, Ok(Outcome::Value(Value { size: 4, flags: 0, copied: 4 })));
    for gone in [&b"small"[..], b"big"] {
        let (r, _) = drive(&mut s, &mut flash, Op::Get { key: gone, out_len: 8 }, &[], &mut out);
        assert_eq!(r, Err(Error::NotFound));
    }
    // What a fresh mount finds: the same, in the new area.
    let (mut work2, mut index2) = ([0u8; 512], [IndexEntry::default(); 8]);
    let mut s = Store::new(GEO, StoreOptions::default(), &mut work2, &mut index2).unwrap();
    let (r, _) = drive(&mut s, &mut flash, Op::Mount, &[], &mut []);
    assert!(
        matches!(r, Ok(Outcome::Mounted(MountInfo { active_area: 1, keys: 1, torn_tail: false, .. }))),
        "{r:?}"
    );
}

#[test]
fn mount_scans_the_log_and_checks_the_rest_of_its_sector() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    let mut work2 = [0u8; 512];
    let mut index2 = [IndexEntry::default(); 8];
    let mut s = Store::new(GEO, StoreOptions::default(), &mut work2, &mut index2).unwrap();
    let (r, log) = drive(&mut s, &mut flash, Op::Mount, &[], &mut []);
    assert!(matches!(r, Ok(Outcome::Mounted(MountInfo { keys: 1, free_offset: 152, torn_tail: false, .. }))));
    // Masters, area 0's reserved slot, the record (header, then key and data), the next
    // header (blank: the log ends), then the rest of that sector in work-buffer chunks.
    let head = [read(72, 40), read(AREA + 72, 40), read(0, 72), read(112, 24), read(136, 13), read(152, 24)];
    assert_eq!(log[..6], head);
    let rest: u32 = log[6..].iter().map(|r| if let Request::Read { len, .. } = r { *len } else { 0 }).sum();
    assert_eq!(rest, 4096 - 152);
    assert_eq!(s.info().erased_until, 4096);
}

#[test]
fn a_cut_program_leaves_a_torn_tail_that_the_next_write_compacts_away() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    // The body is programmed, then the driver reports a failed program of the head.
    let mut step = s.start(set(b"stats", 8, SetWhen::Always));
    let mut programs = 0;
    while let Step::Io(req) = step {
        if let Request::Fill { .. } = req {
            s.io_buf().copy_from_slice(b"12345678");
        }
        let r = match req {
            Request::Program { addr, len } => {
                programs += 1;
                if programs == 1 {
                    flash[addr as usize..(addr + len) as usize].copy_from_slice(s.io_buf());
                    Ok(())
                } else {
                    Err(IoError::Other)
                }
            }
            _ => Ok(()),
        };
        step = s.resume(r);
    }
    assert_eq!(step, Step::Done);
    assert_eq!(s.finish::<()>(), Err(Error::Io(IoKind::Program, IoError::Other)));
    assert!(s.info().torn_tail);
    // The next write compacts into area 1 first, then appends there.
    let (r, log) = drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"abcdefgh", &mut []);
    assert_eq!(r, Ok(Outcome::Done));
    assert!(log.contains(&program(AREA + 72, 8)), "{log:?}");
    assert_eq!((s.info().active_area, s.info().torn_tail), (1, false));
}

#[test]
fn maintenance_erases_the_standby_area_one_sector_per_step() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    drive(&mut s, &mut flash, Op::Compact, &[], &mut []).0.unwrap();
    // Area 0 is the dirty standby now: its first sector holds the old log, so the blank
    // check stops at the first programmed byte and erases; its second is read whole.
    let (r, log) = drive(&mut s, &mut flash, Op::Maintain, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Maintained(true)));
    assert_eq!(log.last(), Some(&erase(0)));
    let (r, log) = drive(&mut s, &mut flash, Op::Maintain, &[], &mut []);
    assert_eq!(r, Ok(Outcome::Maintained(true)));
    assert!(log.iter().all(|r| matches!(r, Request::Read { addr, .. } if (4096..8192).contains(addr))));
    assert_eq!(s.info().standby_clean, AREA);
}

/// A driver that borrows the work buffer ([`Store::lend`]) instead of keeping its own gets
/// the window of each read and program; nothing runs while the buffer is away, and only the
/// buffer that was lent is taken back.
#[test]
fn a_lent_work_buffer_carries_reads_and_programs_and_must_come_back() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut other = [0u8; 7];
    let mut other: &mut [u8] = &mut other;
    let mut s = formatted(&mut work, &mut index, &mut flash);
    let value = [0x5Au8; 20];
    let mut step = s.start(set(b"k", 20, SetWhen::Always));
    let mut programs = 0;
    loop {
        let req = match step {
            Step::Done => {
                assert_eq!(s.finish::<()>(), Ok(()));
                break;
            }
            Step::Io(req) => req,
        };
        match req {
            Request::Read { addr, len } | Request::Program { addr, len } => {
                let (buf, at, n) = s.lend().expect("flash requests lend the buffer");
                assert_eq!(n, len as usize);
                assert!(s.lend().is_none(), "lent twice");
                assert!(s.io_buf().is_empty());
                assert_eq!(s.start(Op::Maintain), Step::Done);
                assert_eq!(s.finish::<bool>(), Err(Error::Busy));
                let flash_range = addr as usize..(addr + len) as usize;
                if let Request::Read { .. } = req {
                    buf[at..at + n].copy_from_slice(&flash[flash_range]);
                } else {
                    programs += 1;
                    flash[flash_range].copy_from_slice(&buf[at..at + n]);
                }
                other = s.give_back(other).expect_err("a foreign buffer was taken");
                assert!(s.give_back(buf).is_ok());
            }
            Request::Fill { offset, len } => {
                assert!(s.lend().is_none(), "copies use io_buf, not a loan");
                s.io_buf().copy_from_slice(&value[offset as usize..(offset + len) as usize]);
            }
            other => panic!("unexpected request {other:?}"),
        }
        step = s.resume(Ok(()));
    }
    assert!(programs > 0);
    let mut out = [0u8; 32];
    let (r, _) = drive(&mut s, &mut flash, Op::Get { key: b"k", out_len: 32 }, &[], &mut out);
    assert!(matches!(r, Ok(Outcome::Value(Value { size: 20, copied: 20, .. }))));
    assert_eq!(&out[..20], &value);

    // Resuming while the driver still holds the buffer is a driver bug: the operation ends
    // with an internal error, and the store waits for its buffer.
    let Step::Io(Request::Read { .. }) = s.start(Op::Get { key: b"k", out_len: 32 }) else {
        panic!("a get reads first")
    };
    let (buf, _, _) = s.lend().unwrap();
    assert_eq!(s.resume(Ok(())), Step::Done);
    assert_eq!(s.finish::<Value>(), Err(Error::Internal));
    assert_eq!(s.start(Op::Mount), Step::Done);
    assert_eq!(s.finish::<MountInfo>(), Err(Error::Busy));
    assert!(s.give_back(buf).is_ok());
    let (r, _) = drive(&mut s, &mut flash, Op::Mount, &[], &mut []);
    assert!(matches!(r, Ok(Outcome::Mounted(_))));
}

/// Each operation's result comes out as its own type, once; asking for another type, or for
/// a result when none is waiting, is a driver bug reported as `Internal`.
#[test]
fn results_come_out_as_their_operations_type_once() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    assert_eq!(s.finish::<MountInfo>(), Err(Error::Internal), "the mount's result was taken already");
    let mut out = [0u8; 4];
    let ops =
        [set(b"k", 2, SetWhen::Always), Op::Get { key: b"k", out_len: 4 }, Op::Get { key: b"k", out_len: 4 }];
    for (i, op) in ops.into_iter().chain([Op::Maintain]).enumerate() {
        let step = s.start(op);
        perform(&mut s, &mut flash, step, b"hi", &mut out);
        match i {
            0 => assert_eq!(s.finish::<()>(), Ok(())),
            1 => assert_eq!(s.finish::<Value>(), Ok(Value { size: 2, flags: 0, copied: 2 })),
            2 => assert_eq!(s.finish::<()>(), Err(Error::Internal), "a get's result is a Value"),
            _ => assert!(s.finish::<bool>().is_ok()),
        }
        assert_eq!(s.finish::<()>(), Err(Error::Internal), "op {i}: taken twice");
    }
    assert_eq!(&out[..2], b"hi");
    // A refusal is a result too, of the operation's type.
    assert_eq!(s.start(Op::Get { key: b"", out_len: 4 }), Step::Done);
    assert_eq!(s.finish::<Value>(), Err(Error::InvalidKey(crate::format::KeyError::Empty)));
}

#[test]
fn formatting_a_mounted_store_commits_an_empty_generation_before_erasing_the_old_one() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    drive(&mut s, &mut flash, Op::Compact, &[], &mut []).0.unwrap();
    assert_eq!(s.info().active_area, 1);
    // Area 1 holds the store: the empty generation goes into area 0 and its master record
    // commits it before area 1 is touched, so a cut anywhere leaves the old store or the
    // empty one, never an older generation.
    let (r, log) = drive(&mut s, &mut flash, Op::Format { full: false }, &[], &mut []);
    assert!(r.is_ok(), "{r:?}");
    let at = |req: Request| log.iter().position(|r| *r == req).unwrap_or(usize::MAX);
    assert_eq!(log.iter().find(|r| matches!(r, Request::Erase { .. })), Some(&erase(0)), "{log:?}");
    assert!(at(program(72, 8)) < at(erase(AREA)), "{log:?}");
}

#[test]
fn maintenance_is_not_due_while_an_operation_is_in_flight() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    drive(&mut s, &mut flash, set(b"stats", 8, SetWhen::Always), b"12345678", &mut []).0.unwrap();
    drive(&mut s, &mut flash, Op::Compact, &[], &mut []).0.unwrap();
    // The old area is dirty: idle, maintenance is due.
    assert!(s.maintenance_due());
    let step = s.start(Op::Get { key: b"stats", out_len: 8 });
    assert!(matches!(step, Step::Io(_)), "{step:?}");
    assert!(!s.maintenance_due(), "due while a get waits for its read");
    let mut out = [0u8; 8];
    perform(&mut s, &mut flash, step, &[], &mut out);
    s.result.take().expect("a result").unwrap();
    assert!(s.maintenance_due());
}

/// A log that ends exactly on a sector boundary: the next sector must be erased too, or a
/// remount's scan runs on into what an older generation left there.
#[test]
fn a_log_ending_on_a_sector_boundary_has_the_next_sector_erased() {
    let (mut work, mut index, mut flash) = ([0u8; 512], [IndexEntry::default(); 8], Vec::new());
    let mut s = formatted(&mut work, &mut index, &mut flash);
    // "a" ends exactly at 4096 (112 + 24 + 1 + 3959 = 4096), "b" starts the second sector.
    let a = vec![0xA5u8; 3959];
    drive(&mut s, &mut flash, set(b"a", 3959, SetWhen::Always), &a, &mut []).0.unwrap();
    drive(&mut s, &mut flash, set(b"b", 8, SetWhen::Always), b"stale!!!", &mut []).0.unwrap();
    assert!(crate::format::Header::parse(&flash[4096..4120]).is_some(), "b's header at 4096");
    // Generation 2 in area 1; "b" removed; generation 3 back in area 0, with "a" again ending
    // at 4096 and, without maintenance in between, generation 1's "b" still after it.
    drive(&mut s, &mut flash, Op::Compact, &[], &mut []).0.unwrap();
    drive(&mut s, &mut flash, Op::Remove { key: b"b" }, &[], &mut []).0.unwrap();
    drive(&mut s, &mut flash, Op::Compact, &[], &mut []).0.unwrap();
    assert_eq!((s.info().active_area, s.info().free_offset), (0, 4096));
    let (mut work, mut index) = ([0u8; 512], [IndexEntry::default(); 8]);
    let mut s = Store::new(GEO, StoreOptions::default(), &mut work, &mut index).unwrap();
    drive(&mut s, &mut flash, Op::Mount, &[], &mut []).0.unwrap();
    let mut out = [0u8; 8];
    let (r, _) = drive(&mut s, &mut flash, Op::Get { key: b"b", out_len: 8 }, &[], &mut out);
    assert_eq!(r, Err(Error::NotFound), "a removed key came back from an older generation");
    assert_eq!(s.info().keys, 1);
}
