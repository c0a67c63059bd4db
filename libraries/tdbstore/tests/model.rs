//! Random operation sequences against a `BTreeMap` model, across remounts, compactions and
//! maintenance, over a geometry matrix. Every step's result must match the model's, the
//! simulator must never see a unit programmed twice, and after every step the independent
//! Mbed reader (`mbed-reader`, written from `docs/format.md`) must read the image exactly as
//! the engine does (Mbed format), or as an empty store (compact records).
//!
//! The matrix: read units 1, 4, 8, 16, 32 (no larger than the program unit); program units
//! 1, 8, 32, 256; 4 KiB and 128 KiB sectors; Mbed and compact records; one-sector areas and
//! multi-sector ones (with an odd, unused last sector); and sectors of 8, 64 and 256 bytes,
//! no larger than the area head, so the head spans several. `every_geometry_of_the_matrix` runs
//! one seeded sequence on each of its configurations; the proptests draw configurations
//! from it at random. Sequences include `FillUp` steps that size a value so its record ends
//! exactly at the area end, at the log limit, or a few bytes either side, so every area is
//! filled to its last byte.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use flash_sim::SplitMix64;
use proptest::prelude::*;
use tdbstore::format::RecordFormat;
use tdbstore::{Error, Geometry, Store, StoreOptions, WRITE_ONCE};

#[derive(Clone, Debug)]
enum Action {
    Set {
        key: u8,
        len: usize,
        fill: u8,
        once: bool,
    },
    Remove {
        key: u8,
    },
    Incremental {
        key: u8,
        chunks: Vec<usize>,
        fill: u8,
    },
    /// A value sized so that its record ends `delta` bytes after the area end (`to_end`) or
    /// the log limit, from the current log end.
    FillUp {
        key: u8,
        to_end: bool,
        delta: i8,
        fill: u8,
    },
    Reserved {
        len: usize,
        fill: u8,
    },
    Remount,
    Maintain,
    Compact,
    Reset,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (0u8..12, 0usize..700, any::<u8>(), prop::bool::weighted(0.05))
            .prop_map(|(key, len, fill, once)| Action::Set { key, len, fill, once }),
        3 => (0u8..12).prop_map(|key| Action::Remove { key }),
        2 => (0u8..12, prop::collection::vec(0usize..300, 1..4), any::<u8>())
            .prop_map(|(key, chunks, fill)| Action::Incremental { key, chunks, fill }),
        2 => (0u8..12, any::<bool>(), -3i8..=3, any::<u8>())
            .prop_map(|(key, to_end, delta, fill)| Action::FillUp { key, to_end, delta, fill }),
        1 => (0usize..=64, any::<u8>()).prop_map(|(len, fill)| Action::Reserved { len, fill }),
        2 => Just(Action::Remount),
        2 => Just(Action::Maintain),
        1 => Just(Action::Compact),
        1 => Just(Action::Reset),
    ]
}

/// A seeded sequence of `n` actions, for the deterministic matrix run.
fn seeded_actions(seed: u64, n: usize) -> Vec<Action> {
    let mut r = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let key = r.below(12) as u8;
            let fill = r.next_u64() as u8;
            match r.below(24) {
                0..=7 => Action::Set { key, len: r.below(700) as usize, fill, once: r.below(20) == 0 },
                8..=10 => Action::Remove { key },
                11..=12 => {
                    let chunks = (0..1 + r.below(3)).map(|_| r.below(300) as usize).collect();
                    Action::Incremental { key, chunks, fill }
                }
                13..=16 => Action::FillUp { key, to_end: r.below(2) == 0, delta: r.below(7) as i8 - 3, fill },
                17 => Action::Reserved { len: r.below(65) as usize, fill },
                18..=19 => Action::Remount,
                20..=21 => Action::Maintain,
                22 => Action::Compact,
                _ => Action::Reset,
            }
        })
        .collect()
}

