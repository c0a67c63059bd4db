// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! FLASH register map, bit positions and the `FlashRegisters` access trait.
//!
//! ```text
//! flash::Flash (driver: sequences, state machine)
//!        |
//!   FlashRegisters  (this file)
//!     |                      |
//! mmio::FlashMmio        model::FlashModel (host tests)
//! (RM0399 registers)     (register-level model of the peripheral)
//! ```
//!
//! Everything the driver does to the hardware goes through [`FlashRegisters`]: register reads
//! and writes by name, the 32-bit stores that fill a flash word, the ECC-guarded copy out of
//! the array, the barriers and the D-cache maintenance. The same driver code therefore runs
//! against MMIO on the target and against a model that enforces the reference manual's
//! sequences on the host.
//!
//! Register offsets and bits: RM0399 §4.9 (FLASH registers) and ST's `stm32h747xx.h`; bank 2
//! registers sit 0x100 above bank 1's.

/// Base of the flash array (bank 1).
pub const FLASH_BASE: u32 = 0x0800_0000;
/// Bytes per bank.
pub const BANK_SIZE: u32 = 0x10_0000;
/// Base of bank 2.
pub const BANK2_BASE: u32 = FLASH_BASE + BANK_SIZE;
/// End (exclusive) of the flash array: 2 MiB on the STM32H747XI.
pub const FLASH_END: u32 = FLASH_BASE + 2 * BANK_SIZE;
/// Sector (erase unit) size: 128 KiB, 8 sectors per bank (RM0399 §4.3.4).
pub const SECTOR_SIZE: u32 = 0x2_0000;
/// Flash word (program unit): 256 bits (RM0399 §4.3.4).
pub const WORD_BYTES: u32 = 32;
/// A flash word as the driver hands it to the hardware: eight 32-bit stores.
pub type FlashWord = [u32; 8];

/// Unlock keys, written in this order to FLASH_KEYR (RM0399 §4.5.1).
pub const KEY1: u32 = 0x4567_0123;
/// Second unlock key.
pub const KEY2: u32 = 0xCDEF_89AB;

/// One of the two flash banks; each has its own KEYR/CR/SR/CCR/ECC_FA registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bank {
    /// Bank 1, 0x0800_0000..0x0810_0000 (bootloader, kernel, apps on the Portenta).
    One,
    /// Bank 2, 0x0810_0000..0x0820_0000.
    Two,
}

impl Bank {
    /// The bank holding absolute address `addr` (which must lie in the array).
    pub const fn of(addr: u32) -> Bank {
        if addr >= BANK2_BASE {
            Bank::Two
        } else {
            Bank::One
        }
    }

    /// First address of the bank.
    pub const fn base(self) -> u32 {
        match self {
            Bank::One => FLASH_BASE,
            Bank::Two => BANK2_BASE,
        }
    }

    /// Offset of this bank's register block from the FLASH base.
    pub const fn register_offset(self) -> usize {
        match self {
            Bank::One => 0,
            Bank::Two => 0x100,
        }
    }
}

/// The per-bank registers the driver uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// FLASH_KEYRx (0x04): unlock keys.
    Keyr,
    /// FLASH_CRx (0x0C): control.
    Cr,
    /// FLASH_SRx (0x10): status.
    Sr,
    /// FLASH_CCRx (0x14): clear control (write 1 to clear an SR flag).
    Ccr,
    /// FLASH_ECC_FAx (0x60): failing ECC word index in bits [14:0].
    EccFa,
    /// FLASH_OPTCR (0x18, bank 1's block only: one register for both banks): SWAP_BANK in bit
    /// 31 is the bank mapping in effect. Read-only to this driver.
    Optcr,
    /// FLASH_OPTSR_CUR (0x1C, bank 1's block only): the option bytes in effect; BCM4 in bit 22.
    /// Read-only to this driver.
    OptsrCur,
    /// FLASH_BOOT4_CUR (0x48, bank 1's block only): the Cortex-M4's boot addresses in effect.
    /// Read-only to this driver.
    Boot4Cur,
}

