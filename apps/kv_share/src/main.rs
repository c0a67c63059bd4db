// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `kv_share` on Tock: runs the three attempts (the library) once on the real system calls
//! and exits.
//!
//! ```text
//! +----------------------------------------+
//! | kv_share binary (this file)            |
//! +----------------------------------------+
//! | kv_share::run::<TockSyscalls>          |
//! +----------------------------------------+
//!    syscalls: KV 0x50003, console, alarm
//! ```

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod tock {
    use libtock::runtime::{set_main, stack_size, TockSyscalls};

    set_main! {main}
    stack_size! {0x800}

    fn main() {
        let _ = kv_share::run::<TockSyscalls>(kv_share::Config::BOARD);
    }
}

/// On the host there is nothing to run: the logic is tested with `cargo test`.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("kv_share is a Tock app: build it with `make -C apps tabs`");
    std::process::exit(2);
}