fn key_name(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

/// Checks a refused set: `Full` only when the live data (the old value included, since it is
/// copied before the new one is written) leaves no room below the log limit, `ValueTooLarge`
/// only when the record could never fit.
#[track_caller]
fn refusal_is_justified(s: &SimStore<'_>, key: &[u8], len: usize, e: Error) {
    let i = s.store().info();
    let lay = s.store().layout();
    let size = lay.record_size(key.len() as u32, len as u32);
    match e {
        Error::Full => {
            let need = lay.first_record() as u64 + i.live_bytes as u64 + size.unwrap_or(u32::MAX) as u64;
            assert!(need > lay.log_limit() as u64, "Full with room: {i:?}");
        }
        Error::ValueTooLarge => assert!(size.is_none_or(|s| s > lay.capacity()), "ValueTooLarge that fits"),
        e => panic!("set failed: {e:?}"),
    }
}

use tdbstore::sim::SimStore;

fn run(g: Geometry, actions: Vec<Action>) {
    run_with(g, RecordFormat::Mbed, actions)
}

fn run_with(g: Geometry, format: RecordFormat, actions: Vec<Action>) {
    let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
    // A work buffer a little over the minimum, so requests are split into many chunks.
    let work = Store::min_work_len(&g).max(512);
    let mut model = Contents::new();
    let mut reserved: Option<Vec<u8>> = None;
    let mut b = Bufs::with_work(work, 64);
    let mut s = b.open_with(blank(&g), opts);
    s.mount().unwrap();
    for (step, a) in actions.into_iter().enumerate() {
        match a {
            Action::Set { key, len, fill, once } => {
                let k = key_name(key);
                let v = value(len, fill);
                let flags = if once { WRITE_ONCE } else { 0 };
                let r = s.set(&k, &v, flags);
                match model.get(&k) {
                    Some((f, _)) if f & WRITE_ONCE != 0 => assert_eq!(r, Err(Error::WriteProtected)),
                    _ => match r {
                        Ok(()) => {
                            model.insert(k, (flags, v));
                        }
                        Err(e) => refusal_is_justified(&s, &k, len, e),
                    },
                }
            }
            Action::FillUp { key, to_end, delta, fill } => {
                let k = key_name(key);
                let lay = s.store().layout();
                let end = if to_end { lay.area_size } else { lay.log_limit() } as i64 + delta as i64;
                let from = s.store().info().free_offset as i64 + (lay.body_offset as usize + k.len()) as i64;
                let len = (end - from).max(0) as usize;
                let v = value(len, fill);
                let r = s.set(&k, &v, 0);
                match model.get(&k) {
                    Some((f, _)) if f & WRITE_ONCE != 0 => assert_eq!(r, Err(Error::WriteProtected)),
                    _ => match r {
                        Ok(()) => {
                            model.insert(k, (0, v));
                        }
                        Err(e) => refusal_is_justified(&s, &k, len, e),
                    },
                }
            }
            Action::Remove { key } => {
                let k = key_name(key);
                let r = s.remove(&k);
                match model.get(&k) {
                    None => assert_eq!(r, Err(Error::NotFound)),
                    Some((f, _)) if f & WRITE_ONCE != 0 => assert_eq!(r, Err(Error::WriteProtected)),
                    Some(_) => {
                        // A delete record may not fit; then compaction removes the key instead.
                        r.unwrap();
                        model.remove(&k);
                    }
                }
            }
            Action::Incremental { key, chunks, fill } => {
                let k = key_name(key);
                let total: usize = chunks.iter().sum();
                let v = value(total, fill);
                let r = s.set_start(&k, total as u32, 0);
                if model.get(&k).is_some_and(|(f, _)| f & WRITE_ONCE != 0) {
                    assert_eq!(r, Err(Error::WriteProtected));
                    continue;
                }
                if let Err(e) = r {
                    refusal_is_justified(&s, &k, total, e);
                    continue;
                }
                assert_eq!(s.get(b"x", &mut []), Err(Error::Busy), "reads wait for the incremental set");
                let mut at = 0;
                for c in &chunks {
                    s.set_add_data(&v[at..at + c]).unwrap();
                    at += c;
                }
                s.set_finalize().unwrap();
                model.insert(k, (0, v));
            }
            Action::Reserved { len, fill } => {
                let v = value(len, fill);
                let r = s.reserved_data_set(&v);
                if reserved.is_some() {
                    assert_eq!(r, Err(Error::WriteProtected));
                } else {
                    r.unwrap();
                    reserved = Some(v);
                }
            }
            Action::Remount => {
                let f = s.into_flash();
                b = Bufs::with_work(work, 64);
                s = b.open_with(f, opts);
                s.mount().unwrap();
            }
            Action::Maintain => s.maintain_all().unwrap(),
            Action::Compact => s.compact().unwrap(),
            Action::Reset => {
                s.reset().unwrap();
                model.retain(|_, _| false);
                // As Mbed's reset() (`docs/format.md` §16).
                reserved = None;
            }
        }
        assert_same(&contents(&mut s), &model, "after step");
        let mut r = [0u8; 64];
        assert_eq!(s.reserved_data_get(&mut r).ok().map(|n| r[..n].to_vec()), reserved, "reserved data");
        if let Some(d) = mbed_disagreement(&mut s, format) {
            panic!("step {step}: the Mbed reader disagrees with the engine: {d}");
        }
    }
    let f = s.into_flash();
    assert_eq!(f.stats().double_programs, 0);
    let image = f.image().to_vec();
    b = Bufs::with_work(work, 64);
    // Mount follows the master record's format, whatever the options say.
    let mut s = b.open(f);
    s.mount().unwrap();
    assert_same(&contents(&mut s), &model, "after final remount");
    if let Some(d) = mbed_disagreement(&mut s, format) {
        panic!("after the final remount the Mbed reader disagrees with the engine: {d}");
    }
    if format == RecordFormat::Mbed && g.size <= 1 << 16 {
        assert_tdbparse_agrees(&image, &g, &model);
    }
}

/// One configuration of the matrix.
#[derive(Clone, Copy, Debug)]
struct Config {
    geometry: Geometry,
    format: RecordFormat,
}

/// The matrix: every read unit of 1, 4, 8, 16, 32 that divides each program unit of 1, 8,
/// 32, 256; 4 KiB and 128 KiB sectors; one-sector areas and larger ones (8 x 4 KiB and
/// 2 x 128 KiB, each with an odd sector left over); both record formats: 112 configurations.
/// Then 8 whose sectors are no larger than the area head ([`head_spanning`]): 120 in all.
fn matrix() -> Vec<Config> {
    let mut out = Vec::new();
    for p in [1u32, 8, 32, 256] {
        for r in [1u32, 4, 8, 16, 32].into_iter().filter(|&r| r <= p) {
            for (e, sectors) in [(4096u32, 2u32), (4096, 17), (131_072, 2), (131_072, 5)] {
                for format in [RecordFormat::Mbed, RecordFormat::Compact] {
                    let geometry = Geometry {
                        size: e * sectors,
                        read_size: r,
                        program_size: p,
                        erase_size: e,
                        erase_value: 0xFF,
                    };
                    assert_eq!(tdbstore::check_geometry(&geometry), Ok(()), "{geometry:?}");
                    out.push(Config { geometry, format });
                }
            }
        }
    }
    out.extend(head_spanning());
    out
}

/// Sectors smaller than the area head (reserved slot and master record: 768 bytes with
/// 256-byte units, 112 with 8-byte ones) or exactly as large (256 bytes with 64-byte units),
/// which Mbed's `reset_area` serves by erasing every sector the head overlaps: 8 more
/// configurations.
fn head_spanning() -> Vec<Config> {
    let mut out = Vec::new();
    for (size, r, p, e) in
        [(8192u32, 1u32, 256u32, 256u32), (8192, 4, 64, 256), (8192, 8, 8, 64), (4096, 1, 8, 8)]
    {
        for format in [RecordFormat::Mbed, RecordFormat::Compact] {
            let geometry = Geometry { size, read_size: r, program_size: p, erase_size: e, erase_value: 0xFF };
            assert_eq!(tdbstore::check_geometry(&geometry), Ok(()), "{geometry:?}");
            let lay = tdbstore::format::Layout::new(p, geometry.area_size());
            assert!(lay.first_record() >= e, "{geometry:?}: the head fits one sector");
            out.push(Config { geometry, format });
        }
    }
    out
}

/// Every configuration of the matrix, one seeded sequence of 40 steps each.
#[test]
fn every_geometry_of_the_matrix() {
    let before = MBED_IMAGES_CHECKED.load(Ordering::Relaxed);
    let m = matrix();
    assert_eq!(m.len(), 120);
    for (i, c) in m.iter().enumerate() {
        let actions = seeded_actions(0x6d61_7472 ^ i as u64, 40);
        let r = std::panic::catch_unwind(|| run_with(c.geometry, c.format, actions));
        if r.is_err() {
            panic!("matrix configuration {i} failed: {c:?}");
        }
    }
    println!(
        "model matrix: {} configurations (read 1/4/8/16/32 x program 1/8/32/256 x erase 4K/128K x small/large \
         areas x Mbed/compact, and 8 with sectors no larger than the area head), {} images checked by the \
         Mbed reader in this test",
        m.len(),
        MBED_IMAGES_CHECKED.load(Ordering::Relaxed) - before
    );
}

fn matrix_config() -> impl Strategy<Value = Config> {
    let m = matrix();
    (0..m.len()).prop_map(move |i| m[i])
}

const SMALL: Geometry =
    Geometry { size: 32768, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };
const BYTE: Geometry =
    Geometry { size: 32768, read_size: 1, program_size: 1, erase_size: 4096, erase_value: 0xFF };
const WORD32: Geometry =
    Geometry { size: 65536, read_size: 1, program_size: 32, erase_size: 8192, erase_value: 0xFF };

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn model_small_p8(actions in prop::collection::vec(action(), 1..60)) {
        run(SMALL, actions);
    }

    #[test]
    fn model_p1(actions in prop::collection::vec(action(), 1..60)) {
        run(BYTE, actions);
    }

    #[test]
    fn model_p32(actions in prop::collection::vec(action(), 1..60)) {
        run(WORD32, actions);
    }

    #[test]
    fn model_p32_compact_records(actions in prop::collection::vec(action(), 1..60)) {
        run_with(WORD32, RecordFormat::Compact, actions);
    }

    #[test]
    fn model_p8_compact_records(actions in prop::collection::vec(action(), 1..60)) {
        run_with(SMALL, RecordFormat::Compact, actions);
    }

    #[test]
    fn model_matrix(c in matrix_config(), actions in prop::collection::vec(action(), 1..50)) {
        run_with(c.geometry, c.format, actions);
    }
}
