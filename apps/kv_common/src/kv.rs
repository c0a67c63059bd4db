// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `get` on the KV driver (0x50003) that keeps what the kernel's upcall says.
//!
//! ```text
//! +--------------------------------+
//! | kv_stats / kv_share logic      |
//! +--------------------------------+
//! | kv::get (this file)            |
//! +--------------------------------+
//!    syscalls: KV driver 0x50003
//! ```
//!
//! `libtock_key_value::KeyValue::get` turns the upcall `(status, len, 0)` into `Ok(len)` or
//! `Err(code)`, which loses the difference between the two `SIZE` answers of the kernel's
//! driver (`capsules/extra/src/kv_driver.rs`, `get_complete`):
//!
//! | upcall | meaning | here |
//! |---|---|---|
//! | `(SUCCESS, len, 0)` | the whole value was copied | `Ok(Got { len, copied: len })` |
//! | `(SIZE, len, 0)`, `len > 0` | the value is longer than the buffer; the first `buf.len()` bytes were copied | `Ok(Got { len, copied: buf.len() })` |
//! | `(SIZE, 0, 0)` | the stored record does not fit the kernel's own buffer; nothing was copied | `Err(SIZE)` |
//! | `(NOSUPPORT, 0, 0)` | no such key, or the caller may not read it | `Err(NOSUPPORT)` |
//! | other error | e.g. `FAIL` from flash | `Err(code)` |
//!
//! A failed allow, subscribe or command (`NODEVICE` when there is no KV driver, `SIZE` for a
//! key over 64 bytes, ...) is returned as is. The syscalls are the ones `KeyValue::get`
//! makes: allow-ro 0 (key), allow-rw 0 (value), subscribe 0, command 1, yield until the
//! upcall, then everything is un-shared.

use core::cell::Cell;

use libtock_platform::{share, AllowRo, AllowRw, DefaultConfig, ErrorCode, Subscribe, Syscalls};

const DRIVER_NUM: u32 = 0x50003;
const GET: u32 = 1;

/// A successful read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Got {
    /// The value's full length.
    pub len: u32,
    /// How many bytes of it are in the buffer.
    pub copied: usize,
}

/// Reads `key` into `buf`.
pub fn get<S: Syscalls>(key: &[u8], buf: &mut [u8]) -> Result<Got, ErrorCode> {
    let buf_len = buf.len();
    let upcall: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
    let (status, len, _) = share::scope::<
        (AllowRo<_, DRIVER_NUM, 0>, AllowRw<_, DRIVER_NUM, 0>, Subscribe<_, DRIVER_NUM, 0>),
        _,
        _,
    >(|handle| {
        let (allow_key, allow_value, subscribe) = handle.split();
        S::allow_ro::<DefaultConfig, DRIVER_NUM, 0>(allow_key, key)?;
        S::allow_rw::<DefaultConfig, DRIVER_NUM, 0>(allow_value, buf)?;
        S::subscribe::<_, _, DefaultConfig, DRIVER_NUM, 0>(subscribe, &upcall)?;
        S::command(DRIVER_NUM, GET, 0, 0).to_result::<(), ErrorCode>()?;
        loop {
            S::yield_wait();
            if let Some(args) = upcall.get() {
                return Ok::<_, ErrorCode>(args);
            }
        }
    })?;
    match status {
        0 => Ok(Got { len, copied: (len as usize).min(buf_len) }),
        s if s == ErrorCode::Size as u32 && len > 0 => Ok(Got { len, copied: buf_len }),
        s => Err(ErrorCode::try_from(s).unwrap_or(ErrorCode::Fail)),
    }
}
