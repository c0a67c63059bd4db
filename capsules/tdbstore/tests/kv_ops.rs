// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Every `hil::kv::KV` operation's success and error paths on the simulated flash, each
//! checked again after a remount (a new capsule over the same flash).
//!
//! ```text
//! these tests (this file) --hil::kv::KV--> TdbStoreKv --NorFlash--> SimHil (common) --> FlashSim
//! ```

mod common;

use common::{setup, Done, Event, Rig, GEOMETRY};
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

/// `add` and `update` are one conditional write each.
///
/// The engine decides after its one lookup, so the key's record is read once before the new
/// one is programmed (a lookup, then a `set` that looked the key up again, read it twice),
/// and a refused one programs nothing.
#[test]
fn add_and_update_read_the_key_once() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"k", b"v1"), Done::Set(Ok(())));
    let reads_before_first_program = |events: &[Event]| {
        events
            .iter()
            .take_while(|e| !matches!(e, Event::Program(..)))
            .filter(|e| matches!(e, Event::Read(..)))
            .count()
    };
    for (op, expect) in [("update", Done::Update(Ok(()))), ("add", Done::Add(Err(ErrorCode::NOSUPPORT)))] {
        rig.hil.events.borrow_mut().clear();
        let done = if op == "update" { rig.update(b"k", b"v2") } else { rig.add(b"k", b"v3") };
        assert_eq!(done, expect, "{op}");
        let events = rig.hil.events.borrow().clone();
        assert_eq!(reads_before_first_program(&events), 1, "{op}: {events:?}");
        if op == "add" {
            assert!(
                !events.iter().any(|e| matches!(e, Event::Program(..))),
                "a refused add programmed: {events:?}"
            );
        }
    }
    assert_eq!(rig.remount().value(b"k"), Ok(b"v2".to_vec()));
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
fn keys_without_a_stored_form_and_oversize_values_are_refused_without_touching_flash() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"keep", b"me"), Done::Set(Ok(())));
    let before = rig.hil.image();
    // No stored form: a valid key longer than 127 bytes, or one that needs escaping and is
    // longer than 94. Writes: SIZE at the call (HIL), buffers back; lookups: no such key.
    for long in [vec![b'k'; 128], vec![0; 95], vec![b'~'; 95], vec![b' '; 200]] {
        assert_eq!(rig.set(&long, b"v"), Done::Refused(ErrorCode::SIZE), "set {}", long.len());
        assert_eq!(rig.add(&long, b"v"), Done::Refused(ErrorCode::SIZE));
        assert_eq!(rig.update(&long, b"v"), Done::Refused(ErrorCode::SIZE));
        assert!(matches!(rig.get(&long, 8), Done::Get(Err(ErrorCode::NOSUPPORT), _)));
        assert_eq!(rig.delete(&long), Done::Delete(Err(ErrorCode::NOSUPPORT)));
        assert_eq!(rig.rec.keys.borrow().last().unwrap(), &long, "key buffer handed back as given");
    }
    // A value that can never fit in an area.
    let huge = vec![7u8; GEOMETRY.size as usize / 2];
    assert_eq!(rig.set(b"huge", &huge), Done::Set(Err(ErrorCode::SIZE)));
    assert_eq!(rig.hil.image(), before, "refusals wrote nothing");
    // The longest keys that fit.
    assert_eq!(rig.set(&[b'k'; 127], b"127"), Done::Set(Ok(())));
    assert_eq!(rig.set(&[0; 94], b"94"), Done::Set(Ok(())));
    let again = rig.remount();
    assert_eq!(again.value(&[b'k'; 127]), Ok(b"127".to_vec()));
    assert_eq!(again.value(&[0; 94]), Ok(b"94".to_vec()));
    assert_eq!(again.value(b"keep"), Ok(b"me".to_vec()));
    again.check_flash();
}

/// Whether the flash image holds these bytes (keys are stored in plain text).
fn image_has(rig: &Rig, bytes: &[u8]) -> bool {
    rig.hil.image().windows(bytes.len()).any(|w| w == bytes)
}

#[test]
fn any_key_works_and_is_stored_in_its_mapped_form() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    let mut first = b"First Key".to_vec();
    first.resize(16, 0);
    let keys: [&[u8]; 10] =
        [b"stats", &first, b"", b"a b", b"x\0y", b"TDBS", b"semi;colon", b"~tilde", b"~", &[0xFF]];
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(rig.set(k, &[i as u8; 3]), Done::Set(Ok(())), "set {k:?}");
        assert_eq!(rig.rec.keys.borrow().last().unwrap(), k, "key buffer handed back as given");
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(rig.value(k), Ok(vec![i as u8; 3]), "get {k:?}");
    }
    // Valid Mbed keys as they are (readable by Mbed OS), the others escaped.
    assert!(image_has(&rig, b"stats") && !image_has(&rig, b"~c3RhdHM"));
    assert!(image_has(&rig, b"~Rmlyc3QgS2V5AAAAAAAAAA"));
    assert!(image_has(&rig, b"~VERCUw"), "\"TDBS\" is an ordinary app key, escaped");
    // The real master record is untouched: the store still mounts, with every key.
    let again = rig.remount();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(again.value(k), Ok(vec![i as u8; 3]), "after remount: {k:?}");
    }
    for k in keys {
        assert_eq!(again.add(k, b"x"), Done::Add(Err(ErrorCode::NOSUPPORT)), "add existing {k:?}");
        assert_eq!(again.update(k, b"new"), Done::Update(Ok(())));
        assert_eq!(again.value(k), Ok(b"new".to_vec()));
        assert_eq!(again.delete(k), Done::Delete(Ok(())));
        assert_eq!(again.delete(k), Done::Delete(Err(ErrorCode::NOSUPPORT)), "delete twice {k:?}");
        assert_eq!(again.update(k, b"x"), Done::Update(Err(ErrorCode::NOSUPPORT)));
        assert_eq!(again.add(k, b"back"), Done::Add(Ok(())));
    }
    assert_eq!(again.remount().value(&first), Ok(b"back".to_vec()));
    again.check_flash();
}
