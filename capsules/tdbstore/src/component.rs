// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Components for this crate's capsules.
//!
//! [`TdbStoreComponent`] takes a NOR-flash region in and gives `hil::kv::KV` out;
//! [`KvSyscallComponent`] puts the KV syscall driver over the permission layers, the
//! counterpart of upstream's `components::kv::KVDriverComponent`.
//!
//! ```text
//! upstream components::kv (KVStorePermissions, mux, VirtualKVPermissions, KVStoreDriver)
//!
//!    hil::kv::KV
//!
//! +---------------------------------------------+
//! | TdbStoreComponent (this file) -> TdbStoreKv  |
//! +---------------------------------------------+
//!
//!    nor_flash_hil::NorFlash
//!
//! chip NOR-flash driver
//! ```
//!
//! Usage (the full chain is in the crate docs):
//!
//! ```rust,ignore
//! type KvStore = capsules_tdbstore::component::TdbStoreComponentType<FlashHw>;
//! let kv_store = capsules_tdbstore::component::TdbStoreComponent::new(flash)
//!     .finalize(capsules_tdbstore::tdbstore_component_static!(FlashHw));
//! // or with explicit sizes: (flash type, index entries, work buffer)
//! //  .finalize(capsules_tdbstore::tdbstore_component_static!(FlashHw, 64, 512, 512));
//! let _ = kv_store.mount();
//! ```

use core::mem::MaybeUninit;

use kernel::capabilities::MemoryAllocationCapability;
use kernel::component::Component;
use kernel::deferred_call::DeferredCallClient;
use kernel::hil::kv::KVPermissions;
use nor_flash_hil::NorFlash;
use tdbstore::{IndexEntry, Store, StoreOptions};

use crate::kv_syscall::{KvSyscallDriver, KEY_LEN, VALUE_BUF_LEN};
use crate::tdbstore_kv::TdbStoreKv;

/// Default number of keys the RAM index holds (8 bytes each: 2 KiB).
pub const DEFAULT_KEYS: usize = 256;
/// Default engine work buffer: at least [`tdbstore::Store::min_work_len`] of the geometry
/// (192 bytes with 32-byte program units); more means fewer, larger flash requests.
pub const DEFAULT_WORK_LEN: usize = 512;

