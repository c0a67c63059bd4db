// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The capsule's limits and error handling on the simulated flash: one operation at a
//! time, no synchronous completions, full store and index, garbage collection, flash
//! errors, unexpected callbacks, buffer sizes, and the error-mapping table.
//!
//! ```text
//! these tests (this file) --hil::kv::KV--> TdbStoreKv --NorFlash--> SimHil (common) --> FlashSim
//! ```

mod common;

use capsules_tdbstore::tdbstore_kv::{error_code, Access, MountState};
use common::{capsule, leak, setup, Done, Event, Kind, Rig, SimHil, GEOMETRY};
use flash_sim::FlashSim;
use kernel::deferred_call::DeferredCall;
use kernel::hil::kv::KV;
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::NorFlashClient;
use tdbstore::{Error, IoError, IoKind, KeyError, Store};

#[test]
fn one_user_operation_at_a_time() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"k", b"v"), Done::Set(Ok(())));
    rig.start_get(b"k", 16).unwrap();
    assert_eq!(rig.start_get(b"k", 16), Err(ErrorCode::BUSY), "buffers come back with BUSY");
    assert_eq!(rig.start_set("set", b"k", b"w"), Err(ErrorCode::BUSY));
    assert_eq!(rig.start_set("add", b"n", b"w"), Err(ErrorCode::BUSY));
    assert_eq!(rig.start_set("update", b"k", b"w"), Err(ErrorCode::BUSY));
    assert_eq!(rig.start_delete(b"k"), Err(ErrorCode::BUSY));
    assert_eq!(rig.call(|| rig.kv.garbage_collect()), Err(ErrorCode::BUSY));
    rig.settle();
    assert_eq!(rig.rec.take(), Done::Get(Ok(()), b"v".to_vec()), "the first one completes");
    // The same while the operation waits for the first mount.
    let fresh = Rig::unmounted(SimHil::new(FlashSim::new(GEOMETRY)));
    fresh.start_set("set", b"k", b"v").unwrap();
    assert_eq!(fresh.start_get(b"k", 4), Err(ErrorCode::BUSY));
    fresh.settle();
    assert_eq!(fresh.rec.take(), Done::Set(Ok(())));
}

#[test]
fn completions_never_happen_inside_the_call() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    // A key whose hash is not in the RAM index finishes without any flash access, and an
    // invalid key is refused by the engine at once: both still complete by deferred call.
    for key in [&b"absent"[..], b""] {
        rig.start_get(key, 4).unwrap();
        assert!(rig.rec.done.borrow().is_empty());
        assert!(!rig.hil.is_pending());
        assert!(DeferredCall::has_tasks());
        rig.settle();
        assert!(matches!(rig.rec.take(), Done::Get(Err(_), _)));
    }
    assert_eq!(rig.rec.sync_callbacks.get(), 0);
}

#[test]
fn a_full_store_is_nomem_and_keeps_its_data() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    let value = [0x5A; 1000];
    let mut n = 0;
    loop {
        match rig.set(format!("key{n}").as_bytes(), &value) {
            Done::Set(Ok(())) => n += 1,
            Done::Set(Err(ErrorCode::NOMEM)) => break,
            other => panic!("{other:?}"),
        }
        assert!(n < 100);
    }
    assert!(n > 20, "{n} values of 1000 bytes in a 32 KiB area");
    assert_eq!(rig.add(b"more", &value), Done::Add(Err(ErrorCode::NOMEM)));
    let again = rig.remount();
    for i in 0..n {
        assert_eq!(again.value(format!("key{i}").as_bytes()), Ok(value.to_vec()));
    }
    // Room comes back after a delete (the next write compacts).
    assert_eq!(again.delete(b"key0"), Done::Delete(Ok(())));
    assert_eq!(again.set(b"more", b"x"), Done::Set(Ok(())));
    assert_eq!(again.remount().value(b"more"), Ok(b"x".to_vec()));
    again.check_flash();
}

#[test]
fn a_full_ram_index_is_nomem() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let rig = Rig::with(hil, capsule::<4, 512>(hil));
    for k in [b"a", b"b", b"c", b"d"] {
        assert_eq!(rig.set(k, k), Done::Set(Ok(())));
    }
    assert_eq!(rig.set(b"e", b"e"), Done::Set(Err(ErrorCode::NOMEM)));
    assert_eq!(rig.set(b"a", b"A"), Done::Set(Ok(())), "existing keys still update");
    assert_eq!(rig.delete(b"b"), Done::Delete(Ok(())));
    assert_eq!(rig.set(b"e", b"e"), Done::Set(Ok(())), "a freed entry is reused");
    let again = rig.remount();
    assert_eq!(again.value(b"a"), Ok(b"A".to_vec()));
    assert_eq!(again.value(b"e"), Ok(b"e".to_vec()));
}

