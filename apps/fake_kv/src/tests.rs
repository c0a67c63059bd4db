// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Tests of the fakes themselves: each rule in the module docs, through the real libtock-rs
//! APIs on the fake kernel, and the raw upcall arguments where libtock-rs hides them.

use std::cell::Cell;
use std::rc::Rc;

use libtock_platform::{share, ErrorCode, Syscalls};
use libtock_unittest::fake;
use libtock_unittest::SyscallLogEntry;

use crate::{command, Clock, Completion, Failure, KeyValue, Limits, Op, Permissions, Rng, RngMode, Store};

type Kv = libtock_key_value::KeyValue<fake::Syscalls>;

/// kv_stats-like process: id 1, reads and modifies id 1.
fn stats_app() -> Permissions {
    Permissions::from_tbf(1, 1, &[1], &[1])
}

/// kv_share-like process: id 2, reads 1 and 2, modifies 2.
fn share_app() -> Permissions {
    Permissions::from_tbf(2, 2, &[1, 2], &[2])
}

/// Runs `f` on a fresh fake kernel with `kv` attached.
fn with_kernel<R>(kv: &Rc<KeyValue>, f: impl FnOnce() -> R) -> R {
    let kernel = fake::Kernel::new();
    kernel.add_driver(kv);
    let r = f();
    drop(kernel);
    r
}

/// `get` with the raw upcall arguments `(status, len, 0)`, which libtock-rs's `get` folds
/// into `Err(code)` (dropping the length).
fn raw_get(key: &[u8], buf: &mut [u8]) -> Result<(u32, u32, u32), ErrorCode> {
    use libtock_platform::{AllowRo, AllowRw, DefaultConfig, Subscribe};
    const D: u32 = crate::DRIVER_NUM;
    let called: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
    share::scope::<(AllowRo<_, D, 0>, AllowRw<_, D, 0>, Subscribe<_, D, 0>), _, _>(|handle| {
        let (k, v, s) = handle.split();
        fake::Syscalls::allow_ro::<DefaultConfig, D, 0>(k, key)?;
        fake::Syscalls::allow_rw::<DefaultConfig, D, 0>(v, buf)?;
        fake::Syscalls::subscribe::<_, _, DefaultConfig, D, 0>(s, &called)?;
        fake::Syscalls::command(D, command::GET, 0, 0).to_result::<(), ErrorCode>()?;
        fake::Syscalls::yield_wait();
        Ok(called.get().expect("the upcall ran"))
    })
}

#[test]
fn permissions_follow_the_tbf_header_policy() {
    let p = share_app();
    assert_eq!(p.write_id(), Some(2));
    assert!(p.can_read(1) && p.can_read(2) && !p.can_read(3));
    assert!(p.can_modify(2) && !p.can_modify(1));

    // The kernel's id 0 is never granted by a list.
    let k = Permissions::from_tbf(4, 4, &[0, 4], &[0, 4]);
    assert!(!k.can_read(0) && !k.can_modify(0));

    // read_modify_self is false: a process's own id must be listed.
    let own = Permissions::from_tbf(5, 5, &[], &[]);
    assert_eq!(own.write_id(), Some(5));
    assert!(!own.can_read(5) && !own.can_modify(5));

    // write_id 0 in the TBF: no write permission. The stored id is the ShortId, not write_id.
    assert_eq!(Permissions::from_tbf(6, 0, &[6], &[6]).write_id(), None);
    assert_eq!(Permissions::from_tbf(7, 99, &[], &[]).write_id(), Some(7));

    // No fixed ShortId: null permissions.
    let null = Permissions::from_tbf(0, 1, &[1], &[1]);
    assert_eq!(null, Permissions::null());
    assert_eq!(null.write_id(), None);
    assert!(!null.can_read(1) && !null.can_modify(1));

    // Only the first 8 ids of a list count.
    let many: Vec<u32> = (1..=9).collect();
    let p = Permissions::from_tbf(1, 1, &many, &many);
    assert!(p.can_read(8) && !p.can_read(9));
    assert!(p.can_modify(8) && !p.can_modify(9));
}

