// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The `Chip` for the STM32H747's Cortex-M7 core and its default peripherals.
//!
//! ```text
//! kernel main loop -> Chip (this file) -> InterruptService -> usart1 / tim2 / flash
//! ```

use core::fmt::Write;

use cortexm7::{CortexM7, CortexMVariant};
use kernel::deferred_call::DeferredCallClient;
use kernel::platform::chip::{Chip, InterruptService};

use crate::flash::mmio::FlashMmio;
use crate::flash::{Flash, FlashRegion};
use crate::nvic;
use crate::rcc::{Frequencies, Rcc};

/// The FLASH driver over the real peripheral.
pub type FlashDriver<'a> = Flash<'a, FlashMmio>;

/// The peripherals this crate drives.
pub struct Stm32h747DefaultPeripherals<'a> {
    /// USART1 (console).
    pub usart1: crate::usart::Usart<'a>,
    /// TIM2 (kernel alarm).
    pub tim2: crate::tim2::Tim2<'a>,
    /// The FLASH driver for the board's key-value region.
    pub flash: FlashDriver<'a>,
}

impl<'a> Stm32h747DefaultPeripherals<'a> {
    /// The peripherals, for the clock frequencies now running and the flash region the board
    /// owns. Needs the deferred-call state initialised.
    pub fn new(rcc: &'a Rcc, clocks: &Frequencies, flash_region: FlashRegion) -> Self {
        Stm32h747DefaultPeripherals {
            usart1: crate::usart::Usart::new_usart1(rcc, clocks.pclk2),
            tim2: crate::tim2::Tim2::new(rcc, clocks.tim_apb1),
            // SAFETY: this is the only FLASH driver; the board creates the peripherals once.
            flash: Flash::new(unsafe { FlashMmio::new() }, flash_region),
        }
    }
}

impl Stm32h747DefaultPeripherals<'static> {
    /// Registers the deferred calls.
    pub fn init(&'static self) {
        self.usart1.register();
        self.flash.register();
    }
}

impl InterruptService for Stm32h747DefaultPeripherals<'_> {
    fn service_interrupt(&self, interrupt: u32) -> bool {
        match interrupt {
            nvic::FLASH => self.flash.handle_interrupt(),
            nvic::TIM2 => self.tim2.handle_interrupt(),
            nvic::USART1 => self.usart1.handle_interrupt(),
            _ => return false,
        }
        true
    }
}

/// The Cortex-M7 core of the STM32H747.
pub struct Stm32h7<'a, I: InterruptService + 'a> {
    mpu: cortexm_normal_mpu::CortexM7Mpu,
    userspace_kernel_boundary: cortexm7::syscall::SysCall,
    interrupt_service: &'a I,
}

impl<'a, I: InterruptService + 'a> Stm32h7<'a, I> {
    /// # Safety
    ///
    /// Call once: the chip owns the MPU.
    pub unsafe fn new(interrupt_service: &'a I) -> Self {
        Stm32h7 {
            // SAFETY: the caller guarantees a single instance, so one owner of the MPU. Upstream's
            // MPU with process regions as Normal memory (`cortexm_normal_mpu`: upstream's alone
            // makes them Strongly-ordered, where the Cortex-M7 faults unaligned accesses).
            mpu: unsafe { cortexm_normal_mpu::cortexm7() },
            userspace_kernel_boundary: cortexm7::syscall::SysCall::new(),
            interrupt_service,
        }
    }
}

impl<'a, I: InterruptService + 'a> Chip for Stm32h7<'a, I> {
    type MPU = cortexm_normal_mpu::CortexM7Mpu;
    type UserspaceKernelBoundary = cortexm7::syscall::SysCall;
    type ThreadIdProvider = cortexm7::thread_id::CortexMThreadIdProvider;

    fn init() {
        cortexm7::nvic::disable_all();
        cortexm7::nvic::clear_all_pending();
        for irq in nvic::ENABLED {
            cortexm7::nvic::Nvic::new(irq).enable();
        }
    }

    fn service_pending_interrupts(&self) {
        while let Some(interrupt) = cortexm7::nvic::next_pending() {
            let handled = self.interrupt_service.service_interrupt(interrupt);
            let n = cortexm7::nvic::Nvic::new(interrupt);
            n.clear_pending();
            if handled {
                n.enable();
            }
            // An interrupt nobody handles stays disabled (the generic ISR disabled it).
        }
    }

    fn has_pending_interrupts(&self) -> bool {
        cortexm7::nvic::has_pending()
    }

    fn mpu(&self) -> &cortexm_normal_mpu::CortexM7Mpu {
        &self.mpu
    }

    fn userspace_kernel_boundary(&self) -> &cortexm7::syscall::SysCall {
        &self.userspace_kernel_boundary
    }

    fn sleep(&self) {
        // SAFETY: clearing SLEEPDEEP and WFI only affect when the core resumes; interrupts
        // wake it.
        unsafe {
            cortexm7::scb::unset_sleepdeep();
            cortexm7::support::wfi();
        }
    }

    fn with_interrupts_disabled<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        cortexm7::support::with_interrupts_disabled(f)
    }

    unsafe fn print_state(_this: Option<&Self>, write: &mut dyn Write) {
        // SAFETY: reads the fault and core registers for the panic report.
        unsafe { CortexM7::print_cortexm_state(write) };
    }
}
