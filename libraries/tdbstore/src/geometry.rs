//! The limits within which the engine serves a flash geometry ([`check_geometry`]) and why
//! it refuses one ([`GeometryError`]). The [`Geometry`] type itself is `flash-geometry`'s,
//! shared with the flash simulator and Tock's NOR-flash HIL, so no layer converts it.

use crate::format::{Layout, MAX_KEY_LEN};

pub use flash_geometry::{Geometry, UnitError};

/// Largest program unit the engine serves (and the largest read unit, which divides it).
pub const MAX_PROGRAM_SIZE: u32 = 256;
/// Largest area (half the region) the engine serves.
pub const MAX_AREA_SIZE: u32 = 1 << 30;

/// Checks that the engine can serve `g`; the error names the field to change. [`Store::new`]
/// refuses exactly these geometries, with the same errors.
///
/// Accepted, and served correctly (the model tests and the power-cut campaign run a
/// matrix of read units 1..32, program units 1..256, 4 KiB and 128 KiB sectors, and sectors
/// of 8 to 256 bytes, no larger than the area head, which then spans several: format and
/// compaction erase each of them, as Mbed's `reset_area` does, before programming the head):
/// - `read_size`, `program_size`, `erase_size`: powers of two with
///   `read_size <= program_size <= erase_size` (so each divides the next; this much is
///   [`Geometry::check_units`], which every flash user shares), and `program_size <= 256`
///   ([`MAX_PROGRAM_SIZE`]);
/// - `size`: two areas of whole sectors (an odd last sector and any remainder are unused),
///   each at most 1 GiB ([`MAX_AREA_SIZE`]), and large enough to hold the reserved area, the
///   master record and one record with the longest key ([`crate::format::MAX_KEY_LEN`])
///   below the log limit ([`crate::format::Layout::log_limit`]);
/// - `erase_value`: any byte.
///
/// [`Store::new`]: crate::Store::new
pub fn check_geometry(g: &Geometry) -> Result<(), GeometryError> {
    use GeometryError as E;
    g.check_units()?;
    if g.program_size > MAX_PROGRAM_SIZE {
        return Err(E::ProgramSizeTooLarge);
    }
    let area = g.area_size();
    if area == 0 || area > MAX_AREA_SIZE {
        return Err(E::AreaSize);
    }
    let lay = Layout::new(g.program_size, area);
    let smallest = lay.record_size(MAX_KEY_LEN as u32, 0).unwrap_or(u32::MAX);
    if lay.first_record() + g.program_size > area || lay.capacity() < smallest {
        return Err(E::AreaSize);
    }
    Ok(())
}

/// Why a geometry or buffer set is refused by [`Store::new`](crate::Store::new) (and a
/// geometry by [`check_geometry`]). `Display` says which field to change and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// This unit size (`read_size`, `program_size` or `erase_size`) is zero.
    Zero(&'static str),
    /// This unit size is not a power of two.
    NotPowerOfTwo(&'static str),
    /// `read_size` <= `program_size` <= `erase_size` does not hold.
    UnitsNotNested,
    /// `program_size` is above [`MAX_PROGRAM_SIZE`].
    ProgramSizeTooLarge,
    /// `size` holds fewer than two sectors, more than 1 GiB per area, or areas too small for
    /// the master record and one record with the longest key.
    AreaSize,
    /// The work buffer is shorter than [`Store::min_work_len`](crate::Store::min_work_len).
    WorkBufferTooSmall,
}

impl From<UnitError> for GeometryError {
    fn from(e: UnitError) -> Self {
        match e {
            UnitError::Zero(field) => GeometryError::Zero(field),
            UnitError::NotPowerOfTwo(field) => GeometryError::NotPowerOfTwo(field),
            UnitError::NotNested => GeometryError::UnitsNotNested,
        }
    }
}

impl core::fmt::Display for GeometryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GeometryError::Zero(field) => UnitError::Zero(field).fmt(f),
            GeometryError::NotPowerOfTwo(field) => UnitError::NotPowerOfTwo(field).fmt(f),
            GeometryError::UnitsNotNested => UnitError::NotNested.fmt(f),
            GeometryError::ProgramSizeTooLarge => {
                write!(f, "program_size is above {MAX_PROGRAM_SIZE} bytes")
            }
            GeometryError::AreaSize => f.write_str(
                "size must hold two areas (half the sectors each, at most 1 GiB per area) with \
                 room for the master record and one record with a 127-byte key: give a larger \
                 size or a smaller erase_size",
            ),
            GeometryError::WorkBufferTooSmall => {
                f.write_str("the work buffer is shorter than Store::min_work_len")
            }
        }
    }
}