#[test]
fn record_bytes_carry_the_permission_header() {
    let r = crate::Record { write_id: 0x0102_0304, value: vec![0xAA, 0xBB] };
    assert_eq!(r.stored_bytes(), vec![0, 2, 0, 0, 0, 4, 3, 2, 1, 0xAA, 0xBB]);
}

#[test]
fn round_trip_with_binary_keys_and_values() {
    let store = Store::new();
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        assert!(Kv::exists());
        let key = [0xFF, 0x00, 0x80, b'k'];
        let value = [0xC3, 0x28, 0x00, 0xFE];
        Kv::set(&key, &value).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(Kv::get(&key, &mut buf), Ok(4));
        assert_eq!(&buf[..4], &value);
    });
    assert_eq!(store.get(&[0xFF, 0x00, 0x80, b'k']).unwrap().write_id, 1);
}

#[test]
fn get_missing_key_is_nosupport() {
    let store = Store::new();
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        let mut buf = [0u8; 4];
        assert_eq!(Kv::get(b"nope", &mut buf), Err(ErrorCode::NoSupport));
        assert_eq!(raw_get(b"nope", &mut buf), Ok((ErrorCode::NoSupport as u32, 0, 0)));
    });
}

#[test]
fn short_read_buffer_copies_what_fits_and_reports_size_with_full_length() {
    let store = Store::new();
    store.insert(b"long", 1, &(0u8..20).collect::<Vec<_>>());
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        let mut buf = [0xEEu8; 8];
        assert_eq!(raw_get(b"long", &mut buf), Ok((ErrorCode::Size as u32, 20, 0)));
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7]);
        let mut buf = [0xEEu8; 8];
        assert_eq!(Kv::get(b"long", &mut buf), Err(ErrorCode::Size));
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7]);
        // An exactly-sized buffer is a success.
        let mut buf = [0u8; 20];
        assert_eq!(Kv::get(b"long", &mut buf), Ok(20));
    });
}

#[test]
fn record_longer_than_the_kernel_buffer_reads_as_size_with_nothing_copied() {
    let store = Store::new();
    store.insert(b"huge", 1, &[7u8; 600]);
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        let mut buf = [0u8; 700];
        assert_eq!(raw_get(b"huge", &mut buf), Ok((ErrorCode::Size as u32, 0, 0)));
        assert!(buf.iter().all(|&b| b == 0));
    });
}

#[test]
fn key_and_value_limits_are_the_kernel_buffers() {
    let store = Store::new();
    let kv = KeyValue::new(&store, stats_app());
    let max_value = Limits::UPSTREAM.max_value_len();
    assert_eq!(max_value, 503);
    with_kernel(&kv, || {
        Kv::set(&[b'k'; 64], b"v").unwrap();
        assert_eq!(Kv::set(&[b'k'; 65], b"v"), Err(ErrorCode::Size));
        Kv::set(b"v", &vec![1u8; max_value]).unwrap();
        assert_eq!(Kv::set(b"v", &vec![1u8; max_value + 1]), Err(ErrorCode::Size));
        let mut buf = [0u8; 4];
        assert_eq!(Kv::get(&[b'k'; 65], &mut buf), Err(ErrorCode::Size));
        assert_eq!(Kv::delete(&[b'k'; 65]), Err(ErrorCode::Size));
    });
    // Too long keys and values are refused at the command, before anything is stored.
    let log = kv.take_log();
    assert_eq!(log[1].completion, Completion::Refused(ErrorCode::Size));
    assert_eq!(log[3].completion, Completion::Refused(ErrorCode::Size));
    assert_eq!(store.get(b"v").unwrap().value.len(), max_value);

    // Other sizes on request.
    let small = KeyValue::with_limits(&store, stats_app(), Limits { key_buffer: 4, value_buffer: 16 });
    with_kernel(&small, || {
        assert_eq!(Kv::set(b"abcde", b"v"), Err(ErrorCode::Size));
        assert_eq!(Kv::set(b"abcd", &[0u8; 8]), Err(ErrorCode::Size));
        Kv::set(b"abcd", &[0u8; 7]).unwrap();
    });
}

