// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! TIM2: a free-running 32-bit counter at 16 kHz with one compare channel, implementing
//! `kernel::hil::time::Alarm` for the kernel's alarm mux.
//!
//! ```text
//! capsules: alarm driver, process console, virtual alarms -> MuxAlarm
//!        |
//! tim2 (this file) -> TIM2 @ 0x4000_0000, IRQ 28, clock = APB1 timer clock
//! ```
//!
//! Registers: RM0399 "General-purpose timers (TIM2/TIM3/TIM4/TIM5)", register map. Up-counting,
//! ARR = 0xFFFF_FFFF (wraps like `Ticks32`), PSC = f_timer / 16 kHz - 1 (exact for 200 MHz
//! and for the 64 MHz HSI fallback), compare on CCR1 with the CC1 interrupt.

use kernel::hil::time::{Alarm, AlarmClient, Counter, Freq16KHz, Frequency, Ticks, Ticks32, Time};
use kernel::utilities::cells::OptionalCell;
use kernel::utilities::registers::interfaces::{ReadWriteable, Readable, Writeable};
use kernel::utilities::registers::{register_bitfields, register_structs, ReadWrite, WriteOnly};
use kernel::utilities::StaticRef;
use kernel::ErrorCode;

use crate::rcc::{PeripheralClock, Rcc};

register_structs! {
    Tim2Registers {
        (0x00 => cr1: ReadWrite<u32, CR1::Register>),
        (0x04 => _reserved0),
        (0x0C => dier: ReadWrite<u32, DIER::Register>),
        (0x10 => sr: ReadWrite<u32, SR::Register>),
        (0x14 => egr: WriteOnly<u32, EGR::Register>),
        (0x18 => _reserved1),
        (0x24 => cnt: ReadWrite<u32>),
        (0x28 => psc: ReadWrite<u32>),
        (0x2C => arr: ReadWrite<u32>),
        (0x30 => _reserved2),
        (0x34 => ccr1: ReadWrite<u32>),
        (0x38 => @END),
    }
}

register_bitfields![u32,
    CR1 [
        CEN OFFSET(0) NUMBITS(1) [],
        UDIS OFFSET(1) NUMBITS(1) [],
        URS OFFSET(2) NUMBITS(1) [],
        OPM OFFSET(3) NUMBITS(1) [],
        DIR OFFSET(4) NUMBITS(1) [],
        ARPE OFFSET(7) NUMBITS(1) [],
        UIFREMAP OFFSET(11) NUMBITS(1) []
    ],
    DIER [
        UIE OFFSET(0) NUMBITS(1) [],
        CC1IE OFFSET(1) NUMBITS(1) []
    ],
    SR [
        UIF OFFSET(0) NUMBITS(1) [],
        CC1IF OFFSET(1) NUMBITS(1) []
    ],
    EGR [
        UG OFFSET(0) NUMBITS(1) [],
        CC1G OFFSET(1) NUMBITS(1) []
    ]
];

const TIM2_BASE: StaticRef<Tim2Registers> =
    // SAFETY: TIM2 is at 0x4000_0000 (RM0399 memory map); the layout above matches the
    // general-purpose timer register map.
    unsafe { StaticRef::new(0x4000_0000 as *const Tim2Registers) };

/// SR bits are rc_w0: writing 1 leaves a flag alone, writing 0 clears it.
const SR_CLEAR_CC1IF: u32 = !(1 << 1);

/// TIM2 as the kernel's alarm.
pub struct Tim2<'a> {
    registers: StaticRef<Tim2Registers>,
    rcc: &'a Rcc,
    timer_clock_hz: u32,
    client: OptionalCell<&'a dyn AlarmClient>,
}

impl<'a> Tim2<'a> {
    /// TIM2 counting from the APB1 timer clock `timer_clock_hz`.
    pub const fn new(rcc: &'a Rcc, timer_clock_hz: u32) -> Self {
        Tim2 { registers: TIM2_BASE, rcc, timer_clock_hz, client: OptionalCell::empty() }
    }

