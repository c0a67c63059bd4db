// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Panic handler: the panic report on USART1 (polled), then the red LED blinks.
//!
//! ```text
//! panic -> io (this file) -> kernel::debug::panic -> stm32h7::usart PanicWriter (PA9)
//! ```

use core::panic::PanicInfo;

use kernel::debug;
use kernel::hil::led::LedLow;
use stm32h7::gpio::{Pin, Port};
use stm32h7::rcc::Rcc;
use stm32h7::usart::{Usart, UsartPanicWriterConfig};

/// Panic handler.
///
/// # Safety
///
/// Called by the language runtime on a panic only; takes over USART1 and the red LED.
#[panic_handler]
pub unsafe fn panic_fmt(info: &PanicInfo) -> ! {
    let rcc = Rcc::new();
    // The board's HSE as decided at boot (27 MHz on beta boards), so the panic report comes
    // out at the right baud rate on either.
    let clocks = rcc.frequencies(crate::boot::board_hse_hz());
    let red = Pin::new(Port::K, 5, &rcc);
    let led = &LedLow::new(&red);
    let config = UsartPanicWriterConfig { kernel_clock_hz: clocks.pclk2, baud_rate: crate::CONSOLE_BAUD };
    // SAFETY: the kernel is stopping; the panic path owns the console and the LED from here
    // on, and the panic resources were bound to this (the only) thread in `start`.
    unsafe {
        debug::panic::<_, Usart, _, _>(
            &mut [led],
            config,
            info,
            &cortexm7::support::nop,
            crate::PANIC_RESOURCES.get(),
        )
    }
}
