// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Power control: read the supply configuration (never write it) and the voltage scale, for
//! the boot report.
//!
//! ```text
//! boards/portenta_h7 boot report -> pwr (this file) -> PWR @ 0x5802_4800
//! rcc::configure (VOS1, through rcc::regs::ClockRegisters)
//! ```
//!
//! RM0399 "Power control (PWR)": PWR_CR3 (supply configuration) is write-once after power-on
//! and the Arduino bootloader writes it (it also configures the PF1550 PMIC); writing a value
//! that does not match the board's wiring can lock the chip up. So this module only reads and
//! reports it. The voltage scale itself (VOS1 in PWR_D3CR, which 400 MHz needs) is part of the
//! clock set-up, `rcc::configure`, where the host model checks it against the clocks.

use kernel::utilities::registers::interfaces::Readable;
use kernel::utilities::registers::{register_bitfields, register_structs, ReadOnly};
use kernel::utilities::StaticRef;

register_structs! {
    PwrRegisters {
        (0x00 => _reserved0),
        (0x04 => csr1: ReadOnly<u32, CSR1::Register>),
        (0x08 => _reserved1),
        (0x0C => cr3: ReadOnly<u32, CR3::Register>),
        (0x10 => @END),
    }
}

register_bitfields![u32,
    CSR1 [
        ACTVOSRDY OFFSET(13) NUMBITS(1) [],
        ACTVOS OFFSET(14) NUMBITS(2) []
    ],
    CR3 [
        BYPASS OFFSET(0) NUMBITS(1) [],
        LDOEN OFFSET(1) NUMBITS(1) [],
        SDEN OFFSET(2) NUMBITS(1) [],
        SMPSEXTHP OFFSET(3) NUMBITS(1) [],
        SMPSLEVEL OFFSET(4) NUMBITS(2) []
    ]
];

const PWR_BASE: StaticRef<PwrRegisters> =
    // SAFETY: 0x5802_4800 is the PWR register block of the STM32H747 (RM0399 memory map);
    // only the registers above are declared.
    unsafe { StaticRef::new(0x5802_4800 as *const PwrRegisters) };

/// The supply configuration PWR_CR3 describes (RM0399 PWR "supply configuration" table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupplyConfig {
    /// LDO only.
    Ldo,
    /// SMPS supplies the core directly.
    DirectSmps,
    /// SMPS at 1.8 V supplies the LDO (what Arduino's clock code requests).
    Smps1V8SuppliesLdo,
    /// SMPS at 2.5 V supplies the LDO.
    Smps2V5SuppliesLdo,
    /// SMPS with an external supply (either level).
    SmpsExternal,
    /// Bypass: the core is supplied externally.
    Bypass,
    /// Any other combination (raw CR3 bits [5:0]).
    Other(u32),
}

/// The PWR block.
pub struct Pwr {
    registers: StaticRef<PwrRegisters>,
}

impl Pwr {
    /// PWR at its fixed address.
    pub const fn new() -> Self {
        Pwr { registers: PWR_BASE }
    }

    /// Raw PWR_CR3.
    pub fn cr3(&self) -> u32 {
        self.registers.cr3.get()
    }

    /// The supply configuration as set by the bootloader.
    pub fn supply_config(&self) -> SupplyConfig {
        let r = &self.registers.cr3;
        let (bypass, ldo, sd, ext, level) = (
            r.is_set(CR3::BYPASS),
            r.is_set(CR3::LDOEN),
            r.is_set(CR3::SDEN),
            r.is_set(CR3::SMPSEXTHP),
            r.read(CR3::SMPSLEVEL),
        );
        match (bypass, ldo, sd, ext, level) {
            (true, false, false, _, _) => SupplyConfig::Bypass,
            (false, true, false, false, _) => SupplyConfig::Ldo,
            (false, false, true, false, _) => SupplyConfig::DirectSmps,
            (false, true, true, false, 1) => SupplyConfig::Smps1V8SuppliesLdo,
            (false, true, true, false, 2) => SupplyConfig::Smps2V5SuppliesLdo,
            (_, _, true, true, _) => SupplyConfig::SmpsExternal,
            _ => SupplyConfig::Other(r.get() & 0x3F),
        }
    }

    /// Whether the supply configuration has been applied (CSR1.ACTVOSRDY).
    pub fn supply_ready(&self) -> bool {
        self.registers.csr1.is_set(CSR1::ACTVOSRDY)
    }

    /// The active voltage scale (CSR1.ACTVOS: 3 = VOS1).
    pub fn active_vos(&self) -> u32 {
        self.registers.csr1.read(CSR1::ACTVOS)
    }
}

impl Default for Pwr {
    fn default() -> Self {
        Self::new()
    }
}
