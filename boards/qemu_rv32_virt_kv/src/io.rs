// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Kernel panic: print the panic and the processes on the UART, then end the emulation with
//! status 1 so a script sees the failure instead of a hung QEMU.

use core::panic::PanicInfo;

use kernel::debug;
use kernel::hil::uart;
use qemu_rv32_virt_kv::shutdown::{QemuTestDevice, TEST_DEVICE_BASE};

/// Panic handler.
#[panic_handler]
pub unsafe fn panic_fmt(pi: &PanicInfo) -> ! {
    debug::panic_print::<qemu_rv32_virt_chip::uart::UartPanicWriter, _, _>(
        qemu_rv32_virt_chip::uart::UartPanicWriterConfig {
            params: uart::Parameters {
                baud_rate: 115200,
                stop_bits: uart::StopBits::One,
                parity: uart::Parity::None,
                hw_flow_control: false,
                width: uart::Width::Eight,
            },
        },
        pi,
        &rv32i::support::nop,
        crate::PANIC_RESOURCES.get(),
    );
    // SAFETY: the board runs on QEMU's virt machine, whose test device is at this address
    // inside the kernel's MMIO PMP region.
    unsafe { QemuTestDevice::new(TEST_DEVICE_BASE) }.exit(1);
    loop {
        rv32i::support::nop();
    }
}