/// Static buffers for [`TdbStoreComponent`].
///
/// `(flash type)` with the defaults, or `(flash type, index entries, work buffer bytes)`.
/// The work buffer is the only I/O buffer: the capsule lends it to the flash driver for
/// each read and program.
///
/// RAM: `keys * 8 + work` bytes of buffers plus the capsule itself (see the crate docs).
#[macro_export]
macro_rules! tdbstore_component_static {
    ($F:ty $(,)?) => {
        $crate::tdbstore_component_static!(
            $F,
            $crate::component::DEFAULT_KEYS,
            $crate::component::DEFAULT_WORK_LEN
        )
    };
    ($F:ty, $keys:expr, $work:expr $(,)?) => {{
        let kv = kernel::static_buf!($crate::tdbstore_kv::TdbStoreKv<'static, $F>);
        let index = kernel::static_buf!([$crate::tdbstore::IndexEntry; $keys]);
        let work = kernel::static_buf!([u8; $work]);
        (kv, index, work)
    }};
}

/// The capsule type the component builds.
pub type TdbStoreComponentType<F> = TdbStoreKv<'static, F>;

/// Builds a [`TdbStoreKv`] over a NOR-flash region, sets it as the flash driver's client
/// and registers its deferred call. The engine's geometry is the driver's.
pub struct TdbStoreComponent<F: NorFlash<'static> + 'static, const KEYS: usize, const WORK: usize> {
    flash: &'static F,
    options: StoreOptions,
}

impl<F: NorFlash<'static> + 'static, const KEYS: usize, const WORK: usize> TdbStoreComponent<F, KEYS, WORK> {
    /// A component over `flash` with the options boards want: a blank region is formatted at
    /// mount (anything else that is not a TDBStore is left untouched), Mbed's record format,
    /// and early compaction during idle time once less than an eighth of a sector is free,
    /// so a `set` rarely has to compact.
    pub fn new(flash: &'static F) -> Self {
        let options =
            StoreOptions { compact_below: flash.geometry().erase_size / 8, ..StoreOptions::default() };
        TdbStoreComponent { flash, options }
    }

    /// Other engine options (e.g. `RecordFormat::Compact` for a store no Mbed code reads,
    /// or `compact_below: 0` to compact only when a write needs room).
    pub fn with_options(mut self, options: StoreOptions) -> Self {
        self.options = options;
        self
    }
}

impl<F: NorFlash<'static> + 'static, const KEYS: usize, const WORK: usize> Component
    for TdbStoreComponent<F, KEYS, WORK>
{
    type StaticInput = (
        &'static mut MaybeUninit<TdbStoreKv<'static, F>>,
        &'static mut MaybeUninit<[IndexEntry; KEYS]>,
        &'static mut MaybeUninit<[u8; WORK]>,
    );
    type Output = &'static TdbStoreKv<'static, F>;

    fn finalize(self, s: Self::StaticInput) -> Self::Output {
        let index = s.1.write([IndexEntry::default(); KEYS]);
        let work = s.2.write([0; WORK]);
        let geometry = self.flash.geometry();
        let store = Store::new(geometry, self.options, work, index);
        let kv = s.0.write(TdbStoreKv::new(self.flash, store));
        self.flash.set_client(kv);
        kv.register();
        kv
    }
}

/// Static buffers for [`KvSyscallComponent`]: `(KVPermissions type below the driver)`.
#[macro_export]
macro_rules! kv_syscall_component_static {
    ($V:ty $(,)?) => {{
        let driver = kernel::static_buf!($crate::kv_syscall::KvSyscallDriver<'static, $V>);
        let key = kernel::static_buf!([u8; $crate::kv_syscall::KEY_LEN]);
        let value = kernel::static_buf!([u8; $crate::kv_syscall::VALUE_BUF_LEN]);
        (driver, key, value)
    }};
}

/// The KV syscall driver ([`KvSyscallDriver`]) as the only client of `kv`.
///
/// `kv` is upstream's `VirtualKVPermissions`, so every app's request is queued in the
/// driver; wired as upstream's `KVDriverComponent` is, plus the deferred call the driver
/// starts queued operations from.
///
/// ```rust,ignore
/// let kv_driver = capsules_tdbstore::component::KvSyscallComponent::new(
///     virtual_kv, board_kernel, capsules_extra::kv_driver::DRIVER_NUM,
///     create_capability!(capabilities::MemoryAllocationCapability),
/// )
/// .finalize(capsules_tdbstore::kv_syscall_component_static!(VirtualKv));
/// ```
pub struct KvSyscallComponent<V: KVPermissions<'static> + 'static, C: MemoryAllocationCapability + 'static> {
    kv: &'static V,
    board_kernel: &'static kernel::Kernel,
    driver_num: usize,
    mem_cap: C,
}

impl<V: KVPermissions<'static> + 'static, C: MemoryAllocationCapability + 'static> KvSyscallComponent<V, C> {
    /// The driver over `kv`, registered as `driver_num` (0x50003 for apps' `key_value`).
    pub fn new(kv: &'static V, board_kernel: &'static kernel::Kernel, driver_num: usize, mem_cap: C) -> Self {
        Self { kv, board_kernel, driver_num, mem_cap }
    }
}

impl<V: KVPermissions<'static> + 'static, C: MemoryAllocationCapability + 'static> Component
    for KvSyscallComponent<V, C>
{
    type StaticInput = (
        &'static mut MaybeUninit<KvSyscallDriver<'static, V>>,
        &'static mut MaybeUninit<[u8; KEY_LEN]>,
        &'static mut MaybeUninit<[u8; VALUE_BUF_LEN]>,
    );
    type Output = &'static KvSyscallDriver<'static, V>;

    fn finalize(self, s: Self::StaticInput) -> Self::Output {
        let key = s.1.write([0; KEY_LEN]);
        let value = s.2.write([0; VALUE_BUF_LEN]);
        let grant = self.board_kernel.create_grant(self.driver_num, &self.mem_cap);
        let driver = s.0.write(KvSyscallDriver::new(self.kv, key, value, grant));
        self.kv.set_client(driver);
        driver.register();
        driver
    }
}
