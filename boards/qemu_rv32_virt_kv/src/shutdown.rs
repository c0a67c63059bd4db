// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Ends the emulation when every app has finished, through QEMU virt's test device.
//!
//! ```text
//! process loader --process_loading_finished--> ExitWhenDone (this file)
//!                                                  | every PERIOD_MS: all processes ended?
//!                                                  v
//!                                QemuTestDevice (this file): exit 0, or 1 if one faulted
//! ```
//!
//! `make run` and the end-to-end tests boot the board, let the apps do their work and need
//! QEMU to stop by itself afterwards. Once loading has finished, the monitor checks the
//! processes every [`PERIOD_MS`]; when none is left that can run (each has exited or
//! faulted; with no apps at all, at once) it prints one line, then waits at least one more
//! period so the console drains, and until no deferred call is pending (the key-value
//! store's idle-time maintenance runs on deferred calls), and writes the test device: QEMU
//! exits with status 0, or 1 if a process faulted.

use core::cell::Cell;

use kernel::capabilities::ProcessManagementCapability;
use kernel::debug;
use kernel::deferred_call::DeferredCall;
use kernel::hil::time::{Alarm, AlarmClient, ConvertTicks};
use kernel::process::{ProcessLoadError, ProcessLoadingAsyncClient, State};
use kernel::Kernel;

/// Milliseconds between checks.
pub const PERIOD_MS: u32 = 100;

/// The most processes the monitor looks at; with more it never ends the run (the board has
/// fewer slots).
pub const MAX_PROCESSES: usize = 16;

/// Bus address of QEMU virt's test device (`sifive_test`).
pub const TEST_DEVICE_BASE: usize = 0x10_0000;

/// QEMU virt's test device: one register that ends the emulation.
pub struct QemuTestDevice {
    base: usize,
}

impl QemuTestDevice {
    const PASS: u32 = 0x5555;
    const FAIL: u32 = 0x3333;

    /// The device at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of QEMU's `sifive_test` device, writable by the kernel.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    /// Ends the emulation: QEMU exits with `code` (0 to 65535).
    pub fn exit(&self, code: u16) {
        let value = if code == 0 { Self::PASS } else { u32::from(code) << 16 | Self::FAIL };
        // SAFETY: `new`'s contract makes `base` the test device's 32-bit register; this is
        // one aligned store to it. QEMU ends the process on this store; on anything else it
        // is a store to a device register, never to memory.
        unsafe { core::ptr::write_volatile(self.base as *mut u32, value) }
    }
}

/// What the processes' states add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// At least one process can still run (or is stopped and could be resumed).
    Active,
    /// Every process has ended (or there are none); `faulted` of them faulted.
    Done {
        /// Processes that ended in a fault.
        faulted: usize,
    },
}

/// The verdict for a set of process states.
pub fn verdict(states: impl IntoIterator<Item = State>) -> Verdict {
    let mut faulted = 0;
    for state in states {
        match state {
            State::Terminated => {}
            State::Faulted => faulted += 1,
            _ => return Verdict::Active,
        }
    }
    Verdict::Done { faulted }
}

/// The monitor.
pub struct ExitWhenDone<'a, A: Alarm<'a>, C: ProcessManagementCapability> {
    alarm: &'a A,
    kernel: &'static Kernel,
    cap: C,
    device: QemuTestDevice,
    /// Set once the verdict was `Done`: the exit code, applied at the next check.
    exiting: Cell<Option<u16>>,
}

impl<'a, A: Alarm<'a>, C: ProcessManagementCapability> ExitWhenDone<'a, A, C> {
    /// A monitor over `kernel`'s processes; it starts when loading finishes (set it as the
    /// loader's client) and the alarm's client must be this monitor.
    pub fn new(alarm: &'a A, kernel: &'static Kernel, cap: C, device: QemuTestDevice) -> Self {
        Self { alarm, kernel, cap, device, exiting: Cell::new(None) }
    }

    fn arm(&self) {
        self.alarm.set_alarm(self.alarm.now(), self.alarm.ticks_from_ms(PERIOD_MS));
    }
}

impl<'a, A: Alarm<'a>, C: ProcessManagementCapability> AlarmClient for ExitWhenDone<'a, A, C> {
    fn alarm(&self) {
        // Kernel work still queued: the store's idle-time maintenance (erasing ahead, early
        // compaction) runs one deferred call at a time after the apps are done. Ending the
        // emulation in the middle of it would be a power cut at every exit.
        let busy = DeferredCall::has_tasks();
        match self.exiting.get() {
            Some(code) if !busy => {
                self.device.exit(code);
                return;
            }
            Some(_) => {}
            None => {
                let mut states = [State::Terminated; MAX_PROCESSES];
                let mut n = 0;
                let mut overflow = false;
                self.kernel.process_each_capability(&self.cap, |p| match states.get_mut(n) {
                    Some(slot) => {
                        *slot = p.get_state();
                        n += 1;
                    }
                    None => overflow = true,
                });
                if let (Verdict::Done { faulted }, false) = (verdict(states[..n].iter().copied()), overflow) {
                    debug!(
                        "qemu_rv32_virt_kv: all {} processes ended ({} faulted); exiting QEMU",
                        n, faulted
                    );
                    self.exiting.set(Some(u16::from(faulted > 0)));
                }
            }
        }
        self.arm();
    }
}

impl<'a, A: Alarm<'a>, C: ProcessManagementCapability> ProcessLoadingAsyncClient for ExitWhenDone<'a, A, C> {
    fn process_loaded(&self, result: Result<(), ProcessLoadError>) {
        match result {
            // Includes the padding tockloader puts between fixed-address apps: not an error.
            Ok(()) | Err(ProcessLoadError::BinaryError(_)) => {}
            Err(e) => debug!("qemu_rv32_virt_kv: a process failed to load: {:?}", e),
        }
    }

    fn process_loading_finished(&self) {
        self.arm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::process::StoppedState;

    #[test]
    fn verdicts() {
        assert_eq!(verdict([]), Verdict::Done { faulted: 0 });
        assert_eq!(verdict([State::Terminated, State::Terminated]), Verdict::Done { faulted: 0 });
        assert_eq!(verdict([State::Terminated, State::Faulted]), Verdict::Done { faulted: 1 });
        assert_eq!(verdict([State::Terminated, State::Yielded]), Verdict::Active);
        assert_eq!(verdict([State::Running]), Verdict::Active);
        assert_eq!(verdict([State::Stopped(StoppedState::Yielded), State::Faulted]), Verdict::Active);
    }
}
