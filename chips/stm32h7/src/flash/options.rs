// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The option bytes that decide whether the store's region is free: the Cortex-M4's autoboot
//! and boot addresses, and the bank swap.
//!
//! ```text
//! flash::Flash::with_deferred -> options (this file) -> FlashRegisters (OPTCR, OPTSR_CUR, BOOT4_CURR)
//!        |
//! every operation refused (NODEVICE) when `check` says the region is someone else's
//! ```
//!
//! - **Cortex-M4 autoboot.** With FLASH_OPTSR_CUR.BCM4 set (RM0399 §4.9.8) the M4 starts at
//!   reset from BOOT_CM4_ADD0 (boot pin low) or BOOT_CM4_ADD1 (boot pin high), each the top 16
//!   bits of an address in FLASH_BOOT4_CURR (§4.9.19). The factory ADD0 is 0x0810, i.e.
//!   0x0810_0000: the start of bank 2, where this board keeps the store and where Arduino's
//!   "1 MB M7 + 1 MB M4" split puts M4 sketches. Arduino's own core looks for boards with BCM4
//!   set and clears it, so such boards exist. An M4 running the store's bytes as code (or M4
//!   code the store would erase) is refused: no flash operation at all.
//! - **Bank swap.** With FLASH_OPTCR.SWAP_BANK set (§4.9.7) bank 2 is mapped at 0x0800_0000 and
//!   bank 1 at 0x0810_0000. The driver picks the register block (CR1 or CR2) from the address,
//!   so it would program and erase physical bank 2, which then holds the bootloader and the
//!   kernel. ST's HAL (`FLASH_WaitForLastOperation`), Zephyr's and MicroPython's H7 drivers read
//!   this bit. The Portenta's bootloaders never swap banks, so rather than a second address
//!   map that no one could test on a board, the store is refused.

use super::regs::{boot4, optcr, optsr, Bank, FlashRegisters, Reg};
use super::FlashRegion;

/// The option bytes in effect, as read at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionBytes {
    /// FLASH_OPTCR.SWAP_BANK.
    pub swap_bank: bool,
    /// FLASH_OPTSR_CUR.BCM4: the Cortex-M4 boots at reset.
    pub bcm4: bool,
    /// The M4's boot address with the boot pin low (BOOT_CM4_ADD0 << 16).
    pub cm4_boot0: u32,
    /// The M4's boot address with the boot pin high (BOOT_CM4_ADD1 << 16).
    pub cm4_boot1: u32,
}

/// Why the store's region may not be used on this board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreRefusal {
    /// FLASH_OPTCR.SWAP_BANK is set.
    BankSwap,
    /// BCM4 is set and the M4 boots from `address`, inside the region.
    Cm4BootsInRegion {
        /// The M4's boot address.
        address: u32,
    },
}

impl StoreRefusal {
    /// What is wrong and how to fix it, for the boot report.
    pub const fn explanation(self) -> &'static str {
        match self {
            StoreRefusal::BankSwap => {
                "the flash banks are swapped (FLASH_OPTCR SWAP_BANK = 1), so the store's addresses are the bank that holds the bootloader; clear SWAP_BANK_OPT in the option bytes (STM32CubeProgrammer: -ob SWAP_BANK=0) and reset"
            }
            StoreRefusal::Cm4BootsInRegion { .. } => {
                "the Cortex-M4 starts at reset (option byte BCM4 = 1) from inside the store's region; clear BCM4 (STM32CubeProgrammer: -ob BCM4=0, as Arduino's core does) or move BOOT_CM4_ADD0/ADD1 out of bank 2, then reset"
            }
        }
    }
}

impl OptionBytes {
    /// Reads the option bytes in effect (bank 1's register block holds them for both banks).
    pub fn read<R: FlashRegisters>(regs: &R) -> OptionBytes {
        let boot = regs.read(Bank::One, Reg::Boot4Cur);
        OptionBytes {
            swap_bank: regs.read(Bank::One, Reg::Optcr) & optcr::SWAP_BANK != 0,
            bcm4: regs.read(Bank::One, Reg::OptsrCur) & optsr::BCM4 != 0,
            cm4_boot0: (boot & boot4::ADD0_MASK) << 16,
            cm4_boot1: (boot >> boot4::ADD1_SHIFT) << 16,
        }
    }

    /// Whether the store may use `region` with these option bytes. The M4's two boot addresses
    /// are both checked: which one it uses depends on the BOOT pin, which software cannot read.
    pub fn check(&self, region: FlashRegion) -> Result<(), StoreRefusal> {
        if self.swap_bank {
            return Err(StoreRefusal::BankSwap);
        }
        if self.bcm4 {
            for address in [self.cm4_boot0, self.cm4_boot1] {
                if region.overlaps(address, address.saturating_add(1)) {
                    return Err(StoreRefusal::Cm4BootsInRegion { address });
                }
            }
        }
        Ok(())
    }
}
