//! Random operation sequences against a `BTreeMap` model, across remounts, compactions and
//! maintenance, on three geometries. Every step's result must match the model's, and the
//! simulator must never see a unit programmed twice.

mod common;

use common::*;
use proptest::prelude::*;
use tdbstore::format::RecordFormat;
use tdbstore::{Error, Geometry, StoreOptions, WRITE_ONCE};

#[derive(Clone, Debug)]
enum Action {
    Set { key: u8, len: usize, fill: u8, once: bool },
    Remove { key: u8 },
    Incremental { key: u8, chunks: Vec<usize>, fill: u8 },
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
        2 => Just(Action::Remount),
        2 => Just(Action::Maintain),
        1 => Just(Action::Compact),
        1 => Just(Action::Reset),
    ]
}

fn key_name(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn run(g: Geometry, actions: Vec<Action>) {
    run_with(g, RecordFormat::Mbed, actions)
}

fn run_with(g: Geometry, format: RecordFormat, actions: Vec<Action>) {
    let opts = StoreOptions { record_format: format, ..StoreOptions::default() };
    let mut model = Contents::new();
    let mut flash = Some(blank(&g));
    let mut b = Bufs::new(64);
    let mut s = b.open_with(flash.take().unwrap(), opts);
    s.mount().unwrap();
    for a in actions {
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
                        Err(Error::Full) => {
                            let i = s.store().info();
                            let lay = s.store().layout();
                            let need = lay.first_record()
                                + i.live_bytes
                                + lay.record_size(k.len() as u32, len as u32).unwrap();
                            assert!(need > i.area_size, "Full with room: {i:?}");
                        }
                        Err(e) => panic!("set failed: {e:?}"),
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
                        // A tombstone may not fit; then compaction removes the key instead.
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
                if r == Err(Error::Full) {
                    continue;
                }
                r.unwrap();
                assert_eq!(s.get(b"x", &mut []), Err(Error::Busy), "reads wait for the incremental set");
                let mut at = 0;
                for c in &chunks {
                    s.set_add_data(&v[at..at + c]).unwrap();
                    at += c;
                }
                s.set_finalize().unwrap();
                model.insert(k, (0, v));
            }
            Action::Remount => {
                let f = s.into_flash();
                b = Bufs::new(64);
                s = b.open_with(f, opts);
                s.mount().unwrap();
            }
            Action::Maintain => s.maintain_all().unwrap(),
            Action::Compact => s.compact().unwrap(),
            Action::Reset => {
                s.reset().unwrap();
                model.retain(|_, _| false);
            }
        }
        assert_same(&contents(&mut s), &model, "after step");
    }
    let f = s.into_flash();
    assert_eq!(f.stats().double_programs, 0);
    let image = f.image().to_vec();
    b = Bufs::new(64);
    // Mount follows the master record's format, whatever the options say.
    let mut s = b.open(f);
    s.mount().unwrap();
    assert_same(&contents(&mut s), &model, "after final remount");
    if format == RecordFormat::Mbed {
        assert_tdbparse_agrees(&image, &g, &model);
    }
}

const SMALL: Geometry =
    Geometry { size: 32768, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };
const BYTE: Geometry =
    Geometry { size: 32768, read_size: 1, program_size: 1, erase_size: 4096, erase_value: 0xFF };
const WORD32: Geometry =
    Geometry { size: 65536, read_size: 1, program_size: 32, erase_size: 8192, erase_value: 0xFF };

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

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
}
