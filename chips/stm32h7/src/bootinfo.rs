// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The Arduino bootloader's information block (`PortentaBootloaderInfo`, 0x0801_F000) and
//! the board's HSE frequency it implies.
//!
//! ```text
//! boards/portenta_h7 start() -> bootinfo (this file) -> rcc::ClockConfig::for_hse
//! ```
//!
//! The block is eleven bytes the bootloader links into its own flash (ArduinoCore-mbed
//! `portenta_info.h` `PortentaBootloaderInfo`; the bootloader's `bootloader_data[]` in section
//! `.bootloader_version`): magic 0xA0, version, clock source, USB speed, Ethernet, Wi-Fi, RAM
//! size (MB), QSPI size (MB), video, crypto, and `extclock`, the HSE frequency in MHz (25 on
//! production boards, 27 on the early beta boards).
//!
//! Mbed's Portenta clock code (mbed-os `TARGET_PORTENTA_H7/system_clock_override.c`, and
//! OpenMV's `isBoardRev2`) takes a block with magic 0xA0 and version >= 14 at its word
//! (`extclock` MHz) and treats anything else as a 27 MHz beta board. This module follows it
//! with two deliberate differences, because a wrong guess either drives PLL1's VCO over its
//! limit (a 27 MHz board run with the 25 MHz set-up: 864 MHz > 836 MHz) or garbles the
//! console (a 25 MHz board run with the 27 MHz set-up):
//! - an `extclock` of 25 or 27 is believed whatever the version: the MCUboot-based Arduino
//!   bootloader numbers its versions from 1 again and writes the field too (its `board.h`,
//!   `BOARD_EXTCLOCK`);
//! - no block at all (magic not 0xA0) or an `extclock` other than 25/27 from a bootloader
//!   that has the field is *not* guessed: the kernel stays on HSI and says why.
//!
//! A version below 14 without a 25/27 `extclock` is Mbed's beta-board case: 27 MHz.

/// Where the bootloader keeps the block (bank 1, inside the bootloader's sectors).
pub const INFO_ADDRESS: u32 = 0x0801_F000;
/// Bytes in the block.
pub const INFO_LEN: usize = 11;
/// `magic` of a valid block.
pub const MAGIC: u8 = 0xA0;
/// First bootloader version that has the `extclock` field (Mbed's check).
pub const FIRST_VERSION_WITH_EXTCLOCK: u8 = 14;

/// `PortentaBootloaderInfo`, field by field (all `u8`, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootloaderInfo {
    /// 0xA0 when valid.
    pub magic: u8,
    /// Bootloader version.
    pub version: u8,
    /// Clock source the bootloader was built for (0x8 external clock, 0x4 crystal, 0x2 HSI).
    pub clock_source: u8,
    /// 1 high speed, 2 full speed.
    pub usb_speed: u8,
    /// Board has Ethernet.
    pub ethernet: u8,
    /// Board has Wi-Fi.
    pub wifi: u8,
    /// SDRAM size in MB.
    pub ram_size: u8,
    /// QSPI flash size in MB.
    pub qspi_size: u8,
    /// Board has video output.
    pub video: u8,
    /// Board has a crypto chip.
    pub crypto: u8,
    /// HSE frequency in MHz.
    pub extclock: u8,
}

impl BootloaderInfo {
    /// The block from its bytes.
    pub const fn parse(b: [u8; INFO_LEN]) -> Self {
        BootloaderInfo {
            magic: b[0],
            version: b[1],
            clock_source: b[2],
            usb_speed: b[3],
            ethernet: b[4],
            wifi: b[5],
            ram_size: b[6],
            qspi_size: b[7],
            video: b[8],
            crypto: b[9],
            extclock: b[10],
        }
    }

