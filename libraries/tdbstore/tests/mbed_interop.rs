//! Images Mbed OS can keep using (issue 25): the room Mbed's own garbage collection needs is
//! never used (B1, B10), the version wrap leaves no stale master record for Mbed to pick (B5),
//! and what stays different (CRC-colliding keys, B12) is pinned down. Each image is read by
//! the independent Mbed reader (`mbed-reader`), whose `Image::gc` runs Mbed's collection on
//! paper.

mod common;

use common::*;
use flash_sim::FlashSim;
use tdbstore::format::{Layout, RecordFormat};
use tdbstore::{Error, Geometry};

/// The geometry: 8 KiB, two 4 KiB areas, 8-byte program units.
const SMALL: Geometry =
    Geometry { size: 8192, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };

/// What Mbed would see, after checking that its own collection of the image fits.
fn mbed_store(image: &[u8], g: &Geometry) -> mbed_reader::Store {
    let img = mbed_reader::Image::new(image, g.program_size, g.erase_size);
    let m = img.mount();
    let mbed_reader::Mount::Store(st) = m else { panic!("Mbed does not mount the image: {m:?}") };
    if let Some(why) = mbed_gc_trap(&img, &st) {
        panic!("{why}");
    }
    st
}

#[test]
fn the_b1_trap_set_a_then_d_leaves_room_for_mbeds_own_collection() {
    // The differential run's reproduction: "a" with 8 bytes, then "d" with 3,911 filled the
    // log to 4,088 (one unit short of the end, which Mbed reads), but Mbed's next collection
    // copies its "TDBS" too and failed midway (B10): every later set was MEDIA_FULL and
    // get("d") returned a's bytes. Now that set is refused; the image stays one Mbed can
    // compact, and the largest "d" that fits leaves exactly Mbed's 40-byte master copy.
    let mut b = Bufs::new(8);
    let mut s = b.open(blank(&SMALL));
    s.mount().unwrap();
    s.set(b"a", &[0xA1; 8], 0).unwrap();
    assert_eq!(s.set(b"d", &[0xD4; 3911], 0), Err(Error::Full));
    assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None);
    let lay = s.store().layout();
    assert_eq!(lay.log_limit(), 4096 - 8 - 40);
    let max = 3911 - 40;
    assert_eq!(s.set(b"d", &vec![0xD4; max + 1], 0), Err(Error::Full));
    s.set(b"d", &vec![0xD4; max], 0).unwrap();
    assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None);
    let img = mbed_reader::Image::new(s.flash().image(), SMALL.program_size, SMALL.erase_size);
    let mbed_reader::Mount::Store(st) = img.mount() else { panic!("store") };
    assert_eq!(img.gc(&st), mbed_reader::Gc::Fits { end: 4088 }, "Mbed's copy ends one unit short");
    // Our own compaction of the same store, and a remount, keep it so.
    s.compact().unwrap();
    assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None);
}

#[test]
fn compact_record_stores_keep_the_whole_area() {
    let lay = Layout::with_format(8, 4096, RecordFormat::Compact);
    assert_eq!(lay.log_limit(), 4096, "Mbed does not read compact records: no margin for it");
    let mut b = Bufs::new(8);
    let opts = tdbstore::StoreOptions { record_format: RecordFormat::Compact, ..Default::default() };
    let mut s = b.open_with(blank(&SMALL), opts);
    s.mount().unwrap();
    s.set(b"a", &[0xA1; 8], 0).unwrap();
    // 112 + 24 (a) + align_up(12 + 1 + n, 8) = 4096.
    s.set(b"d", &vec![0xD4; 4096 - 112 - 24 - 13], 0).unwrap();
    assert_eq!(s.store().info().free_offset, 4096);
}

/// Writes a valid master record with `version` into area 0 of a copy of `image` (area 1's
/// slot is left as it is).
fn with_master_version(image: &[u8], g: &Geometry, version: u16) -> Vec<u8> {
    let mut img = image.to_vec();
    let lay = Layout::new(g.program_size, g.area_size());
    let at = lay.master_offset as usize;
    lay.encode_master(version, g.erase_value, &mut img[at..at + lay.master_size as usize]);
    img
}

