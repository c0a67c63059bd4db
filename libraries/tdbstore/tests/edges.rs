//! Regression tests for the engine at its edges (issue 12): records at the area end in Mbed
//! format, read units wider than a byte, and the geometries `check_geometry` accepts.
//! Each Mbed-format image is also read by the independent Mbed reader (`mbed-reader`), which
//! follows the rules of `docs/format.md`, `>=` at the area end included.

mod common;

use common::*;
use flash_sim::FlashSim;
use tdbstore::format::RecordFormat;
use tdbstore::sim::SimStore;
use tdbstore::{check_geometry, Error, Geometry, GeometryError, Store, StoreOptions};

/// What the real Mbed TDBStore would list in the image (without its own `"TDBS"`, B1); and
/// Mbed's own garbage collection of the image must fit (B10, B11).
fn mbed_view(f: &FlashSim) -> Contents {
    let g = f.geometry();
    let img = mbed_reader::Image::new(f.image(), g.program_size, g.erase_size);
    match img.mount() {
        mbed_reader::Mount::Store(s) => {
            if let Some(why) = mbed_gc_trap(&img, &s) {
                panic!("{why}");
            }
            s.user_keys().into_iter().collect()
        }
        other => panic!("Mbed would not mount this image: {other:?}"),
    }
}

/// Runs `f` on a freshly mounted store and checks that Mbed reads the image the same way.
fn agree(s: &mut SimStore<'_>, ctx: &str) {
    let ours = contents(s);
    let theirs = mbed_view(s.flash());
    assert_same(&theirs, &ours, &format!("Mbed's view after {ctx}"));
}

fn fill(n: usize, b: u8) -> Vec<u8> {
    vec![b; n]
}

#[test]
fn a_value_that_would_end_at_the_area_end_compacts_or_is_refused() {
    // The reproduction: 16 KiB areas, byte programs. "end" would end exactly at the
    // area end (108 + 8026 + 8250 = 16384): Mbed would not read it back. The log also keeps
    // the 36 bytes Mbed's own collection needs for its master record copy (B10): 8,186 is
    // the longest value that fits.
    let g = Geometry { size: 32768, ..Geometry::QSPI };
    let mut b = Bufs::new(16);
    let mut s = b.open(blank(&g));
    s.mount().unwrap();
    s.set(b"k0", &fill(8000, 0xAA), 0).unwrap();
    assert_eq!(s.set(b"end", &fill(8223, 0xBB), 0), Err(Error::Full));
    agree(&mut s, "the refused exact fit");
    assert_eq!(s.set(b"end", &fill(8187, 0xBB), 0), Err(Error::Full));
    s.set(b"end", &fill(8186, 0xBB), 0).unwrap();
    agree(&mut s, "the longest value that fits");
    assert!(s.store().info().free_offset < 16384);
}

#[test]
fn the_portenta_preset_never_writes_an_exact_fit() {
    let mut b = Bufs::new(16);
    let mut s = b.open(blank(&Geometry::PORTENTA));
    s.mount().unwrap();
    s.set(b"k0", &fill(8000, 0xAA), 0).unwrap();
    // 160 + 8032 + align_up(24 + 3 + 778_173, 32) = 786_432: exactly the area.
    assert_eq!(s.set(b"end", &fill(778_173, 0xBB), 0), Err(Error::Full));
    // One flash word short of the end (B2) and one 64-byte master record (B10) more.
    assert_eq!(s.set(b"end", &fill(778_173 - 95, 0xBB), 0), Err(Error::Full));
    s.set(b"end", &fill(778_173 - 96, 0xBB), 0).unwrap();
    agree(&mut s, "a value three flash words shorter");
}

#[test]
fn a_delete_record_never_ends_at_the_area_end() {
    // The delete case on the small geometry (16 KiB areas, 8-byte units).
    let mut b = Bufs::new(16);
    let mut s = b.open(blank(&Geometry {
        size: 32768,
        read_size: 1,
        program_size: 8,
        erase_size: 4096,
        erase_value: 0xFF,
    }));
    s.mount().unwrap();
    s.set(b"BBBBBBBB", b"", 0).unwrap();
    // The log then ends at 112 + 32 + 16_168 = 16_312, and the 32-byte delete record would
    // end past the log limit (16_384 - 8 - 40, the room for Mbed's own master record copy
    // kept, B10): the removal compacts the key away instead.
    s.set(b"A", &fill(16_143, 0x41), 0).unwrap();
    s.remove(b"BBBBBBBB").unwrap();
    agree(&mut s, "removing a key from a full store");
    assert!(s.store().info().compactions > 0, "removed by compaction");
    // And with the tombstone fitting only up to the limit.
    let f = s.into_flash();
    let mut b = Bufs::new(16);
    let mut s = b.open(f);
    s.mount().unwrap();
    agree(&mut s, "a remount");
}

