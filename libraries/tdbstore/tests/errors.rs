//! Every bad input gets a typed error and changes nothing; edge cases of the API behave as
//! documented.

mod common;

use common::*;
use flash_sim::FlashSim;
use tdbstore::{Cursor, Error, Geometry, IndexEntry, KeyError, Op, Step, Store, StoreOptions, WRITE_ONCE};

const G: Geometry =
    Geometry { size: 32768, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };

fn fresh(b: &mut Bufs) -> tdbstore::sim::SimStore<'_> {
    let mut s = b.open(blank(&G));
    assert!(s.mount().unwrap().formatted);
    s
}

#[test]
fn bad_keys_are_refused_and_change_nothing() {
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    s.set(b"ok", b"1", 0).unwrap();
    let before = s.flash().image().to_vec();
    let long = [b'k'; 128];
    for (key, why) in [
        (&b""[..], KeyError::Empty),
        (&long[..], KeyError::TooLong),
        (b"a b", KeyError::ForbiddenByte(b' ')),
        (b"a/b", KeyError::ForbiddenByte(b'/')),
        (b"a\0", KeyError::ForbiddenByte(0)),
        (b"TDBS", KeyError::Reserved),
    ] {
        assert_eq!(s.set(key, b"v", 0), Err(Error::InvalidKey(why)));
        assert_eq!(s.get(key, &mut [0; 4]), Err(Error::InvalidKey(why)));
        assert_eq!(s.remove(key), Err(Error::InvalidKey(why)));
    }
    assert!(s.set(&long[..127], b"v", 0).is_ok(), "127 bytes is the documented limit");
    assert_eq!(s.set(b"x", b"v", 1 << 2), Err(Error::InvalidFlags));
    assert_eq!(s.set(b"x", b"v", 1 << 31), Err(Error::InvalidFlags));
    let mut b2 = Bufs::new(16);
    let mut s2 = b2.open(FlashSim::from_image(G, before).unwrap());
    s2.mount().unwrap();
    assert_eq!(contents(&mut s2).len(), 1);
}

#[test]
fn values_that_can_never_fit_are_refused_up_front() {
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    let max = s.store().layout().max_value_len(1) as usize;
    let ops = s.flash().stats().programs;
    assert_eq!(s.set(b"k", &vec![0; max + 1], 0), Err(Error::ValueTooLarge));
    assert_eq!(s.flash().stats().programs, ops, "nothing written");
    // Exactly filling an area is valid (Mbed's off-by-one rejects it, B2).
    s.set(b"k", &vec![7; max], 0).unwrap();
    let f = s.into_flash();
    let mut b2 = Bufs::new(16);
    let mut s2 = b2.open(f);
    s2.mount().unwrap();
    assert_eq!(s2.get_info(b"k").unwrap().0, max);
}

