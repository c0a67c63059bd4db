// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Mounting, formatting and idle-time maintenance on the simulated flash: foreign and
//! blank regions, mount at boot or on first use, power cuts, erase-ahead.
//!
//! ```text
//! these tests (this file) --hil::kv::KV--> TdbStoreKv --NorFlash--> SimHil (common) --> FlashSim
//! ```

mod common;

use capsules_tdbstore::tdbstore_kv::MountState;
use common::{capsule, noise, setup, step, take_debug_output, Done, Event, Kind, Rig, SimHil, GEOMETRY};
use flash_sim::{Cut, FlashSim};
use kernel::hil::kv::KV;
use kernel::ErrorCode;
use tdbstore::{Error, GeometryError};

const AREA: u32 = GEOMETRY.size / 2;

fn foreign() -> FlashSim {
    FlashSim::from_image(GEOMETRY, noise(GEOMETRY.size as usize, 0x9E37_79B9)).unwrap()
}

/// Every operation fails and the region is left exactly as it was.
fn assert_unusable(rig: &Rig, image: &[u8]) {
    assert_eq!(rig.get(b"k", 8), Done::Refused(ErrorCode::FAIL));
    assert_eq!(rig.set(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(rig.add(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(rig.update(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(rig.delete(b"k"), Done::Refused(ErrorCode::FAIL));
    // Reported in the callback: upstream's permission layer would stay BUSY otherwise.
    assert_eq!(rig.gc(), Done::Gc(Err(ErrorCode::FAIL)));
    assert_eq!(rig.hil.image(), image, "the region was not touched");
    let s = rig.hil.sim.borrow();
    assert_eq!((s.stats().programs, s.stats().erases), (0, 0));
}

#[test]
fn a_foreign_region_is_reported_once_and_left_untouched_until_formatted() {
    let _g = setup();
    let image = foreign().image().to_vec();
    let rig = Rig::new(foreign());
    assert_eq!(rig.kv.mount_state(), MountState::Failed(Error::Foreign));
    let out = take_debug_output();
    assert_eq!(out.matches("tdbstore").count(), 1, "one message: {out:?}");
    assert!(out.contains("holds no TDBStore"), "{out:?}");
    assert_unusable(&rig, &image);
    assert_eq!(take_debug_output(), "", "refused operations print nothing more");
    // The explicit way out.
    rig.kv.format().unwrap();
    rig.settle();
    assert_eq!(rig.kv.mount_state(), MountState::Mounted);
    assert!(take_debug_output().contains("formatted"));
    assert_eq!(rig.set(b"k", b"v"), Done::Set(Ok(())));
    let again = rig.remount();
    assert_eq!(again.kv.mount_state(), MountState::Mounted);
    assert_eq!(again.value(b"k"), Ok(b"v".to_vec()));
    again.check_flash();
}

#[test]
fn a_foreign_region_found_on_first_use_fails_that_operation() {
    let _g = setup();
    let image = foreign().image().to_vec();
    let rig = Rig::unmounted(SimHil::new(foreign()));
    // Nothing mounted yet: the operation is accepted, mounts, and fails.
    assert_eq!(rig.set(b"k", b"v"), Done::Set(Err(ErrorCode::FAIL)));
    assert_eq!(take_debug_output().matches("tdbstore").count(), 1);
    assert_unusable(&rig, &image);
    // A new instance (reboot) finds the same; formatting while an operation is queued
    // runs the format first.
    let again = Rig::unmounted(rig.hil);
    again.kv.format().unwrap();
    assert_eq!(again.set(b"k", b"v"), Done::Set(Ok(())), "accepted: a format is pending");
    assert_eq!(again.value(b"k"), Ok(b"v".to_vec()));
}

#[test]
fn a_blank_region_is_formatted_on_first_use() {
    let _g = setup();
    let rig = Rig::unmounted(SimHil::new(FlashSim::new(GEOMETRY)));
    assert_eq!(rig.kv.mount_state(), MountState::Unmounted);
    assert_eq!(rig.add(b"k", b"v"), Done::Add(Ok(())));
    assert_eq!(rig.kv.mount_state(), MountState::Mounted);
    assert!(take_debug_output().contains("formatted"));
    assert_eq!(rig.remount().value(b"k"), Ok(b"v".to_vec()));
}

#[test]
fn mount_at_boot_starts_from_a_deferred_call() {
    let _g = setup();
    let rig = Rig::unmounted(SimHil::new(FlashSim::new(GEOMETRY)));
    rig.kv.mount().unwrap();
    rig.kv.mount().unwrap();
    assert!(!rig.hil.is_pending(), "no flash access inside the call");
    rig.settle();
    assert_eq!(rig.kv.mount_state(), MountState::Mounted);
    assert_eq!(take_debug_output().matches("mounted").count(), 1, "two requests, one mount");
    assert!(rig.kv.is_idle());
}

#[test]
fn an_unusable_geometry_fails_every_operation() {
    let _g = setup();
    // One sector: no room for two areas.
    let one = flash_sim::Geometry { size: 8192, ..GEOMETRY };
    let rig = Rig::unmounted(SimHil::new(FlashSim::new(one)));
    assert_eq!(rig.kv.mount_state(), MountState::Unconfigured(GeometryError::AreaSize));
    assert!(take_debug_output().contains("cannot use this flash region"));
    assert_eq!(rig.kv.mount(), Err(ErrorCode::FAIL));
    assert_eq!(rig.kv.format(), Err(ErrorCode::FAIL));
    assert_eq!(rig.kv.info(), None);
    assert_eq!(rig.get(b"k", 8), Done::Refused(ErrorCode::FAIL));
    assert_eq!(rig.set(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(rig.gc(), Done::Gc(Err(ErrorCode::FAIL)));
    assert_eq!(rig.hil.count(|e| !matches!(e, Event::Client(_))), 0, "no flash access");
}

#[test]
fn an_engine_geometry_the_flash_does_not_have_is_refused() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    // The engine told of 16 KiB sectors on flash with 8 KiB ones: the size fits, the
    // sectors do not.
    let g = tdbstore::Geometry { erase_size: 2 * GEOMETRY.erase_size, ..GEOMETRY };
    let work: &'static mut [u8] = common::leak(&[0; 512]);
    let index: &'static mut [tdbstore::IndexEntry] =
        Box::leak(vec![tdbstore::IndexEntry::default(); 32].into_boxed_slice());
    let store = tdbstore::Store::new(g, tdbstore::StoreOptions::default(), work, index);
    assert!(store.is_ok());
    common::count_deferred_call();
    let kv = capsules_tdbstore::tdbstore_kv::TdbStoreKv::new(hil, store);
    assert_eq!(kv.mount_state(), MountState::Unconfigured(GeometryError::UnitsNotNested));
    assert!(take_debug_output().contains("cannot use this flash region"));
}

#[test]
fn a_power_cut_during_a_set_keeps_the_old_value() {
    let _g = setup();
    // The set programs the record's body, then its header: cut either, before or halfway.
    for (n, cut) in [(0, Cut::Before), (0, Cut::Halfway), (1, Cut::Before), (1, Cut::Halfway)] {
        let rig = Rig::new(FlashSim::new(GEOMETRY));
        assert_eq!(rig.set(b"k", b"old value"), Done::Set(Ok(())));
        {
            let mut s = rig.hil.sim.borrow_mut();
            let at = s.mutating_ops() + n;
            s.cut_power_at(at, cut);
        }
        let r = rig.set(b"k", &[0x42; 300]);
        assert_eq!(rig.hil.sim.borrow().pending_cut(), None, "cut {n} hit the set");
        rig.hil.sim.borrow_mut().power_on();
        // Reboot: a new capsule over the flash as the cut left it.
        let again = rig.remount();
        assert_eq!(again.kv.mount_state(), MountState::Mounted);
        let v = again.value(b"k").unwrap();
        match r {
            Done::Set(Err(ErrorCode::FAIL)) => assert_eq!(v, b"old value", "cut {n} {cut:?}"),
            other => panic!("cut {n}: {other:?}"),
        }
        assert_eq!(again.set(b"k", b"after"), Done::Set(Ok(())), "writes work after the cut");
        assert_eq!(again.remount().value(b"k"), Ok(b"after".to_vec()));
        again.check_flash();
    }
}

/// Overwrites a few keys until the log spans most of the area, then compacts: the old area
/// (now the standby) is dirty in every sector.
fn dirty_standby(rig: &Rig) {
    for i in 0..26u32 {
        assert_eq!(rig.set(format!("k{}", i % 3).as_bytes(), &[i as u8; 1000]), Done::Set(Ok(())));
    }
    assert_eq!(rig.call(|| rig.kv.garbage_collect()), Ok(()));
    while rig.rec.done.borrow().is_empty() {
        assert!(step(rig.hil));
    }
    assert_eq!(rig.rec.take(), Done::Gc(Ok(())));
}

#[test]
fn idle_time_erases_the_standby_area_ahead_of_need() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    let info = rig.kv.info().unwrap();
    assert_eq!(info.standby_clean, AREA, "checked after the mount, while idle");
    dirty_standby(&rig);
    assert!(rig.kv.info().unwrap().standby_clean < AREA);
    assert!(!rig.kv.is_idle(), "background work is due");
    let erases = rig.hil.count(|e| matches!(e, Event::Erase(_)));
    rig.settle();
    assert!(rig.kv.is_idle());
    assert_eq!(rig.kv.info().unwrap().standby_clean, AREA);
    let erased = rig.hil.count(|e| matches!(e, Event::Erase(_))) - erases;
    assert!(erased >= 3, "the old area's dirty sectors were erased while idle ({erased})");
    // So the next compaction erases nothing.
    let before = rig.hil.count(|e| matches!(e, Event::Erase(_)));
    assert_eq!(rig.call(|| rig.kv.garbage_collect()), Ok(()));
    while rig.rec.done.borrow().is_empty() {
        assert!(step(rig.hil));
    }
    assert_eq!(rig.rec.take(), Done::Gc(Ok(())));
    assert_eq!(rig.hil.count(|e| matches!(e, Event::Erase(_))), before, "no erase inside the compaction");
    rig.settle();
    rig.check_flash();
}

#[test]
fn idle_time_compacts_before_a_write_would_have_to() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    let free = || AREA - rig.kv.info().unwrap().free_offset;
    // The component compacts early once less than an eighth of a sector (1 KiB here) is
    // free. Overwrite one key until the next write leaves less than that.
    let set = |v: &[u8]| {
        rig.start_set("set", b"k", v).unwrap();
        while rig.rec.done.borrow().is_empty() {
            assert!(step(rig.hil));
        }
        assert_eq!(rig.rec.take(), Done::Set(Ok(())));
    };
    let before = free();
    set(&[0; 700]);
    let record = before - free();
    while free() - record >= 1024 {
        set(&[1; 700]);
    }
    set(&[0xAB; 700]);
    assert!(free() < 1024);
    assert_eq!(rig.kv.info().unwrap().compactions, 0, "the set itself did not compact");
    rig.settle();
    assert_eq!(rig.kv.info().unwrap().compactions, 1, "idle time did");
    assert!(free() > 8192);
    assert_eq!(rig.remount().value(b"k"), Ok(vec![0xAB; 700]));
}

#[test]
fn a_user_operation_waits_for_one_maintenance_step_only() {
    let _g = setup();
    let rig = Rig::new(FlashSim::new(GEOMETRY));
    dirty_standby(&rig);
    // Run idle time until a maintenance erase is in flight.
    while rig.hil.pending_kind() != Some(Kind::Erase) {
        assert!(step(rig.hil));
    }
    let mark = rig.hil.events.borrow().len();
    rig.start_get(b"k1", 2000).unwrap();
    assert_eq!(rig.start_get(b"k2", 2000), Err(ErrorCode::BUSY), "one pending user operation");
    rig.settle();
    assert!(matches!(rig.rec.take(), Done::Get(Ok(()), _)));
    let events = rig.hil.events.borrow()[mark..].to_vec();
    let done = events.iter().position(|e| *e == Event::Client("get")).unwrap();
    assert!(matches!(events[0], Event::Erase(_)), "the step in flight finished first");
    assert!(
        !events[1..done].iter().any(|e| matches!(e, Event::Erase(_))),
        "then the get ran, before any further maintenance: {events:?}"
    );
    assert!(events[done..].iter().any(|e| matches!(e, Event::Erase(_))), "maintenance resumed after it");
    assert_eq!(rig.kv.info().unwrap().standby_clean, AREA);
}

#[test]
fn bigger_stores_mount_and_format_with_the_portenta_geometry() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(flash_sim::Geometry::PORTENTA));
    let rig = Rig::with(hil, capsule::<64, 512>(hil));
    assert_eq!(rig.set(b"stats", b"\x01\x00\x00\x00"), Done::Set(Ok(())));
    assert_eq!(rig.kv.info().unwrap().standby_clean, 6 * 131_072);
    assert_eq!(rig.remount().value(b"stats"), Ok(vec![1, 0, 0, 0]));
}
