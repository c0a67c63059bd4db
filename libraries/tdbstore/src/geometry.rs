//! Flash geometry (read, program and erase units, size, erased value) and the limits within
//! which the engine serves it.

use crate::format::{Layout, MAX_KEY_LEN};

/// Flash geometry, as Mbed's BlockDevice describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes of flash the store owns (both areas).
    pub size: u32,
    /// Read unit; must divide `program_size`.
    pub read_size: u32,
    /// Program unit: written once per erase, whole.
    pub program_size: u32,
    /// Erase unit (sector).
    pub erase_size: u32,
    /// Value of an erased byte.
    pub erase_value: u8,
}

impl Geometry {
    /// The Portenta H7 key-value region used by Arduino's tutorial: 12 x 128 KiB sectors of
    /// STM32H747 bank flash, 32-byte flash words.
    pub const PORTENTA: Geometry = Geometry {
        size: 12 * 131_072,
        read_size: 1,
        program_size: 32,
        erase_size: 131_072,
        erase_value: 0xFF,
    };
    /// A serial NOR (QSPI-like) region: byte programs, 4 KiB sectors, 2 MiB.
    pub const QSPI: Geometry =
        Geometry { size: 2 << 20, read_size: 1, program_size: 1, erase_size: 4096, erase_value: 0xFF };

    /// Size of one area: half the whole erase units, rounded down (an odd last sector is unused).
    pub const fn area_size(&self) -> u32 {
        if self.erase_size == 0 {
            return 0;
        }
        (self.size / self.erase_size / 2) * self.erase_size
    }

    /// Largest program unit the engine serves (and the largest read unit, which divides it).
    pub const MAX_PROGRAM_SIZE: u32 = 256;
    /// Largest area (half the region) the engine serves.
    pub const MAX_AREA_SIZE: u32 = 1 << 30;

    /// Checks that the engine can serve this geometry; the error names the field to change.
    ///
    /// Accepted, and served correctly (the model tests and the power-cut campaign run a
    /// matrix of read units 1..32, program units 1..256, 4 KiB and 128 KiB sectors):
    /// - `read_size`, `program_size`, `erase_size`: powers of two with
    ///   `read_size <= program_size <= erase_size` (so each divides the next), and
    ///   `program_size <= 256` ([`Geometry::MAX_PROGRAM_SIZE`]);
    /// - `size`: two areas of whole sectors (an odd last sector and any remainder are unused),
    ///   each at most 1 GiB, and large enough to hold the reserved area, the master record
    ///   and one record with the longest key ([`crate::format::MAX_KEY_LEN`]) below the
    ///   log limit ([`crate::format::Layout::log_limit`]);
    /// - `erase_value`: any byte.
    pub fn validate(&self) -> Result<(), GeometryError> {
        use GeometryError as E;
        let g = self;
        let units =
            [("read_size", g.read_size), ("program_size", g.program_size), ("erase_size", g.erase_size)];
        for (field, v) in units {
            if v == 0 {
                return Err(E::Zero(field));
            }
            if !v.is_power_of_two() {
                return Err(E::NotPowerOfTwo(field));
            }
        }
        if g.read_size > g.program_size || g.program_size > g.erase_size {
            return Err(E::UnitsNotNested);
        }
        if g.program_size > Self::MAX_PROGRAM_SIZE {
            return Err(E::ProgramSizeTooLarge);
        }
        let area = g.area_size();
        if area == 0 || area > Self::MAX_AREA_SIZE {
            return Err(E::AreaSize);
        }
        let lay = Layout::new(g.program_size, area);
        let smallest = lay.record_size(MAX_KEY_LEN as u32, 0).unwrap_or(u32::MAX);
        if lay.first_record() + g.program_size > area || lay.capacity() < smallest {
            return Err(E::AreaSize);
        }
        Ok(())
    }
}

/// Why a geometry or buffer set is refused by [`Store::new`]. `Display` says which field to
/// change and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// This unit size (`read_size`, `program_size` or `erase_size`) is zero.
    Zero(&'static str),
    /// This unit size is not a power of two.
    NotPowerOfTwo(&'static str),
    /// `read_size` <= `program_size` <= `erase_size` does not hold.
    UnitsNotNested,
    /// `program_size` is above [`Geometry::MAX_PROGRAM_SIZE`].
    ProgramSizeTooLarge,
    /// `size` holds fewer than two sectors, more than 1 GiB per area, or areas too small for
    /// the master record and one record with the longest key.
    AreaSize,
    /// The work buffer is shorter than [`Store::min_work_len`].
    WorkBufferTooSmall,
}

impl core::fmt::Display for GeometryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GeometryError::Zero(field) => write!(f, "{field} is zero"),
            GeometryError::NotPowerOfTwo(field) => write!(f, "{field} is not a power of two"),
            GeometryError::UnitsNotNested => {
                f.write_str("read_size must be <= program_size, which must be <= erase_size")
            }
            GeometryError::ProgramSizeTooLarge => {
                write!(f, "program_size is above {} bytes", Geometry::MAX_PROGRAM_SIZE)
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