    /// Turns the bus clock on.
    pub fn enable_clock(&self) {
        self.rcc.enable(PeripheralClock::Tim2);
    }

    /// Starts the counter: 16 kHz, free-running over the whole 32 bits, no interrupt armed.
    pub fn start(&self) {
        self.enable_clock();
        let r = &*self.registers;
        r.cr1.modify(CR1::CEN::CLEAR);
        r.dier.set(0);
        r.arr.set(u32::MAX);
        let psc = (self.timer_clock_hz / Freq16KHz::frequency()).max(1) - 1;
        r.psc.set(psc);
        // UG loads the prescaler (it only takes effect at an update event) and zeroes CNT.
        r.egr.write(EGR::UG::SET);
        r.sr.set(0);
        r.cr1.write(CR1::CEN::SET);
    }

    /// The TIM2 interrupt: a compare match on CCR1 fires the (one-shot) alarm.
    pub fn handle_interrupt(&self) {
        let r = &*self.registers;
        if r.sr.is_set(SR::CC1IF) && r.dier.is_set(DIER::CC1IE) {
            r.sr.set(SR_CLEAR_CC1IF);
            r.dier.modify(DIER::CC1IE::CLEAR);
            self.client.map(|c| c.alarm());
        } else {
            // Clear anything else (UIF from UG) so the line does not stay pending.
            r.sr.set(0);
        }
    }
}

impl Time for Tim2<'_> {
    type Frequency = Freq16KHz;
    type Ticks = Ticks32;

    fn now(&self) -> Ticks32 {
        Ticks32::from(self.registers.cnt.get())
    }
}

impl<'a> Counter<'a> for Tim2<'a> {
    fn start(&self) -> Result<(), ErrorCode> {
        Tim2::start(self);
        Ok(())
    }

    fn stop(&self) -> Result<(), ErrorCode> {
        self.registers.cr1.modify(CR1::CEN::CLEAR);
        Ok(())
    }

    fn reset(&self) -> Result<(), ErrorCode> {
        self.registers.cnt.set(0);
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.registers.cr1.is_set(CR1::CEN)
    }
}

impl<'a> Alarm<'a> for Tim2<'a> {
    fn set_alarm_client(&self, client: &'a dyn AlarmClient) {
        self.client.set(client);
    }

    fn set_alarm(&self, reference: Self::Ticks, dt: Self::Ticks) {
        let r = &*self.registers;
        let mut expire = reference.wrapping_add(dt);
        let now = self.now();
        if !now.within_range(reference, expire) {
            // Already in the past.
            expire = now;
        }
        if expire.wrapping_sub(now) < self.minimum_dt() {
            expire = now.wrapping_add(self.minimum_dt());
        }
        r.dier.modify(DIER::CC1IE::CLEAR);
        r.ccr1.set(expire.into_u32());
        // A stale match flag from an earlier wrap past CCR1 would fire at once.
        r.sr.set(SR_CLEAR_CC1IF);
        r.dier.modify(DIER::CC1IE::SET);
        // If the counter passed `expire` while we were programming it, force the event.
        if !self.now().within_range(now, expire) {
            r.egr.write(EGR::CC1G::SET);
        }
    }

    fn get_alarm(&self) -> Self::Ticks {
        Ticks32::from(self.registers.ccr1.get())
    }

    fn disarm(&self) -> Result<(), ErrorCode> {
        let r = &*self.registers;
        r.dier.modify(DIER::CC1IE::CLEAR);
        r.sr.set(SR_CLEAR_CC1IF);
        Ok(())
    }

    fn is_armed(&self) -> bool {
        self.registers.dier.is_set(DIER::CC1IE)
    }

    fn minimum_dt(&self) -> Self::Ticks {
        Ticks32::from(2)
    }
}