#[test]
fn garbage_collect_compacts_and_keeps_values() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    for i in 0..20u32 {
        assert_eq!(rig.set(b"counter", &i.to_le_bytes()), Done::Set(Ok(())));
    }
    assert_eq!(rig.set(b"gone", b"x"), Done::Set(Ok(())));
    assert_eq!(rig.delete(b"gone"), Done::Delete(Ok(())));
    let before = rig.kv.info().unwrap();
    assert_eq!(rig.gc(), Done::Gc(Ok(())));
    let after = rig.kv.info().unwrap();
    assert_eq!(after.compactions, before.compactions + 1);
    assert!(after.free_offset < before.free_offset);
    assert_ne!(after.active_area, before.active_area);
    assert_eq!(rig.value(b"counter"), Ok(19u32.to_le_bytes().to_vec()));
    let again = rig.remount();
    assert_eq!(again.value(b"counter"), Ok(19u32.to_le_bytes().to_vec()));
    assert_eq!(again.value(b"gone"), Err(ErrorCode::NOSUPPORT));
    assert_eq!(again.gc(), Done::Gc(Ok(())), "after a remount too");
    again.check_flash();
}

#[test]
fn flash_errors_fail_the_operation_and_the_store_recovers() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"k", b"old"), Done::Set(Ok(())));
    // An uncorrectable read (FAIL from the driver) fails the get.
    rig.hil.fail_next.set(Some((Kind::Read, ErrorCode::FAIL)));
    assert!(matches!(rig.get(b"k", 8), Done::Get(Err(ErrorCode::FAIL), _)));
    assert_eq!(rig.value(b"k"), Ok(b"old".to_vec()));
    // A failed program fails the set; the old value stays, the next set works.
    rig.hil.fail_next.set(Some((Kind::Program, ErrorCode::FAIL)));
    assert_eq!(rig.set(b"k", b"new"), Done::Set(Err(ErrorCode::FAIL)));
    assert_eq!(rig.value(b"k"), Ok(b"old".to_vec()));
    assert_eq!(rig.set(b"k", b"newer"), Done::Set(Ok(())));
    // A driver that refuses at once (BUSY, RESERVE) is a failure too.
    rig.hil.refuse_next.set(Some((Kind::Program, ErrorCode::RESERVE)));
    assert_eq!(rig.set(b"k", b"x"), Done::Set(Err(ErrorCode::FAIL)));
    rig.hil.refuse_next.set(Some((Kind::Read, ErrorCode::BUSY)));
    assert!(matches!(rig.get(b"k", 8), Done::Get(Err(ErrorCode::FAIL), _)));
    assert_eq!(rig.value(b"k"), Ok(b"newer".to_vec()));
    // A failed erase (here in the idle-time erase of the old area after a compaction)
    // stops that background work and nothing else.
    rig.hil.fail_next.set(Some((Kind::Erase, ErrorCode::FAIL)));
    assert_eq!(rig.gc(), Done::Gc(Ok(())));
    assert_eq!(rig.hil.fail_next.get(), None, "an erase failed");
    assert!(rig.kv.is_idle());
    assert_eq!(rig.value(b"k"), Ok(b"newer".to_vec()));
    assert_eq!(rig.set(b"k", b"newest"), Done::Set(Ok(())));
    assert_eq!(rig.kv.info().unwrap().standby_clean, GEOMETRY.size / 2, "the next idle period erased it");
    assert_eq!(rig.gc(), Done::Gc(Ok(())));
    // A compaction whose standby erase fails: a second garbage collection right after the
    // first, before any idle time erased the old area.
    assert_eq!(rig.call(|| rig.kv.garbage_collect()), Ok(()));
    while rig.rec.done.borrow().is_empty() {
        assert!(common::step(rig.hil));
    }
    assert_eq!(rig.rec.take(), Done::Gc(Ok(())));
    rig.hil.fail_next.set(Some((Kind::Erase, ErrorCode::FAIL)));
    assert_eq!(rig.gc(), Done::Gc(Err(ErrorCode::FAIL)));
    assert_eq!(rig.hil.fail_next.get(), None, "the compaction's erase failed");
    assert_eq!(rig.kv.mount_state(), MountState::Unmounted, "the engine asks for a new mount");
    assert_eq!(rig.value(b"k"), Ok(b"newest".to_vec()), "the next operation mounts again");
    assert_eq!(rig.kv.mount_state(), MountState::Mounted);
    assert_eq!(rig.gc(), Done::Gc(Ok(())));
    assert_eq!(rig.remount().value(b"k"), Ok(b"newest".to_vec()));
    rig.check_flash();
}

#[test]
fn unexpected_flash_callbacks_do_not_panic() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"k", b"v"), Done::Set(Ok(())));
    // Idle: ignored.
    rig.kv.read_complete(SubSliceMut::new(leak(&[0; 8])), Ok(()));
    rig.kv.program_complete(SubSliceMut::new(leak(&[0; 8])), Err(ErrorCode::FAIL));
    rig.kv.erase_complete(Ok(()));
    rig.settle();
    assert!(rig.rec.done.borrow().is_empty());
    assert_eq!(rig.value(b"k"), Ok(b"v".to_vec()));
    // The wrong callback while a read is awaited: that operation fails, nothing else.
    rig.start_get(b"k", 8).unwrap();
    while rig.hil.pending_kind() != Some(Kind::Read) {
        assert!(common::step(rig.hil));
    }
    rig.kv.erase_complete(Ok(()));
    rig.settle();
    assert!(matches!(rig.rec.take(), Done::Get(Err(ErrorCode::FAIL), _)));
    assert_eq!(rig.value(b"k"), Ok(b"v".to_vec()), "the late real completion changed nothing");
    assert_eq!(rig.set(b"k", b"w"), Done::Set(Ok(())));
    assert_eq!(rig.remount().value(b"k"), Ok(b"w".to_vec()));
}

