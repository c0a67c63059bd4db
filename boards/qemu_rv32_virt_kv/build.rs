// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Links the kernel with `layout.ld` (and Tock's kernel layout). Host builds (the library's
//! tests) get no linker script.

fn main() {
    if std::env::var("TARGET").ok().is_some_and(|t| t.starts_with("riscv32")) {
        tock_build_scripts::default_linker_script();
    }
}
