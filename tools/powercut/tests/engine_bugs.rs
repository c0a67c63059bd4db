//! Regression tests for the engine bugs the power-cut campaign found.
//!
//! Each test reproduces one bug in a few steps and states what the engine must do; each
//! failed on the engine as it was when the bug was found, and every one of them is fixed
//! now, so all of them run (none is ignored) and must pass. They use only the engine's
//! public API through `tdbstore::sim::open`, like any user. The campaign's
//! `workload::known_bugs` keeps the workload that first showed each bug, and
//! `tests/campaign.rs` runs those too.

use flash_sim::{Cut, FlashSim, Geometry};
use tdbstore::format::RecordFormat;
use tdbstore::sim::{self, SimStore};
use tdbstore::{Error, IndexEntry, IoError, IoKind, StoreOptions};

/// The `g2_small` geometry: 32 KiB, 8-byte program units, 4 KiB sectors (16 KiB areas).
const G: Geometry = Geometry::SMALL;
/// First record offset for 8-byte units (`docs/format.md` §5).
const FIRST: usize = 112;
const SECTOR: usize = 4096;

/// Runs `f` on a store over `flash` with fresh buffers and gives the flash back.
fn with<R>(flash: FlashSim, opts: StoreOptions, f: impl FnOnce(&mut SimStore<'_>) -> R) -> (FlashSim, R) {
    let mut work = vec![0u8; 256];
    let mut index = vec![IndexEntry::default(); 64];
    let mut s = sim::open(flash, opts, &mut work, &mut index).unwrap();
    let r = f(&mut s);
    (s.into_flash(), r)
}

/// [`with`], mounting first.
fn mounted<R>(flash: FlashSim, opts: StoreOptions, f: impl FnOnce(&mut SimStore<'_>) -> R) -> (FlashSim, R) {
    with(flash, opts, |s| {
        s.mount().unwrap();
        f(s)
    })
}

fn fresh() -> FlashSim {
    let (f, r) = with(FlashSim::new(G), StoreOptions::default(), |s| s.mount());
    assert!(r.unwrap().formatted);
    f
}

/// Value length that makes a Mbed-format record with `key` exactly `size` bytes.
fn len_for(key: &str, size: usize) -> usize {
    size - 24 - key.len()
}

fn get(s: &mut SimStore<'_>, key: &[u8]) -> Result<Vec<u8>, Error> {
    let mut v = vec![0; 8192];
    let n = s.get(key, &mut v)?.copied;
    v.truncate(n);
    Ok(v)
}

/// Bug `iterate-reads-past-record`. After a power cut tears a write, iteration fails with an
/// ECC error until the next write compacts, although the store mounted and every key reads.
/// `Next` reads the header plus `MAX_KEY_LEN` bytes from each record's start, past the end of
/// a short record and into the torn (ECC-bad) unit behind it. On the STM32H7 that read is a
/// double-bit ECC error (a bus fault if the flash is read memory-mapped). Reading only
/// `body_offset + key_len` (from the header read first) would fix it.
#[test]
fn iteration_fails_after_a_torn_write() {
    let (mut f, _) = mounted(fresh(), StoreOptions::default(), |s| s.set(b"a", b"1", 0).unwrap());
    f.reset_op_counter();
    // The set of "b" programs one unit (its key and value) before its header: tear it.
    f.cut_power_at(0, Cut::Halfway);
    let (mut f, r) = with(f, StoreOptions::default(), |s| {
        s.mount().unwrap();
        s.set(b"b", b"2", 0)
    });
    assert_eq!(r, Err(Error::Io(IoKind::Program, IoError::PowerLost)));
    f.power_on();
    with(f, StoreOptions::default(), |s| {
        s.mount().expect("mounts");
        assert_eq!(get(s, b"a").unwrap(), b"1", "the key reads");
        let mut keys = Vec::new();
        let r = s.for_each_key(b"", |k| keys.push(k.to_vec()));
        assert_eq!(r, Ok(()), "iteration must not fail on a consistent store");
        assert_eq!(keys, vec![b"a".to_vec()]);
    });
}

/// Bug `sector-boundary` (no power cut needed). When the log ends exactly at a sector
/// boundary, mount keeps scanning into the next sector, which the engine has not erased
/// since an earlier generation of this area: a valid old record there is taken as live.
/// Here an acknowledged overwrite is silently reverted and a removed key comes back.
/// Compaction and appends erase a sector only when they first write into it, and mount's
/// tail check only runs after an invalid record; mount must not trust records in a sector
/// that is not known to belong to the current generation (or compaction/appends must erase
/// the sector after the log's end when the log reaches a boundary).
#[test]
fn a_stale_record_at_a_sector_boundary_comes_back() {
    let opts = StoreOptions::default();
    let (f, _) = mounted(fresh(), opts, |s| {
        // Generation 1 in area 0: a record that ends exactly at the sector boundary, then "k".
        s.set(b"fill-1", &vec![1; len_for("fill-1", SECTOR - FIRST)], 0).unwrap();
        s.set(b"k", b"old", 0).unwrap();
        s.set(b"gone", b"removed later", 0).unwrap();
        // Two resets: area 1, then area 0 again, whose head sector alone is erased.
        s.reset().unwrap();
        s.reset().unwrap();
        // Generation 3 in area 0: "k" is overwritten, and the log ends at the boundary again.
        s.set(b"k", b"new", 0).unwrap();
        let used = 32; // record of "k" = align_up(24 + 1 + 3, 8)
        s.set(b"fill-3", &vec![3; len_for("fill-3", SECTOR - FIRST - used)], 0).unwrap();
        assert_eq!(s.store().info().free_offset as usize, SECTOR);
        assert_eq!(get(s, b"k").unwrap(), b"new");
    });
    with(f, opts, |s| {
        s.mount().unwrap();
        assert_eq!(get(s, b"k").unwrap(), b"new", "an acknowledged overwrite was reverted");
        assert_eq!(s.get_info(b"gone"), Err(Error::NotFound), "a reset key came back");
    });
}

/// Bug `ff-spill` (no power cut needed). A program unit programmed with 0xFF bytes reads as
/// erased, but the flash (and the simulator) count it programmed. A sector whose only
/// contents are such units (here: the 0xFF tail of a value that spills into the next
/// sector) passes the engine's blank check, is not erased when the area is reused, and is
/// programmed twice: on the STM32H7 those flash words get ECC errors, and records are lost.
/// A blank check cannot tell "erased" from "programmed with 0xFF": sectors of a used area
/// must be erased unconditionally before reuse (or the engine must never program a unit
/// that reads all-0xFF, e.g. by tracking a per-sector "written since erase" state).
#[test]
fn a_sector_holding_only_0xff_data_is_programmed_twice() {
    let opts = StoreOptions::default();
    let (f, _) = mounted(fresh(), opts, |s| {
        // Ends 64 bytes into sector 1 of area 0; those 64 bytes are all 0xFF.
        let mut v = vec![0x11; len_for("x", SECTOR + 64 - FIRST)];
        let n = v.len();
        v[n - 200..].fill(0xFF);
        s.set(b"x", &v, 0).unwrap();
        s.compact().unwrap(); // to area 1; area 0's sector 1 holds only 0xFF-programmed units
        s.set(b"y", &[7; 3000], 0).unwrap();
        s.set(b"z", &[8; 3000], 0).unwrap();
        s.compact().unwrap(); // back to area 0: the copy runs over sector 1
    });
    assert_eq!(f.stats().double_programs, 0, "program units programmed twice");
    with(f, opts, |s| {
        s.mount().unwrap();
        for k in [&b"x"[..], b"y", b"z"] {
            assert!(get(s, k).is_ok(), "{} lost", String::from_utf8_lossy(k));
        }
    });
}

/// Bug `ff-value`, the power-cut form of `ff-spill`. A write cut after its data units and
/// before its header leaves units programmed with the value's bytes. When they are all 0xFF
/// (a compact-format record with an 0xFF value; in the Mbed format, an 0xFF key and value)
/// mount's tail check sees a blank tail, so the next write is programmed over them: it is
/// acknowledged, then lost at the next mount.
#[test]
fn a_torn_record_of_0xff_bytes_is_programmed_over() {
    for (format, key) in [(RecordFormat::Compact, &b"k"[..]), (RecordFormat::Mbed, &[0xFF, 0xFF][..])] {
        let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
        let (mut f, r) = with(FlashSim::new(G), opts, |s| {
            s.mount().unwrap();
            s.set(b"a", b"hello", 0).unwrap();
            s.flash_mut().reset_op_counter();
            // Requests: the body (all 0xFF), then the header's two units: cut before those.
            s.flash_mut().cut_power_at(1, Cut::Before);
            s.set(key, &[0xFF; 100], 0)
        });
        assert!(r.is_err(), "{format:?}: the cut hit");
        f.power_on();
        let (f, r) = with(f, opts, |s| {
            s.mount().unwrap();
            s.set(b"b", &[1; 100], 0)
        });
        assert_eq!(r, Ok(()));
        assert_eq!(f.stats().double_programs, 0, "{format:?}: program units programmed twice");
        with(f, opts, |s| {
            s.mount().unwrap();
            assert_eq!(get(s, b"b").map(|v| v.len()), Ok(100), "{format:?}: an acknowledged set was lost");
        });
    }
}

/// Bug `format-order`. `format` erases area 0's head, then area 1's, then writes the master
/// record. With area 0 active, a cut after the first erase leaves area 1's older generation
/// as the only valid area: the store comes back neither as it was nor empty, but as it was
/// one compaction ago. Erasing the standby area's head first would keep the old state until
/// the active head is erased.
#[test]
fn an_interrupted_format_brings_back_an_older_generation() {
    let opts = StoreOptions::default();
    let (mut f, r) = mounted(fresh(), opts, |s| {
        s.set(b"k", b"generation-1", 0).unwrap();
        s.compact().unwrap(); // area 1, version 2
        s.set(b"k", b"generation-2", 0).unwrap();
        s.compact().unwrap(); // area 0, version 3; area 1 keeps version 2
        s.set(b"k", b"generation-3", 0).unwrap();
        s.flash_mut().reset_op_counter();
        s.flash_mut().cut_power_at(1, Cut::Before); // after erasing area 0's head
        s.format(false)
    });
    assert!(r.is_err());
    f.power_on();
    with(f, opts, |s| {
        s.mount().unwrap();
        let k = get(s, b"k");
        assert!(
            k == Ok(b"generation-3".to_vec()) || k == Err(Error::NotFound),
            "neither the old state nor an empty store: k = {:?}",
            k.map(|v| String::from_utf8_lossy(&v).into_owned())
        );
    });
}

/// Bug `format-foreign`. With program units under 24 bytes the master record's head is
/// programmed in two requests (the magic's unit last). A cut between them leaves a master
/// record with no magic but a non-blank header: mount then finds neither a store nor a blank
/// region and returns `Foreign` on every boot. This is also the first mount of a new device
/// (format on blank), so a power cut during a device's first boot bricks its store until an
/// explicit `format`.
#[test]
fn an_interrupted_first_mount_leaves_an_unmountable_store() {
    let opts = StoreOptions::default();
    let mut blank = FlashSim::new(G);
    blank.enable_op_log(true);
    let (log, _) = with(blank.clone(), opts, |s| s.mount().unwrap());
    // erase area 0 head, erase area 1 head, master body, header [8, 24), magic unit [0, 8)
    assert_eq!(log.op_log().len(), 5);
    blank.cut_power_at(4, Cut::Before);
    let (mut f, r) = with(blank, opts, |s| s.mount());
    assert!(r.is_err());
    f.power_on();
    with(f, opts, |s| {
        assert!(s.mount().is_ok(), "the next boot must mount (or format again)");
    });
}

/// Bug `reserved-from-standby`. `reserved_data_set` compacts into the standby area with the
/// reserved data in its head. Cut before the new master record is written, the operation
/// did not happen, yet mount takes reserved data from the standby area when the active one
/// has none, so it is visible after reboot. Then `maintain_all` (which must change nothing
/// a user sees) erases the standby head, and after the next reboot it is gone.
#[test]
fn an_interrupted_reserved_set_appears_then_vanishes() {
    let opts = StoreOptions::default();
    let (mut f, r) = mounted(fresh(), opts, |s| {
        s.set(b"a", b"1", 0).unwrap();
        s.flash_mut().reset_op_counter();
        // Request 0 programs the reserved data into the standby head; cut the next one.
        s.flash_mut().cut_power_at(1, Cut::Before);
        s.reserved_data_set(b"serial-0001")
    });
    assert!(r.is_err());
    f.power_on();
    let mut r = [0u8; 64];
    let (f, seen) = with(f, opts, |s| {
        s.mount().unwrap();
        let seen = s.reserved_data_get(&mut r).is_ok();
        s.maintain_all().unwrap();
        seen
    });
    let (_, later) = with(f, opts, |s| {
        s.mount().unwrap();
        s.reserved_data_get(&mut r).is_ok()
    });
    assert_eq!(
        seen, later,
        "reserved data visible after the cut: {seen}, after maintenance and a reboot: {later}"
    );
}

/// Bug `maintain-more`. With `compact_below` set, `maintain` reports `more: false` after
/// erasing the last standby sector although an early compaction is due: the very next call
/// compacts. A driver that calls `maintain` until `more` is false (as documented, and as
/// `maintain_all` does) never compacts early. The `more` computation after a standby or
/// pre-erase step leaves out the early-compaction condition that `Maint::Choose` checks.
#[test]
fn maintain_reports_no_more_work_while_an_early_compaction_is_due() {
    let g = Geometry { program_size: 32, ..Geometry::SMALL };
    let opts = StoreOptions { compact_below: 12_288, ..StoreOptions::default() };
    let (_, ()) = with(FlashSim::new(g), opts, |s| {
        s.mount().unwrap();
        // 14 KiB of a 16 KiB area used, 288 live bytes: early compaction is due.
        for i in 0..48u8 {
            s.set(b"churn", &[i; 224], 0).unwrap();
        }
        s.maintain_all().unwrap();
        let after_all = s.store().info().compactions;
        s.maintain().unwrap();
        assert_eq!(
            s.store().info().compactions,
            after_all,
            "maintain_all left work: the next maintain compacted"
        );
    });
}