#[test]
fn incremental_sets_and_compactions_stop_short_of_the_area_end_too() {
    // Every size around the limit, each from a fresh store, through set, incremental set and
    // a compaction (which reorders records: one without padding must not land at the end).
    let g = Geometry { size: 8192, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };
    for first in [0usize, 3, 8] {
        for delta in 0..24usize {
            let mut b = Bufs::new(16);
            let mut s = b.open(blank(&g));
            s.mount().unwrap();
            s.set(b"pad", &fill(first, 1), 0).unwrap();
            let room = s.store().layout().capacity() as usize;
            let len = (room + 16).saturating_sub(24 + 24 + 3 + first + delta + 1);
            let v = fill(len, 2);
            match s.set_start(b"big", len as u32, 0) {
                Ok(()) => {
                    s.set_add_data(&v).unwrap();
                    s.set_finalize().unwrap();
                }
                Err(Error::Full | Error::ValueTooLarge) => {}
                Err(e) => panic!("{e:?}"),
            }
            agree(&mut s, "an incremental set near the end");
            s.compact().unwrap();
            agree(&mut s, "a compaction");
        }
    }
}

#[test]
fn reserved_data_survives_a_remount_with_16_and_32_byte_read_units() {
    for r in [16, 32] {
        let g = Geometry { read_size: r, ..Geometry::PORTENTA };
        let mut b = Bufs::new(16);
        let mut s = b.open(blank(&g));
        s.mount().unwrap();
        s.reserved_data_set(b"0123456789abcdef").unwrap();
        let f = s.into_flash();
        let mut b = Bufs::new(16);
        let mut s = b.open(f);
        s.mount().unwrap();
        let mut out = [0u8; 64];
        assert_eq!(s.reserved_data_get(&mut out), Ok(16), "read unit {r}");
        assert_eq!(&out[..16], b"0123456789abcdef");
    }
}

#[test]
fn compact_records_work_with_wide_read_units() {
    for r in [8, 16, 32] {
        let g = Geometry { size: 65536, read_size: r, program_size: 32, erase_size: 8192, erase_value: 0xFF };
        let opts = StoreOptions { record_format: RecordFormat::Compact, ..StoreOptions::default() };
        let mut b = Bufs::new(16);
        let mut s = b.open_with(blank(&g), opts);
        s.mount().unwrap();
        s.set(b"stats", b"twelve bytes", 0).unwrap();
        s.set(b"a-longer-key", &fill(300, 7), 0).unwrap();
        let mut out = [0u8; 300];
        assert_eq!(s.get(b"stats", &mut out).map(|i| i.copied), Ok(12), "read unit {r}");
        assert_eq!(&out[..12], b"twelve bytes");
        let mut keys = key_order(&mut s);
        keys.sort();
        assert_eq!(keys, vec![b"a-longer-key".to_vec(), b"stats".to_vec()]);
        s.compact().unwrap();
        let f = s.into_flash();
        let mut b = Bufs::new(16);
        let mut s = b.open(f);
        s.mount().unwrap();
        assert_eq!(s.get(b"a-longer-key", &mut out).map(|i| i.copied), Ok(300), "read unit {r}");
        assert_eq!(out, [7; 300]);
        assert_eq!(s.store().info().keys, 2);
    }
}

