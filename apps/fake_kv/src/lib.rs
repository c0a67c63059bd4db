// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Host fakes for `libtock_unittest` that behave like the Tock kernel the apps run on.
//!
//! ```text
//! +------------------------------------------+
//! | app logic (kv_stats, kv_share) on the    |
//! | host, generic over Syscalls               |
//! +------------------------------------------+
//!    libtock_key_value / libtock_alarm / libtock_rng
//! +------------------------------------------+
//! | libtock_unittest::fake::Kernel           |
//! +------------------------------------------+
//!    fake::SyscallDriver
//! +------------------------------------------+
//! | fake_kv (this crate): KeyValue (0x50003),|
//! | Clock (0x0), Rng (0x40001)               |
//! +------------------------------------------+
//! ```
//!
//! libtock-rs ships a fake KV driver (`libtock_unittest::fake::KeyValue`), but it disagrees
//! with the kernel: it only accepts UTF-8 keys and values (it panics on other bytes), has no
//! size limits, returns success where the kernel returns `SIZE`, and knows nothing of storage
//! permissions. [`KeyValue`] here follows the kernel's stack as the board wires it, read from
//! Tock's sources at the pinned revision:
//!
//! - `capsules/extra/src/kv_driver.rs` (`KVStoreDriver`): the syscall interface, its buffer
//!   sizes (64-byte key buffer, 512-byte value buffer, from `components::kv`) and the
//!   truncation rule of `get` (copy what fits, upcall `SIZE` with the full length);
//! - `capsules/extra/src/kv_store_permissions.rs` (`KVStorePermissions`): the 9-byte header
//!   stored in front of every value (version, length, write id) and the read / modify checks;
//! - `kernel/src/storage_permissions.rs` and `capsules/system/src/storage_permissions/
//!   tbf_header.rs`: how a process's TBF `write_id` / `read_ids` / `access_ids` become its
//!   `StoragePermissions` ([`Permissions::from_tbf`]).
//!
//! [`Store`] is the shared key-value store; any number of [`KeyValue`] drivers, one per
//! simulated process with its own [`Permissions`], can be attached to it, one at a time, to
//! the thread's `fake::Kernel`. A store outlives kernels, so a test can "reboot" (drop the
//! kernel, create a new one) and run an app again against the same data.
//!
//! The apps also need two drivers whose upstream fakes are too thin: [`Clock`] (the alarm
//! driver with `TIME` and `STOP`, which `fake::Alarm` lacks) and [`Rng`] (there is no upstream
//! fake RNG).

mod clock;
mod kv;
mod rng;

pub use clock::Clock;
pub use kv::{
    allow_ro, allow_rw, command, Completion, Failure, KeyValue, Limits, Op, Permissions, Record, Store,
    DRIVER_NUM, HEADER_LENGTH, UPCALL,
};
pub use rng::{Rng, RngMode};

#[cfg(test)]
mod tests;
