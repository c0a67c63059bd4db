// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Component for the TDBStore key-value capsule: a board's flash driver in, `hil::kv::KV` out.
//!
//! ```text
//! KVStoreDriver <- VirtualKVPermissions <- MuxKVPermissions <- KVStorePermissions   (upstream)
//!                                                                   <- TdbStoreKv (this component)
//!                                                                        <- NorFlash driver
//! ```
//!
//! Usage, in a board's `main.rs` (the upstream KV components do the rest):
//!
//! ```rust,ignore
//! let kv_store = capsules_tdbstore::component::TdbStoreComponent::new(flash)
//!     .finalize(capsules_tdbstore::tdbstore_component_static!(FlashType));
//! let _ = kv_store.mount(); // prints the outcome; user operations wait for it
//! let kv_store_permissions = components::kv::KVStorePermissionsComponent::new(kv_store)
//!     .finalize(components::kv_store_permissions_component_static!(TdbStoreKv<'static, FlashType>));
//! ```
//!
//! RAM: the capsule struct (~300 bytes with the engine's state), a work buffer and a flash
//! buffer (default 512 bytes each: larger means fewer, larger flash requests), and 8 bytes per
//! key of index (default 256 keys = 2 KiB). The default totals about 3.3 KiB.

use core::mem::MaybeUninit;

use kernel::component::Component;
use kernel::deferred_call::DeferredCallClient;
use nor_flash_hil::NorFlash;
use tdbstore::{Geometry, IndexEntry, Store, StoreOptions};

use crate::tdbstore_kv::TdbStoreKv;

/// Buffers for [`TdbStoreComponent`]: `tdbstore_component_static!(FlashType)` or
/// `tdbstore_component_static!(FlashType, work_bytes, max_keys)`.
#[macro_export]
macro_rules! tdbstore_component_static {
    ($F:ty $(,)?) => {
        $crate::tdbstore_component_static!($F, 512, 256)
    };
    ($F:ty, $work:expr, $keys:expr $(,)?) => {{
        let kv = kernel::static_buf!($crate::tdbstore_kv::TdbStoreKv<'static, $F>);
        let work = kernel::static_buf!([u8; $work]);
        let flash_buf = kernel::static_buf!([u8; $work]);
        let index = kernel::static_buf!([$crate::IndexEntry; $keys]);
        (
            kv,
            work.write([0; $work]) as &'static mut [u8],
            flash_buf.write([0; $work]) as &'static mut [u8],
            index.write([$crate::IndexEntry { hash: 0, offset: 0 }; $keys]) as &'static mut [$crate::IndexEntry],
        )
    }};
}

/// The capsule type a board names.
pub type TdbStoreComponentType<F> = TdbStoreKv<'static, F>;

/// Creates the capsule over a flash driver and registers it as the driver's client.
pub struct TdbStoreComponent<F: NorFlash<'static> + 'static> {
    flash: &'static F,
    options: StoreOptions,
}

impl<F: NorFlash<'static> + 'static> TdbStoreComponent<F> {
    /// The capsule over `flash`, with the options boards want: format a blank region, the
    /// Mbed record format, and early compaction when less than an eighth of a sector is free,
    /// so compaction happens while idle rather than inside a `set`.
    pub fn new(flash: &'static F) -> Self {
        let g = flash.geometry();
        let options = StoreOptions { compact_below: g.erase_size / 8, ..StoreOptions::default() };
        TdbStoreComponent { flash, options }
    }

    /// Overrides the engine options (e.g. `RecordFormat::Compact` for a store no Mbed code
    /// will read).
    pub fn with_options(mut self, options: StoreOptions) -> Self {
        self.options = options;
        self
    }
}

impl<F: NorFlash<'static> + 'static> Component for TdbStoreComponent<F> {
    type StaticInput = (
        &'static mut MaybeUninit<TdbStoreKv<'static, F>>,
        &'static mut [u8],
        &'static mut [u8],
        &'static mut [IndexEntry],
    );
    type Output = &'static TdbStoreKv<'static, F>;

    fn finalize(self, (kv, work, flash_buf, index): Self::StaticInput) -> Self::Output {
        let g = self.flash.geometry();
        let geometry = Geometry {
            size: g.size,
            read_size: g.read_size,
            program_size: g.program_size,
            erase_size: g.erase_size,
            erase_value: g.erase_value,
        };
        // A geometry or buffer the engine cannot use is a board bug: fail at boot, loudly.
        let store = match Store::new(geometry, self.options, work, index) {
            Ok(s) => s,
            Err(e) => panic!("tdbstore: unusable flash geometry or buffers: {:?}", e),
        };
        let kv = kv.write(TdbStoreKv::new(self.flash, store, flash_buf));
        self.flash.set_client(kv);
        kv.register();
        kv
    }
}