#[test]
fn after_the_version_wrap_mbed_reads_the_area_we_do() {
    // Both parities: Mbed's own (area 0 odd, so area 1 gets version 0 while area 0 holds
    // 65535) and the other (area 0 gets 0, then area 1 gets 1 while area 0 holds 0). In both,
    // Mbed's `v0 > v1 || v0 == 0` picks the stale area (B5) unless its master record is gone.
    for start in [65531u16, 65532] {
        let mut b = Bufs::new(8);
        let mut s = b.open(blank(&SMALL));
        s.mount().unwrap();
        let f = s.into_flash();
        let f = strict(FlashSim::from_image(SMALL, with_master_version(f.image(), &SMALL, start)).unwrap());
        let mut b = Bufs::new(8);
        let mut s = b.open(f);
        assert_eq!(s.mount().unwrap().version, start);
        for round in 0..8u8 {
            s.set(b"round", &[round; 5], 0).unwrap();
            s.compact().unwrap();
            let i = s.store().info();
            let ctx = format!("start {start}, round {round}: area {} version {}", i.active_area, i.version);
            let st = mbed_store(s.flash().image(), &SMALL);
            assert_eq!((st.active, st.version), (i.active_area, i.version), "{ctx}");
            assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None, "{ctx}");
        }
        assert_eq!(s.store().info().version, start.wrapping_add(8), "the version wrapped");
        // And after a remount.
        let f = s.into_flash();
        assert_eq!(f.stats().double_programs, 0);
        let mut b = Bufs::new(8);
        let mut s = b.open(f);
        s.mount().unwrap();
        assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None);
    }
}

#[test]
fn a_cut_between_the_wrap_and_the_old_master_erase_is_repaired_by_maintenance() {
    // A power cut after the new master record (version 0 in area 1) and before the old one
    // (65535 in area 0) is erased: this engine picks area 1 by serial comparison, and its
    // first maintenance step erases area 0's head, after which Mbed agrees.
    let (mut window, mut completed) = (0, false);
    for cut_after in 0..64u64 {
        let mut b = Bufs::new(8);
        let mut s = b.open(blank(&SMALL));
        s.mount().unwrap();
        let f = s.into_flash();
        let f = strict(FlashSim::from_image(SMALL, with_master_version(f.image(), &SMALL, 65535)).unwrap());
        let mut b = Bufs::new(8);
        let mut s = b.open(f);
        s.mount().unwrap();
        s.set(b"k", b"before", 0).unwrap();
        s.set(b"k", b"after", 0).unwrap();
        s.flash_mut().reset_op_counter();
        s.flash_mut().cut_power_at(cut_after, flash_sim::Cut::Before);
        let r = s.compact();
        let done = r.is_ok();
        let mut f = s.into_flash();
        f.cancel_cut();
        f.power_on();
        let mut b = Bufs::new(8);
        let mut s = b.open(f);
        let info = s.mount().unwrap();
        let mut v = [0u8; 8];
        let n = s.get(b"k", &mut v).unwrap().copied;
        assert_eq!(&v[..n], b"after", "cut after {cut_after} ops");
        s.maintain_all().unwrap();
        assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None, "cut after {cut_after}: {info:?}");
        if done {
            assert_eq!(info.version, 0);
            completed = true;
            break;
        }
        if info.version == 0 {
            // Committed, cut before the old head was erased.
            window += 1;
        }
    }
    assert!(completed && window > 0, "the cuts reached the window ({window}) and the end");
}

#[test]
fn crc_colliding_keys_are_two_keys_here_and_one_for_mbed() {
    // B12: Mbed's RAM table holds one entry per CRC and its lookup aliases the two keys.
    // This engine compares the key bytes, so both are kept; an image holding both is one
    // whose meaning differs for Mbed (the README's table says so).
    let (a, b) = (&b"j-ifuI"[..], &b"wbtVzP"[..]);
    assert_eq!(mbed_reader::mbed_crc(a), mbed_reader::mbed_crc(b), "the keys collide");
    assert_eq!(tdbstore::format::key_hash(a), tdbstore::format::key_hash(b));
    let mut bufs = Bufs::new(8);
    let mut s = bufs.open(blank(&SMALL));
    s.mount().unwrap();
    s.set(a, b"first", 0).unwrap();
    s.set(b, b"second", 0).unwrap();
    let c = contents(&mut s);
    assert_eq!(c.get(a).map(|e| e.1.as_slice()), Some(&b"first"[..]));
    assert_eq!(c.get(b).map(|e| e.1.as_slice()), Some(&b"second"[..]));
    s.remove(a).unwrap();
    assert_eq!(s.get(a, &mut [0; 8]), Err(Error::NotFound));
    assert_eq!(contents(&mut s).len(), 1);
}
