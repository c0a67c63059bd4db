// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The capsule under upstream's KV stack: `KVStorePermissions`, `MuxKVPermissions` and one
//! `VirtualKVPermissions` per app, with buffers shaped as `KVStoreDriver` shapes them.
//!
//! ```text
//! apps (this file: one Recorder each, StoragePermissions as the TBF policy gives them)
//!    hil::kv::KVPermissions
//! VirtualKVPermissions x N -> MuxKVPermissions -> KVStorePermissions   (upstream)
//!    hil::kv::KV
//! TdbStoreKv --NorFlash--> SimHil (common) --> FlashSim
//! ```

mod common;

use core::num::NonZeroU32;

use capsules_extra::kv_store_permissions::HEADER_LENGTH;
use capsules_extra::virtualizers::virtual_kv::VirtualKVPermissions;
use common::{
    leak, noise, settle, setup, upstream_stack, Done, Kind, Mux, Recorder, Rig, SimHil, Virt, GEOMETRY,
};
use flash_sim::FlashSim;
use kernel::capabilities::ApplicationStorageCapability;
use kernel::hil::kv::KVPermissions;
use kernel::storage_permissions::StoragePermissions;
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;

/// The key buffer of upstream's `KVStoreDriver` (`components::kv`): the longest key an app
/// can pass.
const DRIVER_KEY_LEN: usize = 64;

struct Cap;
// SAFETY: test code stands in for the kernel's process loader, which holds this capability.
unsafe impl ApplicationStorageCapability for Cap {}

fn id(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// One app: its virtual KV, its permissions, a recorder.
struct App {
    hil: &'static SimHil,
    kv: &'static Virt,
    rec: &'static Recorder,
    perms: StoragePermissions,
}

impl App {
    fn new(hil: &'static SimHil, mux: &'static Mux, perms: StoragePermissions) -> App {
        let kv: &'static Virt = Box::leak(Box::new(VirtualKVPermissions::new(mux)));
        kv.setup();
        let rec = Recorder::new(Some(hil));
        kv.set_client(rec);
        App { hil, kv, rec, perms }
    }

    /// The key as `KVStoreDriver` passes it: its 64-byte buffer, sliced to the key (a longer
    /// buffer for longer keys, as a kernel client with its own buffers may pass).
    fn key(key: &[u8]) -> SubSliceMut<'static, u8> {
        let buf = leak(&vec![0; key.len().max(DRIVER_KEY_LEN)]);
        buf[..key.len()].copy_from_slice(key);
        let mut k = SubSliceMut::new(buf);
        k.slice(..key.len());
        k
    }

    fn start_get(&self, key: &[u8]) -> Result<(), ErrorCode> {
        // Stale bytes in the driver's value buffer must never leak out.
        let value = SubSliceMut::new(leak(&[0xEE; 512]));
        self.kv.get(Self::key(key), value, self.perms).map_err(|(_, _, e)| e)
    }

    fn start_insert(&self, op: &str, key: &[u8], value: &[u8]) -> Result<(), ErrorCode> {
        // The value after room for the permission header, as the driver lays it out.
        let buf = leak(&[0; 512]);
        buf[HEADER_LENGTH..HEADER_LENGTH + value.len()].copy_from_slice(value);
        let mut v = SubSliceMut::new(buf);
        v.slice(..HEADER_LENGTH + value.len());
        let k = Self::key(key);
        let r = match op {
            "set" => self.kv.set(k, v, self.perms),
            "add" => self.kv.add(k, v, self.perms),
            "update" => self.kv.update(k, v, self.perms),
            _ => panic!("{op}"),
        };
        r.map_err(|(_, _, e)| e)
    }

    fn start_delete(&self, key: &[u8]) -> Result<(), ErrorCode> {
        self.kv.delete(Self::key(key), self.perms).map_err(|(_, e)| e)
    }

    fn finish(&self, started: Result<(), ErrorCode>) -> Done {
        settle(self.hil);
        match started {
            Err(e) => Done::Refused(e),
            Ok(()) => self.rec.take(),
        }
    }

    fn get(&self, key: &[u8]) -> Done {
        self.finish(self.start_get(key))
    }
    fn set(&self, key: &[u8], value: &[u8]) -> Done {
        self.finish(self.start_insert("set", key, value))
    }
    fn add(&self, key: &[u8], value: &[u8]) -> Done {
        self.finish(self.start_insert("add", key, value))
    }
    fn update(&self, key: &[u8], value: &[u8]) -> Done {
        self.finish(self.start_insert("update", key, value))
    }
    fn delete(&self, key: &[u8]) -> Done {
        self.finish(self.start_delete(key))
    }
    fn gc(&self) -> Done {
        self.finish(self.kv.garbage_collect())
    }
}

