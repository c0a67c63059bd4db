// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Tock chip crate for the STM32H747 (Cortex-M7 core): vector table, RCC/PWR clock set-up,
//! GPIO, USART1, TIM2 and the embedded-flash driver.
//!
//! ```text
//! boards/portenta_h7
//!        |
//! chips/stm32h7 (this crate: lib.rs has the vector table)
//!   chip     Chip + InterruptService       rcc, pwr  clock tree (400 MHz), supply read-out
//!   gpio     pins                          usart     USART1 console
//!   tim2     alarm                         flash     nor_flash_hil::NorFlash (+ model tests)
//!   cpu      barriers, D-cache, ECC-guarded copy
//!   handoff  take-over from the bootloader    bootinfo  bootloader info block (HSE)
//!        |
//! chips/cortexm-normal-mpu (the chip's MPU: upstream's, process regions Normal memory)
//! arch/cortex-m7 (Tock)
//! ```
//!
//! Reference: RM0399 (STM32H745/747/755/757 reference manual), ST `stm32h747xx.h`. FLASH
//! sequences cite RM0399 chapter 4 by section number; other chapters are cited by section
//! title.
//!
//! # Unverified (no hardware was available while writing this crate)
//!
//! Everything here is built and the FLASH driver is tested against a register-level model
//! (`flash::model`, host tests), but nothing has run on an STM32H747. To check on a board:
//! - the bootloader's hand-off state (VTOR, caches, MPU regions, PRIMASK/BASEPRI, SYSCLK
//!   source, supply configuration): the kernel replaces it (`handoff`) and prints what it
//!   found and what it set at boot, so the first board answers these questions;
//! - the clock set-up (HSE bypass after PH1, VOS1, PLL1 at 400 MHz, LATENCY 4 and WRHIGHFREQ
//!   2 from RM0399's table), hence the USART1 baud rate and the TIM2 tick; the 27 MHz set-up
//!   for beta boards (399 MHz) has never met one;
//! - the ECC-guarded read: that FAULTMASK + CCR.BFHFNMIGN turns the double-bit ECC bus error
//!   into an ignored fault on this core (Zephyr's approach), and ECC_FA's word index;
//! - program with PSIZE x32, the EOP/error interrupts, and the timings (there is no driver
//!   timeout: an operation that never completes leaves the driver `BUSY`);
//! - the chapter-4 section numbers (RM0399 Rev 4 structure) and the facts file's register
//!   values, which come from secondary sources (ST headers, HAL, Zephyr).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod bootinfo;
pub mod chip;
pub mod cpu;
pub mod flash;
pub mod gpio;
pub mod handoff;
pub mod nvic;
pub mod pwr;
pub mod rcc;
pub mod tim2;
pub mod usart;

use cortexm7::{initialize_ram_jump_to_main, unhandled_interrupt, CortexM7, CortexMVariant};

extern "C" {
    // `_estack` is not a function; declaring it as one makes the vector table's type work.
    // It is never called.
    fn _estack();
}

/// The Cortex-M exception vectors.
#[cfg_attr(all(target_arch = "arm", target_os = "none"), link_section = ".vectors")]
#[cfg_attr(all(target_arch = "arm", target_os = "none"), used)]
pub static BASE_VECTORS: [unsafe extern "C" fn(); 16] = [
    _estack,
    initialize_ram_jump_to_main,
    unhandled_interrupt,          // NMI
    CortexM7::HARD_FAULT_HANDLER, // Hard Fault
    unhandled_interrupt,          // MemManage
    unhandled_interrupt,          // BusFault
    unhandled_interrupt,          // UsageFault
    unhandled_interrupt,
    unhandled_interrupt,
    unhandled_interrupt,
    unhandled_interrupt,
    CortexM7::SVC_HANDLER, // SVC
    unhandled_interrupt,   // DebugMon
    unhandled_interrupt,
    unhandled_interrupt,       // PendSV
    CortexM7::SYSTICK_HANDLER, // SysTick
];

/// The 150 external interrupt lines of the Cortex-M7 core, all through Tock's generic
/// handler (which defers the work to the kernel loop). Only the lines in
/// [`nvic::ENABLED`] are ever enabled.
#[cfg_attr(all(target_arch = "arm", target_os = "none"), link_section = ".irqs")]
#[cfg_attr(all(target_arch = "arm", target_os = "none"), used)]
pub static IRQS: [unsafe extern "C" fn(); nvic::NUM_IRQS] = [CortexM7::GENERIC_ISR; nvic::NUM_IRQS];

/// Early core set-up, before anything else in the board's `start`:
/// - takes the core over from the Arduino bootloader ([`handoff::take_over`]: interrupts
///   masked first, SysTick and NVIC reset, handler priorities, VTOR pointed at this kernel's
///   vector table, MPU off and every region cleared, D-cache cleaned and off, I-cache on) and
///   returns what it found and what it set, for the boot report;
/// - disables the FPU, which the bootloader may leave on: Tock's Cortex-M context switch
///   saves no floating-point state, so a process using the FPU gets a clean UsageFault
///   instead of corrupting another's registers.
///
/// # Safety
///
/// Call once, first thing in `main`, before any Tock driver of the NVIC, MPU or SysTick
/// exists.
pub unsafe fn init() -> handoff::Handoff {
    // SAFETY: the boot code, once, before the chip's MPU/NVIC/SysTick drivers exist (the
    // caller's contract).
    let core = unsafe { handoff::mmio::CoreMmio::new() };
    // BASE_VECTORS is this image's vector table, 16 entries followed by IRQS in the
    // `.vectors`/`.irqs` sections at the start of ROM (tock_kernel_layout.ld), aligned as
    // VTOR requires (ROM start, 0x0804_0000).
    let report = handoff::take_over(&core, BASE_VECTORS.as_ptr() as usize as u32);
    #[cfg(all(target_arch = "arm", target_os = "none"))]
    // SAFETY: clears CPACR.CP10/CP11; the kernel is built soft-float and uses no FP registers.
    unsafe {
        cortexm7::scb::disable_fpca();
    }
    report
}
