// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! One console line per system call, for the end-to-end test apps.
//!
//! `writeln!` on libtock's console writer makes one system call per formatted fragment, so
//! the kernel's and other processes' output can land inside a line, and the e2e runner
//! (`run_e2e.py`) reads the console line by line. [`line!`] formats the whole line into a
//! stack buffer ([`Line`], cut at [`LINE_LEN`] bytes) and writes it with one call.
#![no_std]

/// The longest line written; longer ones are cut (the runner's checks fit well within).
pub const LINE_LEN: usize = 200;

/// A line being formatted: bytes past [`LINE_LEN`] are dropped, never an error, so a
/// formatting call can't fail halfway through a report.
pub struct Line {
    buf: [u8; LINE_LEN],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line { buf: [0; LINE_LEN], len: 0 }
    }

    /// What was formatted so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(LINE_LEN - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `line!("fmt", args...)`: formats one line (with its `\n`) and writes it to the console
/// in one system call, through the calling app's `libtock`.
#[macro_export]
macro_rules! line {
    ($($arg:tt)*) => {{
        use ::core::fmt::Write as _;
        let mut l = $crate::Line::new();
        let _ = ::core::writeln!(l, $($arg)*);
        let _ = ::libtock::console::Console::write(l.as_bytes());
    }};
}
