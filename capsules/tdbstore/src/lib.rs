//! Placeholder: the capsule is being written.
#![no_std]
