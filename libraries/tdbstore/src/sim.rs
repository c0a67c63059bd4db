//! The engine on the flash simulator: opening a store over a [`FlashSim`] and classifying
//! its errors.
//!
//! Tests, the CLI, the power-cut campaign and the benchmarks all open stores this way, so
//! the simulator's ECC and power-loss errors reach the engine as what they are. Both sides
//! share one [`crate::Geometry`], so nothing converts it.

use flash_sim::{FlashSim, SimError};

use crate::blocking::BlockingStore;
use crate::engine::{IoError, StoreOptions};
use crate::geometry::GeometryError;
use crate::index::IndexEntry;

/// A store over a simulated flash.
pub type SimStore<'w> = BlockingStore<'w, FlashSim>;

/// How simulator errors reach the engine.
pub fn classify(e: &SimError) -> IoError {
    match e {
        SimError::Ecc { .. } => IoError::Ecc,
        SimError::PowerLost => IoError::PowerLost,
        SimError::OutOfBounds | SimError::NotAligned => IoError::Protected,
        SimError::DoubleProgram { .. } => IoError::Other,
    }
}

/// Opens (does not mount) a store over the whole simulated device.
pub fn open<'w>(
    flash: FlashSim,
    options: StoreOptions,
    work: &'w mut [u8],
    index: &'w mut [IndexEntry],
) -> Result<SimStore<'w>, GeometryError> {
    let g = flash.geometry();
    Ok(BlockingStore::new(flash, g, options, work, index)?.with_error_map(classify))
}
