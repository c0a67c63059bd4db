// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The geometry of a NOR-flash region, as Mbed's BlockDevice describes it: one [`Geometry`]
//! type for everything that talks about flash sizes, so no layer converts between copies.
//! The TDBStore engine (`tdbstore`, which re-exports it as `tdbstore::Geometry`), the flash
//! simulator (`flash-sim`) and Tock's NOR-flash HIL (`nor-flash-hil`) all use this one.
//!
//! It holds the sizes, the presets every side uses, a few derived sizes, and the one check
//! every user shares ([`Geometry::check_units`]: the read, program and erase units are
//! non-zero powers of two, each at most the next). Each user adds its own limits on top:
//! the engine its largest program unit and area size, the simulator that the size is whole
//! sectors. `no_std`, no dependencies, no allocation.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::fmt;

/// Sizes of a NOR-flash region, in bytes, and the value of an erased byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Bytes in the region.
    pub size: u32,
    /// Read unit: reads start and end on it.
    pub read_size: u32,
    /// Program unit: programmed whole, at most once between erases.
    pub program_size: u32,
    /// Erase unit (sector).
    pub erase_size: u32,
    /// Value of every byte of an erased unit.
    pub erase_value: u8,
}

impl Geometry {
    /// Arduino Portenta H7 (STM32H747) internal flash as the store uses it (the key-value
    /// region of Arduino's tutorial): 12 sectors of 128 KiB, 32-byte flash words.
    pub const PORTENTA: Geometry = Geometry {
        size: 12 * 131_072,
        read_size: 1,
        program_size: 32,
        erase_size: 131_072,
        erase_value: 0xFF,
    };
    /// A generic serial (QSPI) NOR flash: 2 MiB, byte programs, 4 KiB sectors.
    pub const QSPI: Geometry =
        Geometry { size: 2 << 20, read_size: 1, program_size: 1, erase_size: 4096, erase_value: 0xFF };
    /// The small geometry of the `g2_small` golden vectors: 32 KiB, 8-byte program units,
    /// 4 KiB sectors.
    pub const SMALL: Geometry =
        Geometry { size: 32_768, read_size: 1, program_size: 8, erase_size: 4096, erase_value: 0xFF };

    /// Checks the units every user relies on: `read_size`, `program_size` and `erase_size`
    /// are non-zero powers of two with `read_size <= program_size <= erase_size` (so each
    /// divides the next). The error names the field to change. `size` is not checked here:
    /// what it must be depends on the user.
    pub const fn check_units(&self) -> Result<(), UnitError> {
        let units = [
            ("read_size", self.read_size),
            ("program_size", self.program_size),
            ("erase_size", self.erase_size),
        ];
        let mut i = 0;
        while i < units.len() {
            let (field, v) = units[i];
            if v == 0 {
                return Err(UnitError::Zero(field));
            }
            if !v.is_power_of_two() {
                return Err(UnitError::NotPowerOfTwo(field));
            }
            i += 1;
        }
        if self.read_size > self.program_size || self.program_size > self.erase_size {
            return Err(UnitError::NotNested);
        }
        Ok(())
    }

    /// Size of one of two equal areas: half the whole sectors, rounded down (an odd last
    /// sector and any remainder are unused). 0 if `erase_size` is 0.
    pub const fn area_size(&self) -> u32 {
        if self.erase_size == 0 {
            return 0;
        }
        (self.size / self.erase_size / 2) * self.erase_size
    }

    /// Number of whole sectors (erase units); 0 if `erase_size` is 0.
    pub const fn sector_count(&self) -> u32 {
        if self.erase_size == 0 {
            return 0;
        }
        self.size / self.erase_size
    }

    /// Number of whole program units; 0 if `program_size` is 0.
    pub const fn unit_count(&self) -> u32 {
        if self.program_size == 0 {
            return 0;
        }
        self.size / self.program_size
    }
}

/// Why [`Geometry::check_units`] refuses a geometry. `Display` names the field to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitError {
    /// This unit size (`read_size`, `program_size` or `erase_size`) is zero.
    Zero(&'static str),
    /// This unit size is not a power of two.
    NotPowerOfTwo(&'static str),
    /// `read_size <= program_size <= erase_size` does not hold.
    NotNested,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::Zero(field) => write!(f, "{field} is zero"),
            UnitError::NotPowerOfTwo(field) => write!(f, "{field} is not a power of two"),
            UnitError::NotNested => {
                f.write_str("read_size must be <= program_size, which must be <= erase_size")
            }
        }
    }
}

impl core::error::Error for UnitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_pass_the_unit_check() {
        for g in [Geometry::PORTENTA, Geometry::QSPI, Geometry::SMALL] {
            assert_eq!(g.check_units(), Ok(()), "{g:?}");
        }
        assert_eq!(Geometry::PORTENTA.size, 1_572_864);
        assert_eq!(Geometry::QSPI.size, 2 * 1024 * 1024);
        assert_eq!(Geometry::PORTENTA.sector_count(), 12);
        assert_eq!(Geometry::PORTENTA.area_size(), 6 * 131_072);
        assert_eq!(Geometry::SMALL.unit_count(), 4096);
    }

    #[test]
    fn unit_check_names_the_field() {
        let bad = |f: fn(&mut Geometry)| {
            let mut g = Geometry::SMALL;
            f(&mut g);
            g.check_units()
        };
        assert_eq!(bad(|g| g.read_size = 0), Err(UnitError::Zero("read_size")));
        assert_eq!(bad(|g| g.program_size = 0), Err(UnitError::Zero("program_size")));
        assert_eq!(bad(|g| g.erase_size = 0), Err(UnitError::Zero("erase_size")));
        assert_eq!(bad(|g| g.read_size = 3), Err(UnitError::NotPowerOfTwo("read_size")));
        assert_eq!(bad(|g| g.program_size = 24), Err(UnitError::NotPowerOfTwo("program_size")));
        assert_eq!(bad(|g| g.erase_size = 3000), Err(UnitError::NotPowerOfTwo("erase_size")));
        assert_eq!(bad(|g| g.read_size = 16), Err(UnitError::NotNested));
        assert_eq!(bad(|g| g.program_size = 8192), Err(UnitError::NotNested));
        // The size is the user's business.
        assert_eq!(bad(|g| g.size = 0), Ok(()));
        assert_eq!(bad(|g| g.size = 4097), Ok(()));
    }

    #[test]
    fn derived_sizes_never_divide_by_zero() {
        let g = Geometry { erase_size: 0, program_size: 0, ..Geometry::SMALL };
        assert_eq!((g.area_size(), g.sector_count(), g.unit_count()), (0, 0, 0));
        // An odd last sector and a partial one are left out of the areas.
        assert_eq!(Geometry { size: 3 * 4096 + 100, ..Geometry::SMALL }.area_size(), 4096);
    }

    #[test]
    fn display_names_the_field() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(UnitError::Zero("read_size").to_string(), "read_size is zero");
        assert_eq!(UnitError::NotPowerOfTwo("erase_size").to_string(), "erase_size is not a power of two");
        assert!(UnitError::NotNested.to_string().contains("program_size"));
    }
}
