// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! A process that yields gives up its turn, even when kernel work interrupts it.
//!
//! ```text
//! kernel loop --next()/result()--> YieldRotates (this file) --> CooperativeSched (upstream)
//! ```
//!
//! Upstream's cooperative scheduler (`capsules/system/src/scheduler/cooperative.rs`) moves
//! the running process to the back of its queue when it stops, except on
//! `KernelPreemption`, when it keeps its place at the head. The kernel's `do_process`
//! (`kernel/src/kernel.rs`) preempts a process whenever kernel work is pending, and an app
//! that starts a KV operation has left kernel work pending (the operation's deferred calls)
//! when its command returns: it is preempted still `Running`, keeps the head, the whole
//! operation completes during the kernel work, and when the app then yields its upcall is
//! already there, so `do_process` runs it on without asking the scheduler. It never gives
//! up the processor: the end-to-end load test saw each of nine apps run to its end before
//! the next one ran at all. This wrapper ends a turn when the process yields (after it has
//! run once in the turn) and reports that stop as `NoWorkLeft`, so the process goes to the
//! back of the queue and every app gets one turn per round.

use core::cell::Cell;

use kernel::capabilities::ProcessManagementCapability;
use kernel::platform::chip::Chip;
use kernel::process::{ProcessId, State, StoppedExecutingReason};
use kernel::scheduler::{Scheduler, SchedulingDecision};
use kernel::utilities::cells::OptionalCell;
use kernel::Kernel;

/// The reason to give the inner scheduler for a stop of a process in state `state`.
pub fn reason_for(reason: StoppedExecutingReason, state: Option<State>) -> StoppedExecutingReason {
    match (reason, state) {
        (StoppedExecutingReason::KernelPreemption, Some(State::Yielded | State::YieldedFor(_))) => {
            StoppedExecutingReason::NoWorkLeft
        }
        (r, _) => r,
    }
}

/// Wraps a scheduler so a yielded process always goes to the back of the queue.
pub struct YieldRotates<S: 'static, C: ProcessManagementCapability> {
    inner: &'static S,
    kernel: &'static Kernel,
    cap: C,
    running: OptionalCell<ProcessId>,
    /// The process chosen by `next` has not been checked by `continue_process` yet.
    fresh: Cell<bool>,
}

impl<S, C: ProcessManagementCapability> YieldRotates<S, C> {
    /// `inner`, fed with the corrected stop reasons.
    pub fn new(inner: &'static S, kernel: &'static Kernel, cap: C) -> Self {
        Self { inner, kernel, cap, running: OptionalCell::empty(), fresh: Cell::new(false) }
    }
}

impl<Ch: Chip, S: Scheduler<Ch>, C: ProcessManagementCapability> Scheduler<Ch> for YieldRotates<S, C> {
    fn next(&self) -> SchedulingDecision {
        let decision = self.inner.next();
        if let SchedulingDecision::RunProcess((id, _)) = decision {
            self.running.set(id);
            self.fresh.set(true);
        }
        decision
    }

    fn result(&self, result: StoppedExecutingReason, execution_time_us: Option<u32>) {
        let state = self
            .running
            .take()
            .and_then(|id| self.kernel.process_map_or_external(None, id, |p| Some(p.get_state()), &self.cap));
        self.inner.result(reason_for(result, state), execution_time_us)
    }

    fn execute_kernel_work(&self, chip: &Ch) {
        self.inner.execute_kernel_work(chip)
    }

    fn do_kernel_work_now(&self, chip: &Ch) -> bool {
        self.inner.do_kernel_work_now(chip)
    }

    fn continue_process(&self, id: ProcessId, chip: &Ch) -> bool {
        // The first check of a turn comes before the process runs: it may be waiting in a
        // yield with an upcall to deliver. From then on, a yield ends the turn.
        if self.fresh.replace(false) {
            return self.inner.continue_process(id, chip);
        }
        let state = self.kernel.process_map_or_external(None, id, |p| Some(p.get_state()), &self.cap);
        !matches!(state, Some(State::Yielded | State::YieldedFor(_))) && self.inner.continue_process(id, chip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::process::StoppedState;

    #[test]
    fn a_yielded_process_gives_up_its_turn() {
        use StoppedExecutingReason::KernelPreemption as Pre;
        assert!(matches!(reason_for(Pre, Some(State::Yielded)), StoppedExecutingReason::NoWorkLeft));
        // Still running (kernel work arrived mid-computation): keeps its place.
        assert!(matches!(reason_for(Pre, Some(State::Running)), StoppedExecutingReason::KernelPreemption));
        assert!(matches!(
            reason_for(Pre, Some(State::Stopped(StoppedState::Yielded))),
            StoppedExecutingReason::KernelPreemption
        ));
        assert!(matches!(reason_for(Pre, None), StoppedExecutingReason::KernelPreemption));
        assert!(matches!(
            reason_for(StoppedExecutingReason::TimesliceExpired, Some(State::Yielded)),
            StoppedExecutingReason::TimesliceExpired
        ));
    }
}