    /// Reads the block from flash. The read is ECC-guarded (a damaged word reads as garbage
    /// instead of raising a bus fault), so it never faults.
    pub fn read() -> Self {
        let mut bytes = [0xFFu8; INFO_LEN];
        // SAFETY: INFO_ADDRESS..+11 lies in flash bank 1 (the bootloader's sectors), inside
        // the flash array; the kernel runs privileged. On the host this fills 0xFF.
        unsafe { crate::cpu::copy_ignoring_bus_faults(INFO_ADDRESS, &mut bytes) };
        BootloaderInfo::parse(bytes)
    }
}

/// How the HSE frequency was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HseBasis {
    /// The block's `extclock`.
    Extclock,
    /// A bootloader older than the field: Mbed's beta-board rule.
    PreExtclockBootloader,
}

/// Why the HSE frequency is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HseUnknown {
    /// No block (magic is not 0xA0): not an Arduino bootloader, or an erased sector.
    NoInfoBlock(u8),
    /// The block names a frequency no clock set-up exists for.
    UnsupportedExtclock(u8),
}

/// The board's HSE as the block says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hse {
    /// Known frequency in Hz.
    Known {
        /// HSE in Hz.
        hz: u32,
        /// How it was decided.
        basis: HseBasis,
    },
    /// Not known: the kernel does not start the PLL from HSE.
    Unknown(HseUnknown),
}

/// The board's HSE from the bootloader's block (module documentation: the rule).
pub const fn board_hse(info: &BootloaderInfo) -> Hse {
    if info.magic != MAGIC {
        return Hse::Unknown(HseUnknown::NoInfoBlock(info.magic));
    }
    match info.extclock {
        25 | 27 => Hse::Known { hz: info.extclock as u32 * 1_000_000, basis: HseBasis::Extclock },
        other => {
            if info.version < FIRST_VERSION_WITH_EXTCLOCK {
                Hse::Known { hz: 27_000_000, basis: HseBasis::PreExtclockBootloader }
            } else {
                Hse::Unknown(HseUnknown::UnsupportedExtclock(other))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(version: u8, extclock: u8) -> BootloaderInfo {
        BootloaderInfo::parse([0xA0, version, 0x8, 1, 1, 1, 8, 16, 1, 1, extclock])
    }

    #[test]
    fn fields_in_struct_order() {
        let i = BootloaderInfo::parse([0xA0, 22, 0x8, 1, 1, 0, 8, 16, 1, 1, 25]);
        assert_eq!((i.magic, i.version, i.clock_source, i.usb_speed), (0xA0, 22, 0x8, 1));
        assert_eq!((i.ethernet, i.wifi, i.ram_size, i.qspi_size), (1, 0, 8, 16));
        assert_eq!((i.video, i.crypto, i.extclock), (1, 1, 25));
    }

    #[test]
    fn production_and_beta_boards() {
        assert_eq!(board_hse(&block(22, 25)), Hse::Known { hz: 25_000_000, basis: HseBasis::Extclock });
        assert_eq!(board_hse(&block(22, 27)), Hse::Known { hz: 27_000_000, basis: HseBasis::Extclock });
        // MCUboot-based bootloader: small version, field present.
        assert_eq!(board_hse(&block(6, 25)), Hse::Known { hz: 25_000_000, basis: HseBasis::Extclock });
        // Before the field existed: Mbed's beta-board rule.
        assert_eq!(
            board_hse(&block(10, 0xFF)),
            Hse::Known { hz: 27_000_000, basis: HseBasis::PreExtclockBootloader }
        );
    }

    #[test]
    fn unknown_is_not_guessed() {
        assert_eq!(
            board_hse(&BootloaderInfo::parse([0xFF; INFO_LEN])),
            Hse::Unknown(HseUnknown::NoInfoBlock(0xFF))
        );
        assert_eq!(board_hse(&block(22, 16)), Hse::Unknown(HseUnknown::UnsupportedExtclock(16)));
    }

    #[test]
    fn host_read_is_an_erased_block() {
        assert_eq!(board_hse(&BootloaderInfo::read()), Hse::Unknown(HseUnknown::NoInfoBlock(0xFF)));
    }
}
