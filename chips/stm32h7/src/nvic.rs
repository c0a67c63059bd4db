// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! NVIC interrupt numbers of the STM32H747 Cortex-M7 core that this crate handles.
//!
//! ```text
//! chip::Stm32h7::service_pending_interrupts -> InterruptService (nvic numbers: this file)
//! ```
//!
//! Source: ST `stm32h747xx.h` (`IRQn_Type`), RM0399 "NVIC" vector table.

/// FLASH global interrupt (both banks).
pub const FLASH: u32 = 4;
/// TIM2 global interrupt.
pub const TIM2: u32 = 28;
/// USART1 global interrupt.
pub const USART1: u32 = 37;

/// Number of external interrupt lines of the Cortex-M7 core (0..=149).
pub const NUM_IRQS: usize = 150;

/// The lines the chip enables in the NVIC; every other line stays disabled, so a peripheral
/// the bootloader left running cannot interrupt the kernel.
pub const ENABLED: [u32; 3] = [FLASH, TIM2, USART1];
