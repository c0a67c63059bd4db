//! The engine on the flash simulator: geometry conversion and error classification.
//!
//! Tests, the CLI, the power-cut campaign and the benchmarks all open stores this way, so
//! the simulator's ECC and power-loss errors reach the engine as what they are.

use flash_sim::{FlashSim, SimError};

use crate::blocking::BlockingStore;
use crate::engine::{IoError, StoreOptions};
use crate::geometry::{Geometry, GeometryError};
use crate::index::IndexEntry;

/// A store over a simulated flash.
pub type SimStore<'w> = BlockingStore<'w, FlashSim>;

/// The engine's geometry for a simulator geometry.
pub fn geometry(g: &flash_sim::Geometry) -> Geometry {
    Geometry {
        size: g.size,
        read_size: g.read_size,
        program_size: g.program_size,
        erase_size: g.erase_size,
        erase_value: g.erase_value,
    }
}

/// The simulator's geometry for an engine geometry.
pub fn sim_geometry(g: &Geometry) -> flash_sim::Geometry {
    flash_sim::Geometry {
        size: g.size,
        read_size: g.read_size,
        program_size: g.program_size,
        erase_size: g.erase_size,
        erase_value: g.erase_value,
    }
}

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
    let g = geometry(&flash.geometry());
    Ok(BlockingStore::new(flash, g, options, work, index)?.with_error_map(classify))
}
