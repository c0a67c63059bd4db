// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Links the Tock binary for the flash and RAM address of its slot, from the environment
//! the Makefile sets (`LIBTOCK_LINKER_FLASH`, `LIBTOCK_LINKER_FLASH_LENGTH`,
//! `LIBTOCK_LINKER_RAM`, `LIBTOCK_LINKER_RAM_LENGTH`; README.md, "App slots"). Host builds
//! (the tests) need no layout.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        libtock_build_scripts::auto_layout();
    }
}
