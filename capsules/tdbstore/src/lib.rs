// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Mbed OS TDBStore as a Tock key-value store (`hil::kv::KV`) over a NOR-flash HIL.
//!
//! ```text
//! apps --syscalls (0x50003)--> KvSyscallDriver (kv_syscall.rs; upstream's ABI)
//!                                 hil::kv::KVPermissions
//!                              VirtualKVPermissions / MuxKVPermissions   (upstream)
//!                                 hil::kv::KVPermissions
//!                              KVStorePermissions                     (upstream)
//!                                 hil::kv::KV
//!                              capsules_tdbstore (this file: crate root) -- tdbstore engine
//!                                 nor_flash_hil::NorFlash
//!                              chips/stm32h7 FLASH | boards/qemu_rv32_virt_kv CFI flash
//! ```
//!
//! - [`tdbstore_kv::TdbStoreKv`]: the capsule (scheduling, return values, keys, errors
//!   through upstream's layers, garbage collection and buffer rules in its module docs), and
//!   [`tdbstore_kv::error_code`], the one mapping from engine errors to `ErrorCode`.
//! - [`kv_syscall::KvSyscallDriver`]: the KV syscall driver (0x50003) with upstream
//!   `KVStoreDriver`'s ABI, without its defects (an app dying during a `get` wedges the store
//!   for everyone; refused commands stay pending; process order starves apps); its module docs
//!   list them.
//! - Keys: any bytes, mapped onto TDBStore keys by [`tdbstore::app_key`] (valid Mbed keys
//!   unchanged, others escaped).
//! - [`component::TdbStoreComponent`] and [`tdbstore_component_static!`]: how a board
//!   creates it.
//!
//! # Board wiring
//!
//! The flash driver implements `nor_flash_hil::NorFlash<'static>` over the key-value region
//! (and is its only user). The rest of the stack is upstream's `components::kv`:
//!
//! ```rust,ignore
//! type FlashHw = stm32h7::chip::FlashDriver<'static>; // any NorFlash<'static>
//! type KvStore = capsules_tdbstore::component::TdbStoreComponentType<FlashHw>;
//! type KvPermissions = components::kv::KVStorePermissionsComponentType<KvStore>;
//! type VirtualKv = components::kv::VirtualKVPermissionsComponentType<KvPermissions>;
//!
//! // Inside the board's `unsafe` set-up, after deferred calls are initialized:
//! let kv_store = capsules_tdbstore::component::TdbStoreComponent::new(flash)
//!     .finalize(capsules_tdbstore::tdbstore_component_static!(FlashHw));
//! // Mount from the first deferred call (prints one line; a blank region is formatted,
//! // a foreign one left untouched and reported). Without this, the first operation mounts.
//! let _ = kv_store.mount();
//! let kv_permissions = components::kv::KVStorePermissionsComponent::new(kv_store)
//!     .finalize(components::kv_store_permissions_component_static!(KvStore));
//! let kv_mux = components::kv::KVPermissionsMuxComponent::new(kv_permissions)
//!     .finalize(components::kv_permissions_mux_component_static!(KvPermissions));
//! let virtual_kv = components::kv::VirtualKVPermissionsComponent::new(kv_mux)
//!     .finalize(components::virtual_kv_permissions_component_static!(KvPermissions));
//! // The syscall driver: this crate's, with upstream's ABI (upstream's KVDriverComponent
//! // works too, with the defects `kv_syscall` lists).
//! use capsules_tdbstore::kv_syscall::{KvSyscallDriver, KEY_LEN, VALUE_BUF_LEN};
//! let kv_driver = static_init!(
//!     KvSyscallDriver<'static, VirtualKv>,
//!     KvSyscallDriver::new(
//!         virtual_kv,
//!         static_init!([u8; KEY_LEN], [0; KEY_LEN]),
//!         static_init!([u8; VALUE_BUF_LEN], [0; VALUE_BUF_LEN]),
//!         board_kernel.create_grant(
//!             capsules_extra::kv_driver::DRIVER_NUM,
//!             &create_capability!(capabilities::MemoryAllocationCapability),
//!         ),
//!     )
//! );
//! kernel::hil::kv::KVPermissions::set_client(virtual_kv, kv_driver);
//! kv_driver.register(); // its deferred call
//! // ...and `capsules_extra::kv_driver::DRIVER_NUM => f(Some(self.kv_driver))` in
//! // `SyscallDriverLookup`. Apps need TBF storage permissions (write_id, read_ids,
//! // access_ids) and a process loader with a storage-permissions policy that honours them.
//! ```
//!
//! To recover a region that holds something else (mount reports `Foreign`), the board calls
//! `kv_store.format()`: it erases the region's area heads and starts an empty store.
//!
//! # RAM
//!
//! Static buffers, sized by `tdbstore_component_static!(F, keys, work)`
//! ([`tdbstore_component_static!`]):
//!
//! | what | bytes | default |
//! |---|---|---|
//! | RAM index | `keys` x 8 | 256 keys: 2048 |
//! | engine work buffer, lent to the flash driver for each read and program | `work` (at least `tdbstore::Store::min_work_len`: 192 with 32-byte program units) | 512 |
//! | the capsule, engine state included | 700 on Cortex-M: 484 the engine (16 of them the finished operation's result until the capsule takes it), 128 the stored form of the key in flight (`size_of::<TdbStoreKv<F>>()`) | |
//!
//! About 3.2 KiB with the defaults. Upstream's layers add their own: `KVStorePermissions`
//! a 9-byte header buffer; the syscall driver 64 + 512 bytes of key and value buffers.
#![no_std]
#![forbid(unsafe_code)]

pub mod component;
pub mod kv_syscall;
pub mod tdbstore_kv;

/// The engine crate, for [`tdbstore_component_static!`] and for options
/// ([`tdbstore::StoreOptions`]).
pub use tdbstore;
pub use tdbstore::IndexEntry;