/// Denied (or missing): `NOSUPPORT`, and no byte of the buffer survives.
fn denied(d: Done) -> bool {
    match d {
        Done::Get(Err(ErrorCode::NOSUPPORT), v) => v.iter().all(|&b| b == 0),
        _ => false,
    }
}

#[test]
fn the_libtock_rs_kv_example_succeeds_through_the_permission_layer() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    // examples/kv.rs: get "a" (absent), set, get, delete, get.
    assert!(denied(app.get(b"a")));
    assert_eq!(app.set(b"libtock-rs", b"kv test app"), Done::Set(Ok(())));
    assert_eq!(app.get(b"libtock-rs"), Done::Get(Ok(()), b"kv test app".to_vec()), "value length 11");
    assert_eq!(app.delete(b"libtock-rs"), Done::Delete(Ok(())));
    assert!(denied(app.get(b"libtock-rs")));
    // The rest of the driver's commands.
    assert_eq!(app.add(b"runs", &[1]), Done::Add(Ok(())));
    assert_eq!(app.add(b"runs", &[2]), Done::Add(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(app.update(b"runs", &[3]), Done::Update(Ok(())));
    assert_eq!(app.update(b"absent", &[3]), Done::Update(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(app.set(b"runs", &[4, 4]), Done::Set(Ok(())));
    assert_eq!(app.get(b"runs"), Done::Get(Ok(()), vec![4, 4]));
    assert_eq!(app.gc(), Done::Gc(Ok(())));
    assert_eq!(app.set(b"", b"x"), Done::Set(Ok(())), "an empty key is a key like any other");
    assert_eq!(app.get(b""), Done::Get(Ok(()), b"x".to_vec()));
    // After a reboot.
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    assert_eq!(app.get(b"runs"), Done::Get(Ok(()), vec![4, 4]));
}

#[test]
fn write_ids_isolate_apps() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let a = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    let b = App::new(hil, mux, StoragePermissions::new_self_only(id(2), &Cap));
    assert_eq!(a.set(b"k", b"a-secret"), Done::Set(Ok(())));
    assert!(denied(b.get(b"k")), "no read");
    assert_eq!(b.set(b"k", b"b"), Done::Set(Err(ErrorCode::NOSUPPORT)), "no overwrite");
    assert_eq!(b.update(b"k", b"b"), Done::Update(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(b.add(b"k", b"b"), Done::Add(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(b.delete(b"k"), Done::Delete(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(a.get(b"k"), Done::Get(Ok(()), b"a-secret".to_vec()), "unchanged");
    assert_eq!(b.set(b"b-key", b"b"), Done::Set(Ok(())));
    assert!(denied(a.get(b"b-key")));
    // No write id: refused at once by the permission layer.
    let nobody = App::new(hil, mux, StoragePermissions::new_null());
    assert_eq!(nobody.set(b"n", b"x"), Done::Refused(ErrorCode::INVAL));
    assert!(denied(nobody.get(b"k")));
    // The same after a reboot.
    let mux = upstream_stack(hil);
    let a = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    let b = App::new(hil, mux, StoragePermissions::new_self_only(id(2), &Cap));
    assert_eq!(a.get(b"k"), Done::Get(Ok(()), b"a-secret".to_vec()));
    assert!(denied(b.get(b"k")));
    assert_eq!(b.get(b"b-key"), Done::Get(Ok(()), b"b".to_vec()));
}

#[test]
fn read_and_modify_lists_share_keys() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let owner = App::new(hil, mux, StoragePermissions::new_listed(id(1), true, true, &[], &[], &Cap));
    let reader = App::new(hil, mux, StoragePermissions::new_listed(id(3), true, true, &[1], &[], &Cap));
    let editor = App::new(hil, mux, StoragePermissions::new_listed(id(4), true, true, &[], &[1], &Cap));
    assert_eq!(owner.set(b"shared", b"v1"), Done::Set(Ok(())));
    assert_eq!(reader.get(b"shared"), Done::Get(Ok(()), b"v1".to_vec()), "read grant");
    assert_eq!(reader.set(b"shared", b"r"), Done::Set(Err(ErrorCode::NOSUPPORT)), "no modify grant");
    assert_eq!(reader.delete(b"shared"), Done::Delete(Err(ErrorCode::NOSUPPORT)));
    assert!(denied(editor.get(b"shared")), "modify grant only");
    assert_eq!(editor.update(b"shared", b"v2"), Done::Update(Ok(())), "modify grant");
    // Upstream's model: the record now carries the editor's write id.
    assert_eq!(editor.get(b"shared"), Done::Get(Ok(()), b"v2".to_vec()));
    assert!(denied(owner.get(b"shared")));
    assert!(denied(reader.get(b"shared")));
    assert_eq!(editor.delete(b"shared"), Done::Delete(Ok(())));
    assert_eq!(owner.add(b"shared", b"v3"), Done::Add(Ok(())));
    assert_eq!(reader.get(b"shared"), Done::Get(Ok(()), b"v3".to_vec()));
}

#[test]
fn two_apps_at_once_through_the_mux() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let a = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    let b = App::new(hil, mux, StoragePermissions::new_self_only(id(2), &Cap));
    // Upstream's mux looks for work from the head of its list (the app set up last, `b`):
    // an operation from `a` while `b`'s is in flight is queued behind it...
    b.start_insert("set", b"b", b"from b").unwrap();
    a.start_insert("set", b"a", b"from a").unwrap();
    settle(hil);
    assert_eq!((a.rec.take(), b.rec.take()), (Done::Set(Ok(())), Done::Set(Ok(()))));
    // ...while one from `b` while `a`'s is in flight reaches the permission layer, which is
    // busy: BUSY at once, buffers back. (The KV driver is the mux's only client on a board,
    // and it queues per app itself, so boards never see this.)
    a.start_get(b"a").unwrap();
    assert_eq!(b.start_get(b"b"), Err(ErrorCode::BUSY));
    settle(hil);
    assert_eq!(a.rec.take(), Done::Get(Ok(()), b"from a".to_vec()));
    assert_eq!(b.get(b"b"), Done::Get(Ok(()), b"from b".to_vec()));
    assert!(denied(b.get(b"a")));
    assert_eq!(a.rec.sync_callbacks.get() + b.rec.sync_callbacks.get(), 0);
}

#[test]
fn stored_values_carry_upstreams_header_inside_the_raw_value() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(7), &Cap));
    assert_eq!(app.set(b"k", b"v"), Done::Set(Ok(())));
    // The kernel-side API (a new capsule over the same flash) sees the raw value.
    let raw = Rig::unmounted(hil);
    assert_eq!(raw.value(b"k"), Ok(vec![0, 1, 0, 0, 0, 7, 0, 0, 0, b'v']));
}

#[test]
fn a_raw_value_shorter_than_the_permission_header_reads_as_absent_not_a_panic() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    // A host tool or kernel client stores a 2-byte raw value (no permission header).
    let direct = Rig::unmounted(hil);
    assert_eq!(direct.set(b"short", b"ab"), Done::Set(Ok(())));
    // Through the permission layer (which would index 9 header bytes), it is simply absent.
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    assert!(denied(app.get(b"short")));
    // And an app may create the key afresh.
    assert_eq!(app.set(b"short", b"mine"), Done::Set(Ok(())));
    assert_eq!(app.get(b"short"), Done::Get(Ok(()), b"mine".to_vec()));
}

/// Runs upstream's KV tests' sequence on one key: set, get, add twice, update, get, delete
/// twice, update and get of the missing key, add it back, get.
fn exercise(app: &App, key: &[u8], value: &[u8]) {
    let ctx = format!("key {key:02x?}");
    assert_eq!(app.set(key, value), Done::Set(Ok(())), "{ctx}");
    assert_eq!(app.get(key), Done::Get(Ok(()), value.to_vec()), "{ctx}");
    assert_eq!(app.add(key, b"again"), Done::Add(Err(ErrorCode::NOSUPPORT)), "add/add {ctx}");
    assert_eq!(app.update(key, b"updated"), Done::Update(Ok(())), "{ctx}");
    assert_eq!(app.get(key), Done::Get(Ok(()), b"updated".to_vec()), "{ctx}");
    assert_eq!(app.delete(key), Done::Delete(Ok(())), "{ctx}");
    assert_eq!(app.delete(key), Done::Delete(Err(ErrorCode::NOSUPPORT)), "delete twice {ctx}");
    assert_eq!(app.update(key, b"x"), Done::Update(Err(ErrorCode::NOSUPPORT)), "update missing {ctx}");
    assert!(denied(app.get(key)), "{ctx}");
    assert_eq!(app.add(key, value), Done::Add(Ok(())), "{ctx}");
    assert_eq!(app.get(key), Done::Get(Ok(()), value.to_vec()), "{ctx}");
    assert_eq!(app.delete(key), Done::Delete(Ok(())), "{ctx}");
}

#[test]
fn every_key_the_syscall_driver_passes_works_through_the_permission_layer() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    // libtock-c's first KV test: a 16-byte key, "First Key" padded with NULs.
    let mut first = b"First Key".to_vec();
    first.resize(16, 0);
    exercise(&app, &first, b"First Value");
    // Every byte value, alone and at the longest length the driver passes, and at a length
    // that walks through 0..=64 as the byte does.
    for b in 0..=255u8 {
        for len in [1, DRIVER_KEY_LEN, usize::from(b) % (DRIVER_KEY_LEN + 1)] {
            exercise(&app, &vec![b; len], &[b, 0, b]);
        }
    }
    // Every length with mixed bytes, and keys holding all 256 byte values between them.
    for len in 0..=DRIVER_KEY_LEN {
        exercise(&app, &noise(len, len as u32 + 1), b"v");
    }
    for chunk in (0..=255u8).collect::<Vec<_>>().chunks(DRIVER_KEY_LEN) {
        exercise(&app, chunk, b"all bytes");
    }
    // Keys that look like stored forms, or are Mbed-special, stay distinct.
    let lookalikes: [&[u8]; 8] = [b"~", b"", b"~fg", b"~~", b"TDBS", b"~VERCUw", b"stats", b"~c3RhdHM"];
    for (i, k) in lookalikes.iter().enumerate() {
        assert_eq!(app.set(k, &[i as u8]), Done::Set(Ok(())), "{k:?}");
    }
    // After a reboot, each still holds its own value.
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    for (i, k) in lookalikes.iter().enumerate() {
        assert_eq!(app.get(k), Done::Get(Ok(()), vec![i as u8]), "{k:?}");
    }
    // The kernel-side API sees `stats` under its own name.
    let raw = Rig::unmounted(hil);
    assert_eq!(raw.value(b"stats"), Ok(vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 6]));
    raw.check_flash();
}