#[test]
fn check_geometry_names_the_field_and_refuses_what_the_engine_cannot_serve() {
    let ok = Geometry { size: 32768, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };
    assert_eq!(check_geometry(&ok), Ok(()));
    let bad = |f: fn(&mut Geometry)| {
        let mut g = ok;
        f(&mut g);
        check_geometry(&g)
    };
    assert_eq!(bad(|g| g.read_size = 0), Err(GeometryError::Zero("read_size")));
    assert_eq!(bad(|g| g.program_size = 0), Err(GeometryError::Zero("program_size")));
    assert_eq!(bad(|g| g.erase_size = 0), Err(GeometryError::Zero("erase_size")));
    assert_eq!(bad(|g| g.read_size = 3), Err(GeometryError::NotPowerOfTwo("read_size")));
    assert_eq!(bad(|g| g.program_size = 24), Err(GeometryError::NotPowerOfTwo("program_size")));
    assert_eq!(bad(|g| g.erase_size = 3000), Err(GeometryError::NotPowerOfTwo("erase_size")));
    assert_eq!(bad(|g| g.read_size = 16), Err(GeometryError::UnitsNotNested));
    assert_eq!(bad(|g| g.program_size = 8192), Err(GeometryError::UnitsNotNested));
    assert_eq!(bad(|g| g.program_size = 512), Err(GeometryError::ProgramSizeTooLarge));
    assert_eq!(bad(|g| g.size = 4096), Err(GeometryError::AreaSize));
    assert_eq!(bad(|g| g.size = u32::MAX), Err(GeometryError::AreaSize), "areas over 1 GiB");
    // 256-byte areas: the master record fits, a record with a 127-byte key does not.
    let tiny = Geometry { size: 512, read_size: 1, program_size: 1, erase_size: 256, erase_value: 0xFF };
    assert_eq!(check_geometry(&tiny), Err(GeometryError::AreaSize));
    for e in [GeometryError::Zero("read_size"), GeometryError::NotPowerOfTwo("erase_size")] {
        assert!(e.to_string().contains(match e {
            GeometryError::Zero(f) | GeometryError::NotPowerOfTwo(f) => f,
            _ => unreachable!(),
        }));
    }
    assert!(GeometryError::ProgramSizeTooLarge.to_string().contains("program_size"));
    assert!(GeometryError::AreaSize.to_string().contains("size"));
}

#[test]
fn the_smallest_accepted_geometries_serve_a_127_byte_key() {
    // For each unit set, the smallest power-of-two sector the validation accepts takes the
    // longest key with an empty value and a one-byte value in both formats, and a remount.
    for (r, p) in [(1, 1), (1, 8), (8, 8), (4, 32), (32, 32), (32, 256), (256, 256)] {
        let mut e = p;
        let g = loop {
            let g = Geometry { size: 2 * e, read_size: r, program_size: p, erase_size: e, erase_value: 0xFF };
            if check_geometry(&g).is_ok() {
                break g;
            }
            e *= 2;
        };
        for format in [RecordFormat::Mbed, RecordFormat::Compact] {
            let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
            let key = [b'k'; 127];
            let work = Store::min_work_len(&g);
            let mut b = Bufs::with_work(work, 4);
            let mut s = b.open_with(blank(&g), opts);
            s.mount().unwrap();
            s.set(&key, b"", 0).unwrap_or_else(|e| panic!("{g:?} {format:?}: {e:?}"));
            s.remove(&key).unwrap();
            let max = s.store().layout().max_value_len(127);
            s.set(&key, &fill(max as usize, 3), 0).unwrap_or_else(|e| panic!("{g:?} {format:?} max: {e:?}"));
            assert_eq!(s.set(&key, &fill(max as usize + 1, 3), 0), Err(Error::ValueTooLarge));
            s.remove(&key).unwrap();
            s.set(&key, b"x", 0).unwrap();
            let f = s.into_flash();
            if format == RecordFormat::Mbed {
                assert_eq!(mbed_view(&f).len(), 1, "{g:?}");
            }
            let mut b = Bufs::with_work(work, 4);
            let mut s = b.open(f);
            s.mount().unwrap();
            assert_eq!(contents(&mut s).len(), 1);
        }
    }
}

