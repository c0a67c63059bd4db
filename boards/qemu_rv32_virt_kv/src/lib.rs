// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The emulated board's own parts: the CFI flash driver, the scheduler fix, the fault policy and the
//! shutdown monitor. Host-tested; `main.rs` wires them into the kernel.
#![cfg_attr(not(test), no_std)]

pub mod cfi_flash;
pub mod fair_sched;
pub mod fault_policy;
pub mod flash_latency;
pub mod shutdown;
