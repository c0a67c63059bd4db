// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Every `hil::kv::KV` operation's success and error paths on the simulated flash, each
//! checked again after a remount (a new capsule over the same flash).
//!
//! ```text
//! these tests (this file) --hil::kv::KV--> TdbStoreKv --NorFlash--> SimHil (common) --> FlashSim
//! ```

mod common;

use common::{setup, Done, Rig, GEOMETRY};
use flash_sim::FlashSim;
use kernel::ErrorCode;

#[test]
fn set_then_get_and_remount() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"stats", b"run 1"), Done::Set(Ok(())));
    assert_eq!(rig.get(b"stats", 64), Done::Get(Ok(()), b"run 1".to_vec()), "active range = value");
    assert_eq!(rig.rec.keys.borrow().last().unwrap(), b"stats", "key buffer handed back");
    assert_eq!(rig.set(b"stats", b"run 2!"), Done::Set(Ok(())), "overwrite");
    assert_eq!(rig.set(b"empty", b""), Done::Set(Ok(())), "empty value");
    let again = rig.remount();
    assert_eq!(again.value(b"stats"), Ok(b"run 2!".to_vec()));
    assert_eq!(again.value(b"empty"), Ok(vec![]));
    again.check_flash();
}

#[test]
fn get_with_a_short_buffer_copies_what_fits_and_says_size() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    let value: Vec<u8> = (0..100).collect();
    assert_eq!(rig.set(b"v", &value), Done::Set(Ok(())));
    assert_eq!(rig.get(b"v", 10), Done::Get(Err(ErrorCode::SIZE), value[..10].to_vec()));
    assert_eq!(rig.get(b"v", 0), Done::Get(Err(ErrorCode::SIZE), vec![]));
    assert_eq!(rig.get(b"v", 99), Done::Get(Err(ErrorCode::SIZE), value[..99].to_vec()));
    assert_eq!(rig.get(b"v", 100), Done::Get(Ok(()), value.clone()));
    assert_eq!(rig.get(b"v", 512), Done::Get(Ok(()), value.clone()));
    let again = rig.remount();
    assert_eq!(again.get(b"v", 10), Done::Get(Err(ErrorCode::SIZE), value[..10].to_vec()));
}

#[test]
fn missing_keys_are_nosupport() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert!(matches!(rig.get(b"nope", 64), Done::Get(Err(ErrorCode::NOSUPPORT), _)));
    assert_eq!(rig.delete(b"nope"), Done::Delete(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(rig.update(b"nope", b"x"), Done::Update(Err(ErrorCode::NOSUPPORT)));
    let again = rig.remount();
    assert_eq!(again.value(b"nope"), Err(ErrorCode::NOSUPPORT), "update did not create it");
}

#[test]
fn add_creates_only_new_keys() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.add(b"k", b"first"), Done::Add(Ok(())));
    assert_eq!(rig.add(b"k", b"second"), Done::Add(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(rig.value(b"k"), Ok(b"first".to_vec()));
    let again = rig.remount();
    assert_eq!(again.value(b"k"), Ok(b"first".to_vec()));
    assert_eq!(again.add(b"k", b"third"), Done::Add(Err(ErrorCode::NOSUPPORT)), "after remount too");
    assert_eq!(again.add(b"k2", b"new"), Done::Add(Ok(())));
}

#[test]
fn update_changes_only_existing_keys() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"k", b"v1"), Done::Set(Ok(())));
    assert_eq!(rig.update(b"k", b"v2"), Done::Update(Ok(())));
    assert_eq!(rig.value(b"k"), Ok(b"v2".to_vec()));
    let again = rig.remount();
    assert_eq!(again.value(b"k"), Ok(b"v2".to_vec()));
    assert_eq!(again.update(b"k", b"v3"), Done::Update(Ok(())));
    assert_eq!(again.remount().value(b"k"), Ok(b"v3".to_vec()));
}

#[test]
fn delete_removes_keys_for_good() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"a", b"1"), Done::Set(Ok(())));
    assert_eq!(rig.set(b"b", b"2"), Done::Set(Ok(())));
    assert_eq!(rig.delete(b"a"), Done::Delete(Ok(())));
    assert_eq!(rig.rec.keys.borrow().last().unwrap(), b"a");
    assert_eq!(rig.value(b"a"), Err(ErrorCode::NOSUPPORT));
    assert_eq!(rig.delete(b"a"), Done::Delete(Err(ErrorCode::NOSUPPORT)));
    let again = rig.remount();
    assert_eq!(again.value(b"a"), Err(ErrorCode::NOSUPPORT));
    assert_eq!(again.value(b"b"), Ok(b"2".to_vec()));
    assert_eq!(again.add(b"a", b"back"), Done::Add(Ok(())), "a deleted key can be added again");
}

#[test]
fn invalid_keys_and_oversize_values_are_refused_without_touching_flash() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"keep", b"me"), Done::Set(Ok(())));
    let before = rig.hil.image();
    let long = [b'k'; 128];
    for bad in [&b""[..], b"a b", b"a*b", b"x\0y", b"TDBS", b"semi;colon"] {
        assert!(matches!(rig.get(bad, 8), Done::Get(Err(ErrorCode::INVAL), _)), "get {bad:?}");
        assert_eq!(rig.set(bad, b"v"), Done::Set(Err(ErrorCode::INVAL)), "set {bad:?}");
        assert_eq!(rig.add(bad, b"v"), Done::Add(Err(ErrorCode::INVAL)), "add {bad:?}");
        assert_eq!(rig.update(bad, b"v"), Done::Update(Err(ErrorCode::INVAL)), "update {bad:?}");
        assert_eq!(rig.delete(bad), Done::Delete(Err(ErrorCode::INVAL)), "delete {bad:?}");
    }
    // Too long: SIZE for set-type calls (HIL), INVAL where SIZE would mean "truncated".
    assert!(matches!(rig.get(&long, 8), Done::Get(Err(ErrorCode::INVAL), _)));
    assert_eq!(rig.delete(&long), Done::Delete(Err(ErrorCode::INVAL)));
    assert_eq!(rig.set(&long, b"v"), Done::Set(Err(ErrorCode::SIZE)));
    assert_eq!(rig.add(&long, b"v"), Done::Add(Err(ErrorCode::SIZE)));
    assert_eq!(rig.update(&long, b"v"), Done::Update(Err(ErrorCode::SIZE)));
    // A value that can never fit in an area.
    let huge = vec![7u8; GEOMETRY.size as usize / 2];
    assert_eq!(rig.set(b"huge", &huge), Done::Set(Err(ErrorCode::SIZE)));
    assert_eq!(rig.hil.image(), before, "refusals wrote nothing");
    // Every other byte is a valid key byte, up to 127 bytes.
    let odd: Vec<u8> = (1u8..=255).filter(|b| !b" */?:;\"|<>\\".contains(b)).take(127).collect();
    assert_eq!(odd.len(), 127);
    assert_eq!(rig.set(&odd, b"binary key"), Done::Set(Ok(())));
    assert_eq!(rig.set(&[0xFF], &[0u8, 0xFF, 0]), Done::Set(Ok(())));
    let again = rig.remount();
    assert_eq!(again.value(&odd), Ok(b"binary key".to_vec()));
    assert_eq!(again.value(&[0xFF]), Ok(vec![0, 0xFF, 0]));
    assert_eq!(again.value(b"keep"), Ok(b"me".to_vec()));
}
