//! Placeholder: the chip crate is being written.
#![no_std]