#[test]
fn keys_with_no_stored_form_get_size_or_not_found_through_the_permission_layer() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    let before = hil.image();
    // Longer than the driver passes: only a kernel client with its own buffers gets here.
    for long in [vec![0u8; 95], vec![b'k'; 128]] {
        // Upstream reads the header first (nothing found), then sets: SIZE in the callback.
        assert_eq!(app.set(&long, b"v"), Done::Set(Err(ErrorCode::SIZE)));
        // Add goes straight down: SIZE at the call.
        assert_eq!(app.add(&long, b"v"), Done::Refused(ErrorCode::SIZE));
        // Update and delete need the key to exist: it cannot.
        assert_eq!(app.update(&long, b"v"), Done::Update(Err(ErrorCode::NOSUPPORT)));
        assert_eq!(app.delete(&long), Done::Delete(Err(ErrorCode::NOSUPPORT)));
        assert!(denied(app.get(&long)));
    }
    assert_eq!(hil.image(), before, "nothing written");
    // The longest that fit.
    exercise(&app, &[0; 94], b"94");
    exercise(&app, &[b'k'; 127], b"127");
}

#[test]
fn store_errors_through_the_permission_layer() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    assert_eq!(app.set(b"k", b"v"), Done::Set(Ok(())));
    // A flash error while reading the value: FAIL from the capsule, which upstream's get
    // reports as NOSUPPORT (its only "no" for reads).
    hil.fail_next.set(Some((Kind::Read, ErrorCode::FAIL)));
    assert!(denied(app.get(b"k")));
    // The same error during the header read before a set or delete: upstream turns it into
    // NOSUPPORT (documented upstream limitation), and nothing changes.
    hil.fail_next.set(Some((Kind::Read, ErrorCode::FAIL)));
    assert_eq!(app.set(b"k", b"w"), Done::Set(Err(ErrorCode::NOSUPPORT)));
    hil.fail_next.set(Some((Kind::Read, ErrorCode::FAIL)));
    assert_eq!(app.delete(b"k"), Done::Delete(Err(ErrorCode::NOSUPPORT)));
    assert_eq!(app.get(b"k"), Done::Get(Ok(()), b"v".to_vec()), "nothing lost");
    // A failed program during the set itself reaches the app as FAIL.
    hil.fail_next.set(Some((Kind::Program, ErrorCode::FAIL)));
    assert_eq!(app.set(b"k", b"w"), Done::Set(Err(ErrorCode::FAIL)));
    assert_eq!(app.get(b"k"), Done::Get(Ok(()), b"v".to_vec()));
    // An unusable store (a foreign region) says FAIL at the call, which upstream passes
    // through unchanged; garbage collection says it in its callback.
    let foreign = SimHil::new(FlashSim::from_image(GEOMETRY, noise(GEOMETRY.size as usize, 7)).unwrap());
    let mux = upstream_stack(foreign);
    let app = App::new(foreign, mux, StoragePermissions::new_self_only(id(1), &Cap));
    assert_eq!(app.set(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(app.add(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(app.update(b"k", b"v"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(app.delete(b"k"), Done::Refused(ErrorCode::FAIL));
    assert_eq!(app.start_get(b"k"), Err(ErrorCode::FAIL));
    assert_eq!(app.gc(), Done::Gc(Err(ErrorCode::FAIL)));
    assert_eq!(app.gc(), Done::Gc(Err(ErrorCode::FAIL)), "and again: upstream's layer is not stuck");
}

#[test]
fn garbage_collection_through_the_permission_layer_frees_dead_records() {
    let _g = setup();
    let hil = SimHil::new(FlashSim::new(GEOMETRY));
    let mux = upstream_stack(hil);
    let app = App::new(hil, mux, StoragePermissions::new_self_only(id(1), &Cap));
    // upstream's "write until full, then collect" test never sees a full store: one key
    // rewritten far past the area's size keeps succeeding (the store compacts by itself).
    let value = [0xA5; 400];
    for i in 0..(3 * GEOMETRY.size as usize / value.len()) {
        assert_eq!(app.set(b"one key", &value), Done::Set(Ok(())), "set {i}");
    }
    // Collecting now frees what the dead copies took.
    assert_eq!(app.set(b"dead", b"x"), Done::Set(Ok(())));
    assert_eq!(app.delete(b"dead"), Done::Delete(Ok(())));
    assert_eq!(app.gc(), Done::Gc(Ok(())));
    assert_eq!(app.gc(), Done::Gc(Ok(())), "twice in a row");
    assert_eq!(app.get(b"one key"), Done::Get(Ok(()), value.to_vec()));
    assert!(denied(app.get(b"dead")));
    // Live data that does not fit is NOMEM, and collecting does not change that.
    let mut n = 0;
    while let Done::Set(Ok(())) = app.set(format!("fill{n}").as_bytes(), &value) {
        n += 1;
        assert!(n < 200);
    }
    assert_eq!(app.set(format!("fill{n}").as_bytes(), &value), Done::Set(Err(ErrorCode::NOMEM)));
    assert_eq!(app.gc(), Done::Gc(Ok(())));
    assert_eq!(app.set(format!("fill{n}").as_bytes(), &value), Done::Set(Err(ErrorCode::NOMEM)));
    assert_eq!(app.get(b"one key"), Done::Get(Ok(()), value.to_vec()), "nothing lost");
}
