// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! GPIO pins: mode, alternate function, pulls, and `kernel::hil::gpio::Pin`.
//!
//! ```text
//! boards/portenta_h7 (LEDs, PH1, USART1 pins)
//!        |
//! gpio (this file) -> GPIOA..GPIOK @ 0x5802_0000 + n * 0x400
//! ```
//!
//! Registers: RM0399 "General-purpose I/Os (GPIO)", register map (MODER, OTYPER, OSPEEDR,
//! PUPDR, IDR, ODR, BSRR, LCKR, AFRL, AFRH). No EXTI: pins here are not interrupt sources.

use kernel::hil;
use kernel::utilities::registers::interfaces::{Readable, Writeable};
use kernel::utilities::registers::{register_structs, ReadOnly, ReadWrite, WriteOnly};
use kernel::utilities::StaticRef;

use crate::rcc::{PeripheralClock, Rcc};

register_structs! {
    GpioRegisters {
        (0x00 => moder: ReadWrite<u32>),
        (0x04 => otyper: ReadWrite<u32>),
        (0x08 => ospeedr: ReadWrite<u32>),
        (0x0C => pupdr: ReadWrite<u32>),
        (0x10 => idr: ReadOnly<u32>),
        (0x14 => odr: ReadWrite<u32>),
        (0x18 => bsrr: WriteOnly<u32>),
        (0x1C => _reserved0),
        (0x20 => afr: [ReadWrite<u32>; 2]),
        (0x28 => @END),
    }
}

/// GPIO ports A to K.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Port {
    /// GPIOA
    A = 0,
    /// GPIOB
    B,
    /// GPIOC
    C,
    /// GPIOD
    D,
    /// GPIOE
    E,
    /// GPIOF
    F,
    /// GPIOG
    G,
    /// GPIOH
    H,
    /// GPIOI
    I,
    /// GPIOJ
    J,
    /// GPIOK
    K,
}

/// Pin mode (MODER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Mode {
    /// Input.
    Input = 0b00,
    /// General-purpose output.
    Output = 0b01,
    /// Alternate function.
    AlternateFunction = 0b10,
    /// Analog (reset state of most pins, lowest power).
    Analog = 0b11,
}

/// Output speed (OSPEEDR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Speed {
    /// Low.
    Low = 0b00,
    /// Medium.
    Medium = 0b01,
    /// High.
    High = 0b10,
    /// Very high.
    VeryHigh = 0b11,
}

/// One GPIO pin.
pub struct Pin<'a> {
    registers: StaticRef<GpioRegisters>,
    port: Port,
    number: u32,
    rcc: &'a Rcc,
}

impl<'a> Pin<'a> {
    /// Pin `number` (0..=15) of `port`.
    pub const fn new(port: Port, number: u8, rcc: &'a Rcc) -> Self {
        let base = 0x5802_0000 + (port as usize) * 0x400;
        Pin {
            // SAFETY: GPIOA..GPIOK are at 0x5802_0000 + n * 0x400 (RM0399 memory map); the
            // register layout above matches RM0399's GPIO register map.
            registers: unsafe { StaticRef::new(base as *const GpioRegisters) },
            port,
            number: (number & 0xF) as u32,
            rcc,
        }
    }

    /// Turns the port's clock on (idempotent).
    pub fn enable_clock(&self) {
        self.rcc.enable(PeripheralClock::Gpio(self.port as u8));
    }

    fn set_field(reg: &ReadWrite<u32>, shift: u32, width: u32, value: u32) {
        let mask = ((1u32 << width) - 1) << shift;
        reg.set((reg.get() & !mask) | ((value << shift) & mask));
    }

    /// Sets the pin mode.
    pub fn set_mode(&self, mode: Mode) {
        Self::set_field(&self.registers.moder, 2 * self.number, 2, mode as u32);
    }

    /// The pin mode.
    pub fn mode(&self) -> Mode {
        match (self.registers.moder.get() >> (2 * self.number)) & 0b11 {
            0b00 => Mode::Input,
            0b01 => Mode::Output,
            0b10 => Mode::AlternateFunction,
            _ => Mode::Analog,
        }
    }

    /// Selects alternate function `af` (0..=15) and switches the pin to it.
    pub fn set_alternate_function(&self, af: u8) {
        let reg = &self.registers.afr[(self.number / 8) as usize];
        Self::set_field(reg, 4 * (self.number % 8), 4, u32::from(af & 0xF));
        self.set_mode(Mode::AlternateFunction);
    }

    /// Sets the output speed.
    pub fn set_speed(&self, speed: Speed) {
        Self::set_field(&self.registers.ospeedr, 2 * self.number, 2, speed as u32);
    }

    /// Push-pull (false) or open-drain (true) output.
    pub fn set_open_drain(&self, open_drain: bool) {
        Self::set_field(&self.registers.otyper, self.number, 1, u32::from(open_drain));
    }
}

impl hil::gpio::Output for Pin<'_> {
    fn set(&self) {
        self.registers.bsrr.set(1 << self.number);
    }

    fn clear(&self) {
        self.registers.bsrr.set(1 << (self.number + 16));
    }

    fn toggle(&self) -> bool {
        let high = self.registers.odr.get() & (1 << self.number) != 0;
        if high {
            hil::gpio::Output::clear(self);
        } else {
            hil::gpio::Output::set(self);
        }
        !high
    }
}

impl hil::gpio::Input for Pin<'_> {
    fn read(&self) -> bool {
        self.registers.idr.get() & (1 << self.number) != 0
    }
}

impl hil::gpio::Configure for Pin<'_> {
    fn configuration(&self) -> hil::gpio::Configuration {
        match self.mode() {
            Mode::Input => hil::gpio::Configuration::Input,
            Mode::Output => hil::gpio::Configuration::InputOutput,
            Mode::AlternateFunction => hil::gpio::Configuration::Function,
            Mode::Analog => hil::gpio::Configuration::LowPower,
        }
    }

    fn make_output(&self) -> hil::gpio::Configuration {
        self.enable_clock();
        self.set_open_drain(false);
        self.set_mode(Mode::Output);
        self.configuration()
    }

    fn disable_output(&self) -> hil::gpio::Configuration {
        if self.mode() == Mode::Output {
            self.set_mode(Mode::Input);
        }
        self.configuration()
    }

    fn make_input(&self) -> hil::gpio::Configuration {
        self.enable_clock();
        if self.mode() != Mode::Output {
            self.set_mode(Mode::Input);
        }
        self.configuration()
    }

    fn disable_input(&self) -> hil::gpio::Configuration {
        // An output pin's input buffer stays on; only a plain input becomes analog.
        if self.mode() == Mode::Input {
            self.set_mode(Mode::Analog);
        }
        self.configuration()
    }

    fn deactivate_to_low_power(&self) {
        self.set_mode(Mode::Analog);
        self.set_floating_state(hil::gpio::FloatingState::PullNone);
    }

    fn set_floating_state(&self, state: hil::gpio::FloatingState) {
        let v = match state {
            hil::gpio::FloatingState::PullNone => 0b00,
            hil::gpio::FloatingState::PullUp => 0b01,
            hil::gpio::FloatingState::PullDown => 0b10,
        };
        Self::set_field(&self.registers.pupdr, 2 * self.number, 2, v);
    }

    fn floating_state(&self) -> hil::gpio::FloatingState {
        match (self.registers.pupdr.get() >> (2 * self.number)) & 0b11 {
            0b01 => hil::gpio::FloatingState::PullUp,
            0b10 => hil::gpio::FloatingState::PullDown,
            _ => hil::gpio::FloatingState::PullNone,
        }
    }
}
