// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `kv_burst`: the power-cut test's app. It reports what the store holds, then writes a long
//! burst of keys with known values, printing each operation before and after it, so the test
//! can kill QEMU at any instant and know which write (at most one) was in flight.
//!
//! ```text
//! e2e/run_e2e.py --kills QEMU--> kv_burst (this file) --KV 0x50003--> kernel KV stack
//!                                                                       -> TDBStore -> pflash
//! ```
//!
//! Console protocol (one line each, parsed by `e2e/run_e2e.py`):
//!
//! ```text
//! burst: start
//! state <i> <gen>|none|bad      the value of burst_<i> (verified against value(i, gen))
//! canary ok|none|bad            burst_canary, written once on the first boot
//! set <i> <gen>  /  del <i> <gen>     about to write / delete burst_<i>
//! ok <i> <gen>                  the write or delete completed
//! err <i> <gen> <error>         it failed: the app stops
//! burst: done
//! ```
//!
//! Generations count every operation across boots: a boot starts at one past the largest
//! generation found in the store, so each value is written once. Every eleventh operation is
//! a delete, so tombstones go through power cuts too. Values are 16 to 480 bytes, a function
//! of key and generation.

#![no_main]
#![no_std]

use libtock::key_value::KeyValue;
use libtock::platform::ErrorCode;
use libtock::runtime::{set_main, stack_size};

set_main! {main}
stack_size! {0x1000}

/// Keys `burst_00` .. `burst_15`.
const KEYS: u32 = 16;
/// Operations per boot.
const OPS: u32 = 1000;
const CANARY: &[u8] = b"burst_canary";
const CANARY_VALUE: &[u8] = b"burst canary: written on the first boot, never changed";
const MAX_VALUE: usize = 480;

use e2e_line::line;

fn key(i: u32) -> [u8; 8] {
    let mut k = *b"burst_00";
    k[6] = b'0' + (i / 10) as u8;
    k[7] = b'0' + (i % 10) as u8;
    k
}

/// The value of key `i` at generation `gen`: `g<gen, 8 digits> k<i, 2 digits> ` then filler.
fn value(i: u32, gen: u32, buf: &mut [u8; MAX_VALUE]) -> usize {
    let len = 16 + ((gen.wrapping_mul(37) + i * 11) % (MAX_VALUE as u32 - 15)) as usize;
    let mut head = *b"g00000000 k00 ";
    let mut g = gen;
    for d in (1..9).rev() {
        head[d] = b'0' + (g % 10) as u8;
        g /= 10;
    }
    head[11] = b'0' + (i / 10) as u8;
    head[12] = b'0' + (i % 10) as u8;
    buf[..head.len()].copy_from_slice(&head);
    for (j, b) in buf[head.len()..len].iter_mut().enumerate() {
        *b = b'a' + ((gen as usize * 3 + i as usize + j) % 26) as u8;
    }
    len
}

/// Parses the generation out of a value and checks the whole value against it.
fn check(i: u32, stored: &[u8]) -> Option<u32> {
    let digits = stored.get(1..9)?;
    let mut gen = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        gen = gen * 10 + u32::from(d - b'0');
    }
    let mut expect = [0u8; MAX_VALUE];
    let len = value(i, gen, &mut expect);
    (stored == &expect[..len]).then_some(gen)
}

fn main() -> Result<(), ErrorCode> {
    line!("burst: start");

    // What the store holds now.
    let mut buf = [0u8; 512];
    let mut next_gen = 1;
    for i in 0..KEYS {
        match KeyValue::get(&key(i), &mut buf) {
            Ok(len) => match buf.get(..len as usize).and_then(|v| check(i, v)) {
                Some(gen) => {
                    next_gen = next_gen.max(gen + 1);
                    line!("state {i} {gen}");
                }
                None => {
                    line!("state {i} bad");
                }
            },
            Err(ErrorCode::NoSupport) => {
                line!("state {i} none");
            }
            Err(e) => {
                line!("state {i} error {e:?}");
            }
        }
    }
    match KeyValue::get(CANARY, &mut buf) {
        Ok(len) if buf.get(..len as usize) == Some(CANARY_VALUE) => {
            line!("canary ok");
        }
        Ok(_) => {
            line!("canary bad");
        }
        Err(_) => {
            line!("canary none");
            KeyValue::set(CANARY, CANARY_VALUE)?;
            line!("canary set");
        }
    }
    // Deleted keys leave no generation behind; they restart from what the others show.
    // Tests only need generations to be unique per key and increasing, which holds because a
    // boot's generations all exceed the largest one stored.

    let mut v = [0u8; MAX_VALUE];
    for n in 0..OPS {
        let gen = next_gen + n;
        let i = gen % KEYS;
        let k = key(i);
        let result = if gen % 11 == 0 {
            line!("del {i} {gen}");
            match KeyValue::delete(&k) {
                // Deleting a key that is not there is fine: the state is the same.
                Err(ErrorCode::NoSupport) => Ok(()),
                r => r,
            }
        } else {
            let len = value(i, gen, &mut v);
            line!("set {i} {gen}");
            KeyValue::set(&k, &v[..len])
        };
        match result {
            Ok(()) => {
                line!("ok {i} {gen}");
            }
            Err(e) => {
                line!("err {i} {gen} {e:?}");
                return Err(e);
            }
        }
    }
    line!("burst: done");
    Ok(())
}