impl Reg {
    /// Offset within a bank's register block.
    pub const fn offset(self) -> usize {
        match self {
            Reg::Keyr => 0x04,
            Reg::Cr => 0x0C,
            Reg::Sr => 0x10,
            Reg::Ccr => 0x14,
            Reg::EccFa => 0x60,
            Reg::Optcr => 0x18,
            Reg::OptsrCur => 0x1C,
            Reg::Boot4Cur => 0x48,
        }
    }
}

/// FLASH_OPTCR bits (RM0399 §4.9.7; ST's HAL `FLASH_WaitForLastOperation` and Zephyr's and
/// MicroPython's H7 flash drivers read the same bit).
pub mod optcr {
    /// The banks are swapped: bank 2 is mapped at 0x0800_0000, bank 1 at 0x0810_0000.
    pub const SWAP_BANK: u32 = 1 << 31;
}

/// FLASH_OPTSR_CUR bits (RM0399 §4.9.8).
pub mod optsr {
    /// BCM4: the Cortex-M4 boots at reset (otherwise it waits for the M7 to start it).
    pub const BCM4: u32 = 1 << 22;
}

/// FLASH_BOOT4_CURR fields (RM0399 §4.9.19): each a boot address's bits 31:16.
pub mod boot4 {
    /// BOOT_CM4_ADD0 (boot pin low), bits 15:0.
    pub const ADD0_MASK: u32 = 0xFFFF;
    /// BOOT_CM4_ADD1 (boot pin high), bits 31:16.
    pub const ADD1_SHIFT: u32 = 16;
}

/// FLASH_CRx bits (RM0399 §4.9.4).
pub mod cr {
    /// Configuration lock.
    pub const LOCK: u32 = 1 << 0;
    /// Program enable.
    pub const PG: u32 = 1 << 1;
    /// Sector erase request.
    pub const SER: u32 = 1 << 2;
    /// Bank erase request.
    pub const BER: u32 = 1 << 3;
    /// Program size field, bits 5:4.
    pub const PSIZE_MASK: u32 = 0b11 << 4;
    /// Parallelism x32, as ST's HAL and Mbed use (FLASH_VOLTAGE_RANGE_3).
    pub const PSIZE_X32: u32 = 0b10 << 4;
    /// Force write of a partial flash word.
    pub const FW: u32 = 1 << 6;
    /// Start erase.
    pub const START: u32 = 1 << 7;
    /// Sector number field, bits 10:8.
    pub const SNB_SHIFT: u32 = 8;
    /// Sector number mask.
    pub const SNB_MASK: u32 = 0b111 << SNB_SHIFT;
    /// End-of-operation interrupt enable.
    pub const EOPIE: u32 = 1 << 16;
    /// Write-protection error interrupt enable.
    pub const WRPERRIE: u32 = 1 << 17;
    /// Programming sequence error interrupt enable.
    pub const PGSERRIE: u32 = 1 << 18;
    /// Strobe error interrupt enable.
    pub const STRBERRIE: u32 = 1 << 19;
    /// Inconsistency error interrupt enable.
    pub const INCERRIE: u32 = 1 << 21;
    /// Operation error interrupt enable.
    pub const OPERRIE: u32 = 1 << 22;
    /// The interrupts a program or erase runs with: its end and every write-side error.
    pub const OP_IRQS: u32 = EOPIE | WRPERRIE | PGSERRIE | STRBERRIE | INCERRIE | OPERRIE;
}