#[test]
fn a_full_store_says_full_and_keeps_its_data() {
    let mut b = Bufs::new(64);
    let mut s = fresh(&mut b);
    let mut n = 0;
    loop {
        match s.set(format!("k{n}").as_bytes(), &[n as u8; 1000], 0) {
            Ok(()) => n += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(n > 10);
    for i in 0..n {
        let mut v = [0u8; 1000];
        assert_eq!(s.get(format!("k{i}").as_bytes(), &mut v).unwrap().size, 1000);
        assert_eq!(v[0], i as u8);
    }
    // Removing works even when no tombstone fits: compaction drops the key instead.
    s.remove(b"k0").unwrap();
    assert_eq!(s.get_info(b"k0"), Err(Error::NotFound));
    s.set(b"again", &[1; 500], 0).unwrap();
}

#[test]
fn index_full_is_an_error_not_a_loss() {
    let mut b = Bufs::new(3);
    let mut s = fresh(&mut b);
    for k in [b"a", b"b", b"c"] {
        s.set(k, b"v", 0).unwrap();
    }
    assert_eq!(s.set(b"d", b"v", 0), Err(Error::IndexFull));
    s.set(b"a", b"overwrite is fine", 0).unwrap();
    // A mount with a smaller index than the store's keys refuses clearly.
    let f = s.into_flash();
    let mut b2 = Bufs::new(2);
    let mut s2 = b2.open(f);
    assert_eq!(s2.mount(), Err(Error::IndexFull));
}

#[test]
fn foreign_images_are_reported_and_untouched() {
    let mut image = vec![0u8; G.size as usize];
    let mut x = 0x1234_5678u32;
    for b in image.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let f = strict(FlashSim::from_image(G, image.clone()).unwrap());
    let mut b = Bufs::new(16);
    let mut s = b.open(f);
    assert_eq!(s.mount(), Err(Error::Foreign));
    assert_eq!(s.set(b"k", b"v", 0), Err(Error::NotMounted));
    assert_eq!(s.flash().image(), &image[..], "nothing erased or written");
    // An explicit format makes it a store.
    s.format(false).unwrap();
    s.set(b"k", b"v", 0).unwrap();
}

#[test]
fn blank_regions_are_formatted_only_when_allowed() {
    let mut work = vec![0; 256];
    let mut index = vec![IndexEntry::default(); 4];
    let opts = StoreOptions { format_if_blank: false, ..StoreOptions::default() };
    let mut s = tdbstore::sim::open(blank(&G), opts, &mut work, &mut index).unwrap();
    assert_eq!(s.mount(), Err(Error::Foreign));
    assert!(s.flash().image().iter().all(|&b| b == 0xFF));
}

#[test]
fn short_output_buffers_truncate_and_report_the_size() {
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    s.set(b"k", b"0123456789", WRITE_ONCE).unwrap();
    let mut out = [0u8; 4];
    let v = s.get(b"k", &mut out).unwrap();
    assert_eq!((v.size, v.copied, v.flags), (10, 4, WRITE_ONCE));
    assert_eq!(&out, b"0123");
    assert_eq!(s.get_info(b"missing"), Err(Error::NotFound));
}

#[test]
fn one_operation_at_a_time() {
    let mut work = vec![0; 256];
    let mut index = vec![IndexEntry::default(); 4];
    let mut store = Store::new(G, StoreOptions::default(), &mut work, &mut index).unwrap();
    assert_eq!(store.start(Op::Get { key: b"k", out_len: 1 }), Step::Done);
    assert_eq!(store.finish::<tdbstore::Value>(), Err(Error::NotMounted));
    let step = store.start(Op::Mount);
    assert!(matches!(step, Step::Io(_)));
    let pending = store.pending();
    assert_eq!(store.start(Op::Maintain), Step::Done);
    assert_eq!(store.finish::<bool>(), Err(Error::Busy));
    assert_eq!(store.pending(), pending, "a refused start leaves the operation in flight alone");
    store.cancel();
    assert!(!store.is_busy());
}

#[test]
fn incremental_sets_check_their_size_and_block_other_ops() {
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    assert_eq!(s.set_add_data(b"x"), Err(Error::SizeMismatch), "no set open");
    s.set_start(b"inc", 10, 0).unwrap();
    s.set_add_data(b"01234").unwrap();
    assert_eq!(s.set(b"other", b"v", 0), Err(Error::Busy));
    assert_eq!(s.set_add_data(b"56789X"), Err(Error::SizeMismatch), "too much data");
    assert_eq!(s.get_info(b"inc"), Err(Error::NotFound), "abandoned");
    s.set_start(b"inc", 10, 0).unwrap();
    s.set_add_data(b"0123").unwrap();
    assert_eq!(s.set_finalize(), Err(Error::SizeMismatch), "too little data");
    s.set_start(b"inc", 4, 0).unwrap();
    s.set_add_data(b"ab").unwrap();
    s.set_abort().unwrap();
    assert_eq!(s.get_info(b"inc"), Err(Error::NotFound));
    s.set_start(b"inc", 4, 0).unwrap();
    s.set_add_data(b"ab").unwrap();
    s.set_add_data(b"cd").unwrap();
    s.set_finalize().unwrap();
    let mut v = [0; 4];
    s.get(b"inc", &mut v).unwrap();
    assert_eq!(&v, b"abcd");
    assert_eq!(s.flash().stats().double_programs, 0);
}

#[test]
fn iteration_filters_by_prefix_and_survives_removal_of_the_current_key() {
    let mut b = Bufs::new(64);
    let mut s = fresh(&mut b);
    for i in 0..20 {
        s.set(format!("app.{i}").as_bytes(), b"v", 0).unwrap();
        s.set(format!("sys.{i}").as_bytes(), b"v", 0).unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = Cursor::default();
    let mut key = [0u8; 127];
    while let Some((len, next)) = s.next_key(b"app.", cursor, &mut key).unwrap() {
        let k = key[..len].to_vec();
        assert!(k.starts_with(b"app."));
        // Removing what we just saw must not make the walk skip or repeat anything.
        s.remove(&k).unwrap();
        seen.push(k);
        cursor = next;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20);
    assert_eq!(contents(&mut s).len(), 20);
}

#[test]
fn reserved_data_is_write_once_survives_compaction_and_is_cleared_by_reset() {
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    assert_eq!(s.reserved_data_set(&[0; 65]), Err(Error::ValueTooLarge));
    s.reserved_data_set(b"serial-0042").unwrap();
    assert_eq!(s.reserved_data_set(b"again"), Err(Error::WriteProtected));
    s.set(b"k", b"v", 0).unwrap();
    s.compact().unwrap();
    let mut r = [0u8; 64];
    let n = s.reserved_data_get(&mut r).unwrap();
    assert_eq!(&r[..n], b"serial-0042", "compaction copies the reserved data");
    // Mbed's reset() clears all keys and the reserved data (`docs/format.md` §16); so does ours, in RAM, on
    // flash for a remount, and for Mbed, whose reserved_data_get reads either area.
    s.reset().unwrap();
    assert_eq!(s.reserved_data_get(&mut r), Err(Error::NotFound));
    let f = s.into_flash();
    let mbed = mbed_reader::Image::new(f.image(), G.program_size, G.erase_size).mount();
    let mbed_reader::Mount::Store(m) = mbed else { panic!("Mbed mounts the reset store: {mbed:?}") };
    assert_eq!((m.reserved.clone(), m.user_keys().len()), (None, 0), "Mbed's view after the reset");
    let mut b2 = Bufs::new(16);
    let mut s2 = b2.open(f);
    s2.mount().unwrap();
    assert_eq!(s2.reserved_data_get(&mut r), Err(Error::NotFound));
    assert_eq!(contents(&mut s2).len(), 0);
    // Write-once until the next reset, as Mbed's.
    s2.reserved_data_set(b"serial-0043").unwrap();
    let n = s2.reserved_data_get(&mut r).unwrap();
    assert_eq!(&r[..n], b"serial-0043");
    assert_eq!(mbed_disagreement(&mut s2, tdbstore::format::RecordFormat::Mbed), None);
}

#[test]
fn maintenance_erases_the_standby_area_ahead_of_need() {
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    s.set(b"k", &[1; 300], 0).unwrap();
    s.compact().unwrap();
    let i = s.store().info();
    assert_eq!(i.standby_clean, 0, "the old area is dirty after a switch");
    s.maintain_all().unwrap();
    let i = s.store().info();
    assert_eq!(i.standby_clean, i.area_size);
    assert!(!s.maintain().unwrap(), "nothing left to do");
    // With the standby erased, the next compaction erases nothing.
    let erases = s.flash().stats().erases;
    s.compact().unwrap();
    assert_eq!(s.flash().stats().erases, erases);
}

#[test]
fn versions_compare_across_the_u16_wrap() {
    // Area 0 at 65535, area 1 at 0: area 1 is newer (Mbed picks area 0, B5).
    let mut b = Bufs::new(16);
    let mut s = fresh(&mut b);
    s.set(b"k", b"old", 0).unwrap();
    let mut f = s.into_flash();
    let image = rewrite_master_versions(f.image(), &G, [65535, 0]);
    f = FlashSim::from_image(G, image).unwrap();
    let mut b2 = Bufs::new(16);
    let mut s2 = b2.open(f);
    let info = s2.mount().unwrap();
    assert_eq!((info.active_area, info.version), (1, 0));
}

/// Writes valid master records with the given versions into both areas of a copy of `image`.
fn rewrite_master_versions(image: &[u8], g: &Geometry, versions: [u16; 2]) -> Vec<u8> {
    use tdbstore::format::{Header, Layout};
    let mut img = image.to_vec();
    let lay = Layout::new(g.program_size, g.area_size());
    for (a, v) in versions.into_iter().enumerate() {
        let base = a * lay.area_size as usize + lay.master_offset as usize;
        let hs = lay.header_span as usize;
        let mut data = [0u8; 8];
        data[..2].copy_from_slice(&v.to_le_bytes());
        data[2] = 1;
        let mut h = Header { flags: 0, key_len: 4, data_len: 8, crc: 0 };
        let mut c = h.crc_start();
        c.update(b"TDBS");
        c.update(&data);
        h.crc = c.value();
        img[base..base + lay.master_size as usize].fill(0xFF);
        h.encode(&mut img[base..base + 24]);
        img[base + hs..base + hs + 4].copy_from_slice(b"TDBS");
        img[base + hs + 4..base + hs + 12].copy_from_slice(&data);
    }
    img
}

#[test]
fn compact_records_cost_one_flash_word_per_stats_update() {
    use tdbstore::format::RecordFormat;
    let g = Geometry { size: 65536, read_size: 1, program_size: 32, erase_size: 8192, erase_value: 0xFF };
    for (format, per_update) in [(RecordFormat::Mbed, 64), (RecordFormat::Compact, 32)] {
        let mut b = Bufs::new(4);
        let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
        let mut s = b.open_with(blank(&g), opts);
        s.mount().unwrap();
        s.set(b"stats", &[0; 12], 0).unwrap();
        let before = s.flash().stats().bytes_programmed;
        s.set(b"stats", &[1; 12], 0).unwrap();
        assert_eq!(s.flash().stats().bytes_programmed - before, per_update, "{format:?}");
        // A remount with default options follows the format the store was made with.
        let f = s.into_flash();
        let mut b2 = Bufs::new(4);
        let mut s2 = b2.open(f);
        s2.mount().unwrap();
        let mut v = [0; 12];
        s2.get(b"stats", &mut v).unwrap();
        assert_eq!(v, [1; 12]);
    }
}