#[test]
fn any_key_bytes_are_a_key_as_in_the_kernel() {
    let store = Store::new();
    let kv = KeyValue::new(&store, stats_app());
    let mut first = [0u8; 16];
    first[..9].copy_from_slice(b"First Key");
    with_kernel(&kv, || {
        let mut buf = [0u8; 4];
        for key in [&b""[..], &first, b"a b", b"TDBS", &[0xFF; 64]] {
            assert_eq!(Kv::set(key, b"v"), Ok(()), "{key:?}");
            assert_eq!(Kv::get(key, &mut buf), Ok(1));
        }
        assert_eq!(Kv::delete(b""), Ok(()));
        assert_eq!(Kv::get(b"", &mut buf), Err(ErrorCode::NoSupport));
    });
    assert_eq!(store.keys().len(), 4);
}

#[test]
fn set_add_update_delete_semantics() {
    let store = Store::new();
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        assert_eq!(Kv::update(b"k", b"1"), Err(ErrorCode::NoSupport));
        Kv::add(b"k", b"1").unwrap();
        assert_eq!(Kv::add(b"k", b"2"), Err(ErrorCode::NoSupport));
        Kv::update(b"k", b"3").unwrap();
        Kv::set(b"k", b"4").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(Kv::get(b"k", &mut buf), Ok(1));
        assert_eq!(&buf, b"4");
        Kv::delete(b"k").unwrap();
        assert_eq!(Kv::delete(b"k"), Err(ErrorCode::NoSupport));
        assert_eq!(Kv::get(b"k", &mut buf), Err(ErrorCode::NoSupport));
    });
}

#[test]
fn another_writers_key_is_read_only_without_modify_access() {
    let store = Store::new();
    store.insert(b"stats", 1, b"twelve bytes");
    let kv = KeyValue::new(&store, share_app());
    with_kernel(&kv, || {
        let mut buf = [0u8; 12];
        assert_eq!(Kv::get(b"stats", &mut buf), Ok(12));
        assert_eq!(Kv::set(b"stats", b"x"), Err(ErrorCode::NoSupport));
        assert_eq!(Kv::update(b"stats", b"x"), Err(ErrorCode::NoSupport));
        assert_eq!(Kv::add(b"stats", b"x"), Err(ErrorCode::NoSupport));
        assert_eq!(Kv::delete(b"stats"), Err(ErrorCode::NoSupport));
        // Its own keys are its own.
        Kv::set(b"mine", b"y").unwrap();
        Kv::set(b"mine", b"z").unwrap();
        assert_eq!(Kv::get(b"mine", &mut buf), Ok(1));
    });
    assert_eq!(store.get(b"stats").unwrap().value, b"twelve bytes");
    assert_eq!(store.get(b"stats").unwrap().write_id, 1);
    assert_eq!(store.get(b"mine").unwrap().write_id, 2);
}

#[test]
fn unreadable_and_missing_keys_look_the_same() {
    let store = Store::new();
    store.insert(b"stats", 1, b"secret");
    let kv = KeyValue::new(&store, Permissions::from_tbf(2, 2, &[2], &[2]));
    with_kernel(&kv, || {
        let mut buf = [0xEEu8; 8];
        assert_eq!(raw_get(b"stats", &mut buf), Ok((ErrorCode::NoSupport as u32, 0, 0)));
        assert_eq!(raw_get(b"other", &mut buf), Ok((ErrorCode::NoSupport as u32, 0, 0)));
        assert_eq!(buf, [0xEE; 8], "nothing of the value reaches the app");
    });
}

#[test]
fn own_id_must_be_listed_to_read_back_or_overwrite() {
    let store = Store::new();
    let kv = KeyValue::new(&store, Permissions::from_tbf(5, 5, &[], &[]));
    with_kernel(&kv, || {
        Kv::set(b"k", b"v").unwrap(); // a new key: allowed
        let mut buf = [0u8; 1];
        assert_eq!(Kv::get(b"k", &mut buf), Err(ErrorCode::NoSupport));
        assert_eq!(Kv::set(b"k", b"w"), Err(ErrorCode::NoSupport));
    });
}

