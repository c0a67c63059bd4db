// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! What the kernel does when a process faults: restart it, up to a limit, then stop it.
//!
//! ```text
//! process faults --kernel--> RestartThenStop::action (this file) --> Restart | Stop
//!                                 prints one line per fault
//! ```
//!
//! The end-to-end tests make an app fault over and over while its KV operation is in flight
//! and check that it comes back and that nobody else notices. Upstream's policies either
//! restart without a word (`ThresholdRestartFaultPolicy`, so a test cannot count the
//! faults), or panic the kernel after the limit (`ThresholdRestartThenPanicFaultPolicy`,
//! which one bad app must never be able to do). This one prints a line per fault and, after
//! `limit` restarts, stops the process as `Faulted`: the shutdown monitor (`shutdown.rs`)
//! then counts it as ended, and QEMU exits with status 1.

use kernel::debug;
use kernel::process::{FaultAction, Process, ProcessFaultPolicy};

/// Restart a faulting process at most `limit` times, then stop it.
pub struct RestartThenStop {
    limit: usize,
}

impl RestartThenStop {
    /// A policy allowing `limit` restarts per process.
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// The action for a process already restarted `restarts` times.
    pub fn decide(&self, restarts: usize) -> FaultAction {
        if restarts < self.limit {
            FaultAction::Restart
        } else {
            FaultAction::Stop
        }
    }
}

impl ProcessFaultPolicy for RestartThenStop {
    fn action(&self, process: &dyn Process) -> FaultAction {
        let restarts = process.get_restart_count();
        let action = self.decide(restarts);
        match action {
            FaultAction::Restart => debug!(
                "qemu_rv32_virt_kv: process {} faulted; restart {} of {}",
                process.get_process_name(),
                restarts + 1,
                self.limit
            ),
            _ => debug!(
                "qemu_rv32_virt_kv: process {} faulted after {} restarts; stopped",
                process.get_process_name(),
                restarts
            ),
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_then_stops() {
        let p = RestartThenStop::new(2);
        assert!(matches!(p.decide(0), FaultAction::Restart));
        assert!(matches!(p.decide(1), FaultAction::Restart));
        assert!(matches!(p.decide(2), FaultAction::Stop));
        assert!(matches!(RestartThenStop::new(0).decide(0), FaultAction::Stop));
    }
}