/// Found by the model matrix: a value whose record ends exactly on a work-buffer chunk
/// boundary had its head programmed from the front of the work buffer (where the last chunk's
/// data was) instead of the hold area; in compact format the head holds the first key bytes,
/// so the key was overwritten and the acknowledged value lost.
#[test]
fn a_record_ending_on_a_chunk_boundary_keeps_its_key() {
    let g = Geometry { size: 32768, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };
    for format in [RecordFormat::Compact, RecordFormat::Mbed] {
        let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
        // 512-byte work buffer: a 24-byte hold area and 488-byte chunks.
        let body = if format == RecordFormat::Compact { 12 } else { 24 };
        for chunks in 1..4 {
            let len = 488 * chunks - body - 5;
            let mut b = Bufs::new(16);
            let mut s = b.open_with(blank(&g), opts);
            s.mount().unwrap();
            s.set(b"key-0", &fill(len, 9), 0).unwrap();
            let mut out = vec![0; len];
            assert_eq!(s.get(b"key-0", &mut out).map(|i| i.copied), Ok(len), "{format:?}, {chunks} chunks");
            s.set_start(b"key-1", len as u32, 0).unwrap();
            s.set_add_data(&fill(len, 8)).unwrap();
            s.set_finalize().unwrap();
            let f = s.into_flash();
            let mut b = Bufs::new(16);
            let mut s = b.open(f);
            s.mount().unwrap();
            assert_eq!(s.get(b"key-1", &mut out).map(|i| i.copied), Ok(len), "{format:?}, {chunks} chunks");
            assert_eq!(out, fill(len, 8));
        }
    }
}

/// Found by the campaign's Mbed reader: reserved data was committed by a compaction, so a
/// power cut after the standby area got the data and before its master record left data
/// that Mbed's `reserved_data_get` (first valid area, 0 then 1) returns and the engine does
/// not. Now it is programmed into the active area, the trailer last: after a cut at any
/// request, both see the same thing, and it is the old or the new state.
#[test]
fn a_cut_reserved_set_reads_the_same_to_mbed_and_to_the_engine() {
    let g = Geometry { size: 32768, read_size: 1, program_size: 1, erase_size: 4096, erase_value: 0xFF };
    for cut in 0..8u64 {
        for how in [flash_sim::Cut::Before, flash_sim::Cut::Halfway] {
            let mut b = Bufs::new(16);
            let mut s = b.open(blank(&g));
            s.mount().unwrap();
            s.set(b"k", b"v", 0).unwrap();
            s.compact().unwrap();
            s.flash_mut().reset_op_counter();
            s.flash_mut().cut_power_at(cut, how);
            let r = s.reserved_data_set(&[0x42; 30]);
            let mut f = s.into_flash();
            let cut_fired = !f.is_powered();
            f.power_on();
            f.cancel_cut();
            let mut b = Bufs::new(16);
            let mut s = b.open(f);
            s.mount().unwrap();
            let mut out = [0u8; 64];
            let ours = s.reserved_data_get(&mut out).ok().map(|n| out[..n].to_vec());
            if !cut_fired {
                assert_eq!((r, ours.as_deref()), (Ok(()), Some(&[0x42; 30][..])));
            }
            assert!(ours.is_none() || ours.as_deref() == Some(&[0x42; 30][..]), "old or new");
            assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None, "cut {cut} {how:?}");
        }
    }
}

/// Geometries whose sector is smaller than the area head (reserved slot and master record,
/// 768 bytes with 256-byte units; 112 with 8-byte ones) or exactly as large (256 bytes with
/// 64-byte units), with several sectors per area. Mbed's `reset_area` erases every sector
/// the head overlaps (`check_erase_before_write`), so these are Mbed geometries too.
const HEAD_SPANNING: [Geometry; 4] = [
    Geometry { size: 8192, read_size: 1, program_size: 256, erase_size: 256, erase_value: 0xFF },
    Geometry { size: 8192, read_size: 1, program_size: 8, erase_size: 64, erase_value: 0xFF },
    Geometry { size: 4096, read_size: 8, program_size: 8, erase_size: 8, erase_value: 0xFF },
    // The head ends exactly on a sector boundary.
    Geometry { size: 8192, read_size: 4, program_size: 64, erase_size: 256, erase_value: 0xFF },
];

/// Checks the image after a step: the engine shows `want`, Mbed's reader the same, no unit
/// programmed twice, and a remount (from flash alone) shows `want` too.
fn check_step(s: SimStore<'_>, g: &Geometry, want: &Contents, ctx: &str) -> FlashSim {
    let mut s = s;
    assert_same(&contents(&mut s), want, ctx);
    assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None, "{g:?} {ctx}");
    let f = s.into_flash();
    assert_eq!(f.stats().double_programs, 0, "{g:?} {ctx}");
    let mut b = Bufs::with_work(Store::min_work_len(g).max(256), 16);
    let mut s = b.open(f);
    s.mount().unwrap_or_else(|e| panic!("{g:?} {ctx}: remount: {e:?}"));
    assert_same(&contents(&mut s), want, &format!("{g:?} {ctx}, remounted"));
    s.into_flash()
}