/// FLASH_SRx bits (RM0399 §4.9.5); FLASH_CCRx uses the same positions.
pub mod sr {
    /// Busy: an operation is executing.
    pub const BSY: u32 = 1 << 0;
    /// Write buffer not empty.
    pub const WBNE: u32 = 1 << 1;
    /// Wait queue flag: an operation is queued or executing.
    pub const QW: u32 = 1 << 2;
    /// CRC computation busy.
    pub const CRC_BUSY: u32 = 1 << 3;
    /// End of program or erase.
    pub const EOP: u32 = 1 << 16;
    /// Write-protection error.
    pub const WRPERR: u32 = 1 << 17;
    /// Programming sequence error.
    pub const PGSERR: u32 = 1 << 18;
    /// Strobe error.
    pub const STRBERR: u32 = 1 << 19;
    /// Inconsistency error.
    pub const INCERR: u32 = 1 << 21;
    /// Operation error.
    pub const OPERR: u32 = 1 << 22;
    /// Read protection error.
    pub const RDPERR: u32 = 1 << 23;
    /// Read secure error.
    pub const RDSERR: u32 = 1 << 24;
    /// Single ECC error, corrected.
    pub const SNECCERR: u32 = 1 << 25;
    /// Double ECC error, not correctable.
    pub const DBECCERR: u32 = 1 << 26;
    /// CRC end.
    pub const CRCEND: u32 = 1 << 27;
    /// CRC read error.
    pub const CRCRDERR: u32 = 1 << 28;
    /// The hardware has something in flight.
    pub const IN_FLIGHT: u32 = BSY | WBNE | QW | CRC_BUSY;
    /// Every error flag.
    pub const ERRORS: u32 =
        WRPERR | PGSERR | STRBERR | INCERR | OPERR | RDPERR | RDSERR | SNECCERR | DBECCERR | CRCRDERR;
    /// Every flag that FLASH_CCRx can clear.
    pub const CLEARABLE: u32 = EOP | ERRORS | CRCEND;
}

/// FLASH_ECC_FAx: failing flash-word index within the bank, bits [14:0].
pub const ECC_FA_MASK: u32 = 0x7FFF;

/// Register-level access to the FLASH peripheral and the flash array.
///
/// Implemented by [`super::mmio::FlashMmio`] on the target and by the host-test model. The
/// driver is the only caller; it validates every address against its region first, and the
/// MMIO implementation additionally ignores any array access outside the flash array.
pub trait FlashRegisters {
    /// Reads a register of `bank`.
    fn read(&self, bank: Bank, reg: Reg) -> u32;
    /// Writes a register of `bank`.
    fn write(&self, bank: Bank, reg: Reg, value: u32);
    /// One 32-bit store into the flash array at absolute address `addr` (4-byte aligned):
    /// with CR.PG set, eight of these to consecutive addresses fill one flash word.
    fn store_word(&self, addr: u32, value: u32);
    /// Copies the array at absolute address `addr` into `buf` with bus faults from
    /// uncorrectable ECC errors suppressed; the caller checks SR.DBECCERR afterwards. The
    /// bytes copied from a failing word are unspecified.
    fn load_guarded(&self, addr: u32, buf: &mut [u8]);
    /// Data and instruction synchronisation barriers (DSB; ISB).
    fn barrier(&self);
    /// Invalidates the D-cache over `[addr, addr + len)` if the D-cache is enabled, so that
    /// later reads see the array rather than stale lines.
    fn invalidate_dcache(&self, addr: u32, len: u32);
}

impl<T: FlashRegisters + ?Sized> FlashRegisters for &T {
    fn read(&self, bank: Bank, reg: Reg) -> u32 {
        (**self).read(bank, reg)
    }
    fn write(&self, bank: Bank, reg: Reg, value: u32) {
        (**self).write(bank, reg, value)
    }
    fn store_word(&self, addr: u32, value: u32) {
        (**self).store_word(addr, value)
    }
    fn load_guarded(&self, addr: u32, buf: &mut [u8]) {
        (**self).load_guarded(addr, buf)
    }
    fn barrier(&self) {
        (**self).barrier()
    }
    fn invalidate_dcache(&self, addr: u32, len: u32) {
        (**self).invalidate_dcache(addr, len)
    }
}
