// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Flash that takes time: each completion of the CFI driver is delivered after a delay, as on
//! real NOR flash, so apps run while a KV operation is in flight.
//!
//! ```text
//! capsules/tdbstore --nor_flash_hil--> Latency (this file) --nor_flash_hil--> CfiFlash
//!                                         | completion held until an alarm fires
//! ```
//!
//! QEMU's CFI flash completes every operation inside the access, and `CfiFlash` delivers the
//! completion from a deferred call. The kernel runs deferred calls before any process, so a
//! whole KV operation (dozens of flash steps) ran before the app that started it, or any
//! other app, ran again: no app could ever die with its operation in flight, and no app's
//! code ever ran between two flash steps of another's operation. The STM32H7 takes tens of
//! microseconds to program a word and seconds to erase a sector, with the CPU free meanwhile;
//! this keeps the emulated board closer to that (smaller delays, to keep runs short).

use core::cell::Cell;

use kernel::hil::time::{Alarm, AlarmClient, ConvertTicks};
use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{Geometry, NorFlash, NorFlashClient};

/// Delays, in microseconds, per operation kind.
#[derive(Clone, Copy, Debug)]
pub struct Delays {
    /// After a read.
    pub read_us: u32,
    /// After a program.
    pub program_us: u32,
    /// After an erase.
    pub erase_us: u32,
}

/// The completion being held back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Held {
    Read,
    Program,
    Erase,
}

/// A `NorFlash` that passes operations to `inner` and delivers their completions later.
pub struct Latency<'a, F: NorFlash<'a>, A: Alarm<'a>> {
    inner: &'a F,
    alarm: &'a A,
    delays: Delays,
    client: OptionalCell<&'a dyn NorFlashClient>,
    held: Cell<Option<(Held, Result<(), ErrorCode>)>>,
    /// The held read's or program's buffer, window as the inner driver gave it back.
    buffer: MapCell<SubSliceMut<'static, u8>>,
}

impl<'a, F: NorFlash<'a>, A: Alarm<'a>> Latency<'a, F, A> {
    /// Wraps `inner`; the board sets this as `inner`'s client and `alarm`'s client.
    pub fn new(inner: &'a F, alarm: &'a A, delays: Delays) -> Self {
        Self {
            inner,
            alarm,
            delays,
            client: OptionalCell::empty(),
            held: Cell::new(None),
            buffer: MapCell::empty(),
        }
    }

    fn hold(&self, what: Held, result: Result<(), ErrorCode>, buffer: Option<SubSliceMut<'static, u8>>) {
        if let Some(b) = buffer {
            self.buffer.put(b);
        }
        self.held.set(Some((what, result)));
        let us = match what {
            Held::Read => self.delays.read_us,
            Held::Program => self.delays.program_us,
            Held::Erase => self.delays.erase_us,
        };
        self.alarm.set_alarm(self.alarm.now(), self.alarm.ticks_from_us(us.max(1)));
    }
}

impl<'a, F: NorFlash<'a>, A: Alarm<'a>> NorFlash<'a> for Latency<'a, F, A> {
    fn set_client(&self, client: &'a dyn NorFlashClient) {
        self.client.set(client);
    }

    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }

    fn read(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if self.held.get().is_some() {
            return Err((ErrorCode::BUSY, buffer));
        }
        self.inner.read(addr, buffer)
    }

    fn program(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if self.held.get().is_some() {
            return Err((ErrorCode::BUSY, buffer));
        }
        self.inner.program(addr, buffer)
    }

    fn erase(&self, addr: u32) -> Result<(), ErrorCode> {
        if self.held.get().is_some() {
            return Err(ErrorCode::BUSY);
        }
        self.inner.erase(addr)
    }
}

impl<'a, F: NorFlash<'a>, A: Alarm<'a>> NorFlashClient for Latency<'a, F, A> {
    fn read_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
        self.hold(Held::Read, result, Some(buffer));
    }

    fn program_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
        self.hold(Held::Program, result, Some(buffer));
    }

    fn erase_complete(&self, result: Result<(), ErrorCode>) {
        self.hold(Held::Erase, result, None);
    }
}

impl<'a, F: NorFlash<'a>, A: Alarm<'a>> AlarmClient for Latency<'a, F, A> {
    fn alarm(&self) {
        let Some((what, result)) = self.held.take() else { return };
        match (what, self.buffer.take()) {
            (Held::Erase, _) => self.client.map(|c| c.erase_complete(result)),
            (Held::Read, Some(b)) => self.client.map(|c| c.read_complete(b, result)),
            (Held::Program, Some(b)) => self.client.map(|c| c.program_complete(b, result)),
            // A read or program always hands its buffer back with its completion.
            (_, None) => None,
        };
    }
}
