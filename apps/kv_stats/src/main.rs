// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `kv_stats` on Tock: runs the sketch's cycle (the library) once on the real system calls
//! and exits with 0, or with the error code that stopped it.
//!
//! ```text
//! +----------------------------------------+
//! | kv_stats binary (this file)            |
//! +----------------------------------------+
//! | kv_stats::run::<TockSyscalls>          |
//! +----------------------------------------+
//!    syscalls: KV 0x50003, console, alarm, RNG
//! ```

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod tock {
    use libtock::platform::ErrorCode;
    use libtock::runtime::{set_main, stack_size, TockSyscalls};

    set_main! {main}
    stack_size! {0x800}

    fn main() -> Result<(), ErrorCode> {
        kv_stats::run::<TockSyscalls>().map(|_| ()).map_err(kv_stats::Failure::error_code)
    }
}

/// On the host there is nothing to run: the logic is tested with `cargo test`.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("kv_stats is a Tock app: build it with `make -C apps tabs`");
    std::process::exit(2);
}
