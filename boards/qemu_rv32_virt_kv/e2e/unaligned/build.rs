// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Links the app for the flash and RAM slot the Makefile passes (`LIBTOCK_LINKER_FLASH`,
//! `LIBTOCK_LINKER_RAM` and their lengths).

fn main() {
    libtock_build_scripts::auto_layout();
}