/// Found by a colleague: with sectors smaller than the area head, format erased only sector
/// 0 of each area and then programmed the master record into sectors it had neither checked
/// nor erased (a debug build stopped on "erased watermark below the log end"); compaction's
/// commit and the old head's retirement had the same assumption. With a head ending exactly
/// on a sector boundary, the next sector was left as it was, so a remount after a reset
/// scanned on into the old generation's records and brought reset keys back.
#[test]
fn sectors_smaller_than_the_area_head_are_erased_before_the_head_is_written() {
    for g in HEAD_SPANNING {
        assert_eq!(check_geometry(&g), Ok(()), "{g:?}");
        let work = Store::min_work_len(&g).max(256);
        let mut want = Contents::new();
        let mut b = Bufs::with_work(work, 16);
        let mut s = b.open(blank(&g));
        s.mount().unwrap_or_else(|e| panic!("{g:?}: format: {e:?}"));
        let mut f = check_step(s, &g, &want, "format");
        // Several generations: each compaction writes the other area's head over what the
        // generation before left there (no maintenance in between: the standby stays dirty).
        for round in 0..6u8 {
            let mut b = Bufs::with_work(work, 16);
            let mut s = b.open(f);
            s.mount().unwrap();
            for k in 0..3u8 {
                let key = [b'k', b'0' + k];
                let v = fill(40 + 30 * k as usize, round.wrapping_mul(7) ^ k);
                s.set(&key, &v, 0).unwrap_or_else(|e| panic!("{g:?} round {round}: set: {e:?}"));
                want.insert(key.to_vec(), (0, v));
            }
            if round == 1 {
                s.reserved_data_set(&[0x5A; 20]).unwrap();
            }
            s.compact().unwrap_or_else(|e| panic!("{g:?} round {round}: compact: {e:?}"));
            f = check_step(s, &g, &want, &format!("round {round} compaction"));
            if round % 2 == 1 {
                // A reset compacts everything away and retires the old area's head.
                let mut b = Bufs::with_work(work, 16);
                let mut s = b.open(f);
                s.mount().unwrap();
                s.reset().unwrap_or_else(|e| panic!("{g:?} round {round}: reset: {e:?}"));
                want.clear();
                f = check_step(s, &g, &want, &format!("round {round} reset"));
            }
        }
        // Maintenance erases the standby area and ahead, then one more generation.
        let mut b = Bufs::with_work(work, 16);
        let mut s = b.open(f);
        s.mount().unwrap();
        s.maintain_all().unwrap();
        s.set(b"last", b"value", 0).unwrap();
        want.insert(b"last".to_vec(), (0, b"value".to_vec()));
        s.compact().unwrap();
        check_step(s, &g, &want, "maintenance and a last compaction");
    }
}

/// The version wrap retires the old area's head (B5) on these geometries too: Mbed then
/// reads the area the engine does, and nothing is programmed twice.
#[test]
fn the_version_wrap_retires_a_head_spanning_several_sectors() {
    for g in HEAD_SPANNING {
        let work = Store::min_work_len(&g).max(256);
        let mut b = Bufs::with_work(work, 16);
        let mut s = b.open(blank(&g));
        s.mount().unwrap();
        let mut img = s.into_flash().image().to_vec();
        let lay = tdbstore::format::Layout::new(g.program_size, g.area_size());
        let at = lay.master_offset as usize;
        lay.encode_master(65531, g.erase_value, &mut img[at..at + lay.master_size as usize]);
        let f = strict(FlashSim::from_image(g, img).unwrap());
        let mut b = Bufs::with_work(work, 16);
        let mut s = b.open(f);
        assert_eq!(s.mount().unwrap().version, 65531);
        let mut want = Contents::new();
        for round in 0..8u8 {
            s.set(b"round", &[round; 5], 0).unwrap();
            want.insert(b"round".to_vec(), (0, vec![round; 5]));
            s.compact().unwrap();
            assert_eq!(mbed_disagreement(&mut s, RecordFormat::Mbed), None, "{g:?} round {round}");
        }
        assert_eq!(s.store().info().version, 65531u16.wrapping_add(8), "the version wrapped");
        check_step(s, &g, &want, "the version wrap");
    }
}