#[test]
fn no_write_permission_refuses_writes_at_the_command() {
    let store = Store::new();
    store.insert(b"k", 1, b"v");
    let readonly = KeyValue::new(&store, Permissions::from_tbf(3, 0, &[1], &[1]));
    with_kernel(&readonly, || {
        let mut buf = [0u8; 1];
        assert_eq!(Kv::get(b"k", &mut buf), Ok(1));
        assert_eq!(Kv::set(b"n", b"v"), Err(ErrorCode::Invalid));
        assert_eq!(Kv::add(b"n", b"v"), Err(ErrorCode::Invalid));
        assert_eq!(Kv::update(b"k", b"v"), Err(ErrorCode::Invalid));
        // Delete needs modify access only.
        Kv::delete(b"k").unwrap();
    });
    let null = KeyValue::new(&store, Permissions::null());
    with_kernel(&null, || {
        assert_eq!(Kv::set(b"n", b"v"), Err(ErrorCode::Invalid));
    });
}

#[test]
fn full_store_is_nomem() {
    let store = Store::new();
    store.set_capacity(Some(2 * (1 + crate::HEADER_LENGTH + 4)));
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        Kv::set(b"a", b"1234").unwrap();
        Kv::set(b"b", b"1234").unwrap();
        assert_eq!(Kv::set(b"c", b"1234"), Err(ErrorCode::NoMem));
        // Replacing a record counts its old size as free.
        Kv::set(b"a", b"5678").unwrap();
    });
}

#[test]
fn injected_failures() {
    let store = Store::new();
    store.insert(b"k", 1, b"v");
    let kv = KeyValue::new(&store, stats_app());
    kv.fail_next(command::SET, Failure::Upcall(ErrorCode::Fail));
    kv.fail_next(command::GET, Failure::Command(ErrorCode::Busy));
    with_kernel(&kv, || {
        let mut buf = [0u8; 1];
        assert_eq!(Kv::get(b"k", &mut buf), Err(ErrorCode::Busy));
        assert_eq!(Kv::set(b"k", b"w"), Err(ErrorCode::Fail));
        // One-shot.
        assert_eq!(Kv::get(b"k", &mut buf), Ok(1));
        assert_eq!(&buf, b"v");
    });
    assert_eq!(
        kv.take_log(),
        vec![
            Op {
                command: command::GET,
                key: b"k".to_vec(),
                completion: Completion::Refused(ErrorCode::Busy)
            },
            Op {
                command: command::SET,
                key: b"k".to_vec(),
                completion: Completion::Upcall { status: Err(ErrorCode::Fail), len: 0 }
            },
            Op {
                command: command::GET,
                key: b"k".to_vec(),
                completion: Completion::Upcall { status: Ok(()), len: 1 }
            },
        ]
    );
}

#[test]
fn other_commands() {
    let store = Store::new();
    let kv = KeyValue::new(&store, stats_app());
    with_kernel(&kv, || {
        let gc = fake::Syscalls::command(crate::DRIVER_NUM, command::GARBAGE_COLLECT, 0, 0);
        assert!(gc.is_success());
        assert_eq!(
            fake::Syscalls::command(crate::DRIVER_NUM, 7, 0, 0).get_failure(),
            Some(ErrorCode::NoSupport)
        );
    });
    let log = kv.take_log();
    assert_eq!(log.len(), 1, "command 7 is not an operation");
    assert_eq!(log[0].completion, Completion::Upcall { status: Ok(()), len: 0 });
}

