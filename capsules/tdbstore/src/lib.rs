// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Mbed OS TDBStore as a Tock key-value store (`hil::kv::KV`) over a NOR-flash HIL.
//!
//! ```text
//! apps --syscalls--> kv_driver -> virtual_kv -> kv_store_permissions   (upstream Tock)
//!                                   hil::kv::KV
//!                      capsules_tdbstore (this crate)  <- tdbstore engine (sans-IO)
//!                                   nor_flash_hil::NorFlash
//!                      chips/stm32h7 FLASH | boards/qemu_rv32_virt_kv CFI flash
//! ```
//!
//! - [`tdbstore_kv::TdbStoreKv`]: the capsule, and [`tdbstore_kv::error_code`], the one
//!   mapping from engine errors to `ErrorCode`.
//! - [`component::TdbStoreComponent`]: how a board creates it (see its docs for the full
//!   KV stack wiring).
#![no_std]

pub mod component;
pub mod tdbstore_kv;

pub use tdbstore::IndexEntry;
