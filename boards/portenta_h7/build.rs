// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Links the kernel with `layout.ld` (which includes Tock's `tock_kernel_layout.ld`).
//!
//! With the board's `.cargo/config.toml` in effect (builds from this directory, e.g. the
//! Makefile) Tock's default script does everything and checks the flags. A build started
//! elsewhere with `--target thumbv7em-none-eabi` does not read that file; the target's
//! defaults already are rust-lld and static relocation, so this script adds the remaining link
//! flags of `tock_flags.toml` itself.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(cfg_tock_buildflagssentinel)");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("cfg_tock_buildflagssentinel") {
        tock_build_scripts::default_linker_script();
    } else {
        println!("cargo:rustc-link-arg=-nmagic");
        println!("cargo:rustc-link-arg=-icf=all");
        tock_build_scripts::default::include_tock_kernel_layout();
        tock_build_scripts::default::add_board_dir_to_linker_search_path();
        tock_build_scripts::default::set_and_track_linker_script("layout.ld");
    }
}