#[test]
fn the_smallest_work_buffer_works() {
    let _g = setup();
    let min = Store::min_work_len(&GEOMETRY);
    assert_eq!(min, 192);
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let rig = Rig::with(hil, capsule::<8, 192>(hil));
    let key = [b'k'; 127];
    let value: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    assert_eq!(rig.set(&key, &value), Done::Set(Ok(())));
    assert_eq!(rig.value(&key), Ok(value.clone()));
    assert_eq!(rig.gc(), Done::Gc(Ok(())));
    assert_eq!(rig.remount().value(&key), Ok(value));
}

#[test]
fn a_driver_that_returns_another_buffer_fails_the_operation_not_the_kernel() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    assert_eq!(rig.set(b"k", b"v"), Done::Set(Ok(())));
    // A read is under way on the engine's lent buffer; the driver (buggy) completes it with
    // a buffer of its own. The engine does not take it, so the get fails.
    rig.start_get(b"k", 8).unwrap();
    while rig.hil.pending_kind() != Some(Kind::Read) {
        assert!(common::step(rig.hil));
    }
    rig.kv.read_complete(SubSliceMut::new(leak(&[0; 8])), Ok(()));
    rig.settle();
    assert!(matches!(rig.rec.take(), Done::Get(Err(ErrorCode::FAIL), _)));
    // The real completion brings the engine's buffer home; the next operation mounts again.
    assert_eq!(rig.value(b"k"), Ok(b"v".to_vec()));
    assert_eq!(rig.set(b"k", b"w"), Done::Set(Ok(())));
    assert_eq!(rig.remount().value(b"k"), Ok(b"w".to_vec()));
    rig.check_flash();
}

#[test]
fn the_error_mapping_table() {
    use Access::{Lookup, Write};
    let cases = [
        (Error::NotFound, ErrorCode::NOSUPPORT, ErrorCode::NOSUPPORT),
        (Error::WriteProtected, ErrorCode::NOSUPPORT, ErrorCode::NOSUPPORT),
        (Error::Full, ErrorCode::NOMEM, ErrorCode::NOMEM),
        (Error::IndexFull, ErrorCode::NOMEM, ErrorCode::NOMEM),
        (Error::InvalidKey(KeyError::TooLong), ErrorCode::INVAL, ErrorCode::SIZE),
        (Error::ValueTooLarge, ErrorCode::INVAL, ErrorCode::SIZE),
        (Error::InvalidKey(KeyError::Empty), ErrorCode::INVAL, ErrorCode::INVAL),
        (Error::InvalidKey(KeyError::ForbiddenByte(b'*')), ErrorCode::INVAL, ErrorCode::INVAL),
        (Error::InvalidKey(KeyError::Reserved), ErrorCode::INVAL, ErrorCode::INVAL),
        (Error::InvalidFlags, ErrorCode::INVAL, ErrorCode::INVAL),
        (Error::Busy, ErrorCode::BUSY, ErrorCode::BUSY),
        (Error::Foreign, ErrorCode::FAIL, ErrorCode::FAIL),
        (Error::NotMounted, ErrorCode::FAIL, ErrorCode::FAIL),
        (Error::Corrupt, ErrorCode::FAIL, ErrorCode::FAIL),
        (Error::SizeMismatch, ErrorCode::FAIL, ErrorCode::FAIL),
        (Error::Io(IoKind::Read, IoError::Ecc), ErrorCode::FAIL, ErrorCode::FAIL),
        (Error::Exists, ErrorCode::NOSUPPORT, ErrorCode::NOSUPPORT),
        (Error::Internal, ErrorCode::FAIL, ErrorCode::FAIL),
    ];
    for (e, lookup, write) in cases {
        assert_eq!((error_code(e, Lookup), error_code(e, Write)), (lookup, write), "{e:?}");
    }
}

#[test]
fn flash_traffic_is_whole_units_in_range() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    for i in 0..30u32 {
        assert_eq!(
            rig.set(format!("k{}", i % 7).as_bytes(), &vec![i as u8; 100 + i as usize * 13]),
            Done::Set(Ok(()))
        );
    }
    assert_eq!(rig.gc(), Done::Gc(Ok(())));
    rig.settle();
    for e in rig.hil.events.borrow().iter() {
        match *e {
            Event::Program(addr, len) => assert!(addr % 32 == 0 && len % 32 == 0 && len <= 512, "{e:?}"),
            Event::Read(addr, len) => assert!(addr as usize + len <= GEOMETRY.size as usize && len <= 512),
            Event::Erase(addr) => assert_eq!(addr % GEOMETRY.erase_size, 0),
            Event::Client(_) => {}
        }
    }
    rig.check_flash();
}
