// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The record layout and `get`'s reading of the kernel's answers, on the fake kernel.

use fake_kv::{KeyValue, Permissions, Store};
use libtock_platform::ErrorCode;
use libtock_unittest::fake;

use super::*;

#[test]
fn struct_layout_is_the_sketchs() {
    // The golden vector the host CLI checks too (g1_portenta_internal/stats_14).
    let bytes = [0xd6, 0x04, 0, 0, 0x1c, 0x2f, 0, 0, 0x0e, 0, 0, 0];
    let s = SketchStats::from_bytes(&bytes).unwrap();
    assert_eq!(s, SketchStats { startup_time: 1238, random_value: 0x2f1c, run_count: 14 });
    assert_eq!(s.to_bytes(), bytes);
    assert_eq!(SketchStats::from_bytes(&bytes[..11]), None);
    let mut longer = bytes.to_vec();
    longer.push(9);
    assert_eq!(SketchStats::from_bytes(&longer), Some(s));
}

#[test]
fn get_reports_both_size_cases() {
    let store = Store::new();
    store.insert(b"long", 1, &[9u8; 20]);
    store.insert(b"huge", 1, &[9u8; 600]);
    store.insert(b"empty", 1, &[]);
    let kernel = fake::Kernel::new();
    kernel.add_driver(&KeyValue::new(&store, Permissions::from_tbf(1, 1, &[1], &[1])));
    let mut buf = [0u8; 12];
    assert_eq!(kv::get::<fake::Syscalls>(b"long", &mut buf), Ok(kv::Got { len: 20, copied: 12 }));
    assert_eq!(buf, [9; 12]);
    // Too big for the kernel's own buffer: nothing copied, SIZE.
    assert_eq!(kv::get::<fake::Syscalls>(b"huge", &mut buf), Err(ErrorCode::Size));
    let mut big = [0u8; 32];
    assert_eq!(kv::get::<fake::Syscalls>(b"long", &mut big), Ok(kv::Got { len: 20, copied: 20 }));
    assert_eq!(kv::get::<fake::Syscalls>(b"empty", &mut big), Ok(kv::Got { len: 0, copied: 0 }));
    assert_eq!(kv::get::<fake::Syscalls>(b"none", &mut big), Err(ErrorCode::NoSupport));
    // Refused at the command: the key does not fit the kernel's key buffer.
    assert_eq!(kv::get::<fake::Syscalls>(&[b'k'; 65], &mut big), Err(ErrorCode::Size));
    drop(kernel);
    // No KV driver at all.
    let kernel = fake::Kernel::new();
    assert_eq!(kv::get::<fake::Syscalls>(b"long", &mut big), Err(ErrorCode::NoDevice));
    drop(kernel);
}