#[test]
fn get_makes_the_syscalls_the_kernel_expects() {
    let store = Store::new();
    store.insert(b"k", 1, b"v");
    let kv = KeyValue::new(&store, stats_app());
    let kernel = fake::Kernel::new();
    kernel.add_driver(&kv);
    let mut buf = [0u8; 4];
    assert_eq!(Kv::get(b"k", &mut buf), Ok(1));
    let log = kernel.take_syscall_log();
    let d = crate::DRIVER_NUM;
    assert_eq!(
        log[..5],
        [
            SyscallLogEntry::AllowRo { driver_num: d, buffer_num: 0, len: 1 },
            SyscallLogEntry::AllowRw { driver_num: d, buffer_num: 0, len: 4 },
            SyscallLogEntry::Subscribe { driver_num: d, subscribe_num: 0 },
            SyscallLogEntry::Command { driver_id: d, command_id: command::GET, argument0: 0, argument1: 0 },
            SyscallLogEntry::YieldWait,
        ]
    );
    // Everything shared is taken back when the call returns.
    assert!(log[5..].contains(&SyscallLogEntry::AllowRo { driver_num: d, buffer_num: 0, len: 0 }));
    assert!(log[5..].contains(&SyscallLogEntry::AllowRw { driver_num: d, buffer_num: 0, len: 0 }));
    assert!(log[5..].contains(&SyscallLogEntry::Subscribe { driver_num: d, subscribe_num: 0 }));
}

#[test]
fn processes_share_one_store_across_kernels() {
    let store = Store::new();
    let a = KeyValue::new(&store, stats_app());
    with_kernel(&a, || Kv::set(b"stats", b"run 1").unwrap());
    let b = KeyValue::new(&store, share_app());
    with_kernel(&b, || {
        let mut buf = [0u8; 5];
        assert_eq!(Kv::get(b"stats", &mut buf), Ok(5));
        assert_eq!(&buf, b"run 1");
    });
    // Permissions can change between boots, as with a re-flashed TBF.
    b.set_permissions(Permissions::from_tbf(2, 2, &[2], &[2]));
    with_kernel(&b, || {
        let mut buf = [0u8; 5];
        assert_eq!(Kv::get(b"stats", &mut buf), Err(ErrorCode::NoSupport));
    });
}

#[test]
fn clock_tells_time_and_fires_alarms() {
    type Alarm = libtock_alarm::Alarm<fake::Syscalls>;
    let clock = Clock::new(32_768, 32_768 * 3);
    let kernel = fake::Kernel::new();
    kernel.add_driver(&clock);
    assert_eq!(Alarm::get_frequency().unwrap().0, 32_768);
    assert_eq!(Alarm::get_ticks(), Ok(32_768 * 3));
    // libtock_alarm's get_milliseconds divides by `freq / 1000` in integers: 3 s at
    // 32768 Hz reads as 3072 ms (and a clock under 1 kHz divides by zero). The apps compute
    // milliseconds themselves.
    assert_eq!(Alarm::get_milliseconds(), Ok(3_072));
    clock.advance(32_768);
    assert_eq!(Alarm::get_ticks(), Ok(32_768 * 4));
    Alarm::sleep_for(libtock_alarm::Milliseconds(1_000)).unwrap();
    assert_eq!(clock.now(), 32_768 * 5);
    assert_eq!(fake::Syscalls::command(0, 3, 0, 0).get_failure(), Some(ErrorCode::Already));
}

#[test]
fn rng_modes() {
    type R = libtock_rng::Rng<fake::Syscalls>;
    let kernel = fake::Kernel::new();
    let rng = Rng::new(RngMode::Counter(10));
    kernel.add_driver(&rng);
    let mut buf = [0u8; 4];
    R::get_bytes_sync(&mut buf, 4).unwrap();
    assert_eq!(buf, [10, 11, 12, 13]);
    drop(kernel);

    let kernel = fake::Kernel::new();
    let rng = Rng::new(RngMode::Refuse(ErrorCode::Fail));
    kernel.add_driver(&rng);
    assert_eq!(R::get_bytes_sync(&mut buf, 4), Err(ErrorCode::Fail));
    drop(kernel);

    let kernel = fake::Kernel::new();
    let rng = Rng::new(RngMode::Stalled);
    kernel.add_driver(&rng);
    assert!(R::get_bytes_async(4).is_ok());
    assert!(!fake::Kernel::is_upcall_pending());
    assert_eq!(rng.requests(), 1);
    drop(kernel);
}
