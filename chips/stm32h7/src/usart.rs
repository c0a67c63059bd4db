// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! USART1: the console, interrupt-driven, implementing `kernel::hil::uart`.
//!
//! ```text
//! capsules: console / process console / debug writer -> virtual UART mux
//!        |
//! usart (this file) -> USART1 @ 0x4001_1000, IRQ 37, PA9 TX / PA10 RX (AF7)
//! ```
//!
//! Registers: RM0399 "USART/UART", register map (CR1..PRESC). FIFO mode stays off, so ISR
//! bit 7 is TXE and bit 5 RXNE; 16x oversampling, BRR = f_ck / baud (RM0399 USART "baud rate
//! generation"). The kernel clock is PCLK2 (RCC_D2CCIP2R.USART16SEL = 0, set by
//! `Rcc::configure`). One byte per interrupt in each direction; line errors (overrun,
//! framing, noise, parity) are cleared and the reception goes on.

use core::cell::Cell;

use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::hil;
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::registers::interfaces::{ReadWriteable, Readable, Writeable};
use kernel::utilities::registers::{register_bitfields, register_structs, ReadOnly, ReadWrite, WriteOnly};
use kernel::utilities::StaticRef;
use kernel::ErrorCode;

use crate::rcc::{PeripheralClock, Rcc};

register_structs! {
    UsartRegisters {
        (0x00 => cr1: ReadWrite<u32, CR1::Register>),
        (0x04 => cr2: ReadWrite<u32, CR2::Register>),
        (0x08 => cr3: ReadWrite<u32>),
        (0x0C => brr: ReadWrite<u32>),
        (0x10 => _reserved0),
        (0x1C => isr: ReadOnly<u32, ISR::Register>),
        (0x20 => icr: WriteOnly<u32, ISR::Register>),
        (0x24 => rdr: ReadOnly<u32>),
        (0x28 => tdr: WriteOnly<u32>),
        (0x2C => presc: ReadWrite<u32>),
        (0x30 => @END),
    }
}

register_bitfields![u32,
    CR1 [
        UE OFFSET(0) NUMBITS(1) [],
        RE OFFSET(2) NUMBITS(1) [],
        TE OFFSET(3) NUMBITS(1) [],
        RXNEIE OFFSET(5) NUMBITS(1) [],
        TXEIE OFFSET(7) NUMBITS(1) [],
        PCE OFFSET(10) NUMBITS(1) [],
        M0 OFFSET(12) NUMBITS(1) [],
        OVER8 OFFSET(15) NUMBITS(1) [],
        M1 OFFSET(28) NUMBITS(1) [],
        FIFOEN OFFSET(29) NUMBITS(1) []
    ],
    CR2 [
        STOP OFFSET(12) NUMBITS(2) [One = 0, Two = 2]
    ],
    ISR [
        PE OFFSET(0) NUMBITS(1) [],
        FE OFFSET(1) NUMBITS(1) [],
        NE OFFSET(2) NUMBITS(1) [],
        ORE OFFSET(3) NUMBITS(1) [],
        RXNE OFFSET(5) NUMBITS(1) [],
        TC OFFSET(6) NUMBITS(1) [],
        TXE OFFSET(7) NUMBITS(1) []
    ]
];

const USART1_BASE: StaticRef<UsartRegisters> =
    // SAFETY: USART1 is at 0x4001_1000 (RM0399 memory map; facts file); the layout above
    // matches RM0399's USART register map.
    unsafe { StaticRef::new(0x4001_1000 as *const UsartRegisters) };

/// Bounded wait for TXE in the polled (panic) path.
const SEND_BYTE_SPINS: u32 = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum TxState {
    Idle,
    Transmitting,
    AbortRequested,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RxState {
    Idle,
    Receiving,
    AbortRequested,
}

/// A USART.
pub struct Usart<'a> {
    registers: StaticRef<UsartRegisters>,
    rcc: &'a Rcc,
    clock: PeripheralClock,
    kernel_clock_hz: Cell<u32>,

    tx_client: OptionalCell<&'a dyn hil::uart::TransmitClient>,
    rx_client: OptionalCell<&'a dyn hil::uart::ReceiveClient>,

    tx_buffer: TakeCell<'static, [u8]>,
    tx_position: Cell<usize>,
    tx_len: Cell<usize>,
    tx_state: Cell<TxState>,

    rx_buffer: TakeCell<'static, [u8]>,
    rx_position: Cell<usize>,
    rx_len: Cell<usize>,
    rx_state: Cell<RxState>,

    deferred_call: DeferredCall,
}

impl<'a> Usart<'a> {
    /// USART1, clocked from PCLK2 at `pclk2_hz`. Needs the deferred-call state initialised.
    pub fn new_usart1(rcc: &'a Rcc, pclk2_hz: u32) -> Self {
        Usart {
            registers: USART1_BASE,
            rcc,
            clock: PeripheralClock::Usart1,
            kernel_clock_hz: Cell::new(pclk2_hz),
            tx_client: OptionalCell::empty(),
            rx_client: OptionalCell::empty(),
            tx_buffer: TakeCell::empty(),
            tx_position: Cell::new(0),
            tx_len: Cell::new(0),
            tx_state: Cell::new(TxState::Idle),
            rx_buffer: TakeCell::empty(),
            rx_position: Cell::new(0),
            rx_len: Cell::new(0),
            rx_state: Cell::new(RxState::Idle),
            deferred_call: DeferredCall::new(),
        }
    }

    /// Turns the bus clock on.
    pub fn enable_clock(&self) {
        self.rcc.enable(self.clock);
    }

    /// Whether the bus clock is on.
    pub fn is_enabled_clock(&self) -> bool {
        self.rcc.is_enabled(self.clock)
    }

    /// Polled transmit of one byte, for the panic handler: waits (bounded) for TXE.
    pub fn send_byte(&self, byte: u8) {
        for _ in 0..SEND_BYTE_SPINS {
            if self.registers.isr.is_set(ISR::TXE) {
                break;
            }
        }
        self.registers.tdr.set(u32::from(byte));
    }

    /// Waits (bounded) until the last byte has left the shift register.
    pub fn flush(&self) {
        for _ in 0..SEND_BYTE_SPINS {
            if self.registers.isr.is_set(ISR::TC) {
                break;
            }
        }
    }

    /// The USART interrupt.
    pub fn handle_interrupt(&self) {
        let isr = self.registers.isr.extract();
        // Line errors: clear them so the interrupt does not repeat; keep receiving.
        // PE, FE, NE, ORE: ISR bits 0..3, cleared by the same bits of ICR.
        let errors = isr.get() & 0b1111;
        if errors != 0 {
            self.registers.icr.set(errors);
        }

        if isr.is_set(ISR::RXNE) {
            let byte = self.registers.rdr.get() as u8;
            if self.rx_state.get() == RxState::Receiving {
                let pos = self.rx_position.get();
                self.rx_buffer.map(|buf| {
                    if pos < buf.len() {
                        buf[pos] = byte;
                    }
                });
                self.rx_position.set(pos + 1);
                if pos + 1 >= self.rx_len.get() {
                    self.registers.cr1.modify(CR1::RXNEIE::CLEAR);
                    self.rx_state.set(RxState::Idle);
                    if let Some(buf) = self.rx_buffer.take() {
                        let len = self.rx_len.get();
                        self.rx_client
                            .map(move |c| c.received_buffer(buf, len, Ok(()), hil::uart::Error::None));
                    }
                }
            }
        }

        if isr.is_set(ISR::TXE) && self.registers.cr1.is_set(CR1::TXEIE) {
            if self.tx_state.get() == TxState::Transmitting {
                let pos = self.tx_position.get();
                if pos < self.tx_len.get() {
                    self.tx_buffer.map(|buf| self.registers.tdr.set(u32::from(buf[pos])));
                    self.tx_position.set(pos + 1);
                }
                if self.tx_position.get() >= self.tx_len.get() {
                    self.registers.cr1.modify(CR1::TXEIE::CLEAR);
                    self.tx_state.set(TxState::Idle);
                    if let Some(buf) = self.tx_buffer.take() {
                        let len = self.tx_len.get();
                        self.tx_client.map(move |c| c.transmitted_buffer(buf, len, Ok(())));
                    }
                }
            } else {
                self.registers.cr1.modify(CR1::TXEIE::CLEAR);
            }
        }
    }
}

impl DeferredCallClient for Usart<'_> {
    fn register(&'static self) {
        self.deferred_call.register(self);
    }

    fn handle_deferred_call(&self) {
        if self.tx_state.get() == TxState::AbortRequested {
            self.tx_state.set(TxState::Idle);
            if let Some(buf) = self.tx_buffer.take() {
                let pos = self.tx_position.get();
                self.tx_client.map(move |c| c.transmitted_buffer(buf, pos, Err(ErrorCode::CANCEL)));
            }
        }
        if self.rx_state.get() == RxState::AbortRequested {
            self.rx_state.set(RxState::Idle);
            if let Some(buf) = self.rx_buffer.take() {
                let pos = self.rx_position.get();
                self.rx_client.map(move |c| {
                    c.received_buffer(buf, pos, Err(ErrorCode::CANCEL), hil::uart::Error::Aborted)
                });
            }
        }
    }
}

impl<'a> hil::uart::Transmit<'a> for Usart<'a> {
    fn set_transmit_client(&self, client: &'a dyn hil::uart::TransmitClient) {
        self.tx_client.set(client);
    }

    fn transmit_buffer(
        &self,
        tx_data: &'static mut [u8],
        tx_len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if self.tx_state.get() != TxState::Idle {
            return Err((ErrorCode::BUSY, tx_data));
        }
        if tx_len == 0 || tx_len > tx_data.len() {
            return Err((ErrorCode::SIZE, tx_data));
        }
        self.tx_buffer.replace(tx_data);
        self.tx_position.set(0);
        self.tx_len.set(tx_len);
        self.tx_state.set(TxState::Transmitting);
        self.registers.cr1.modify(CR1::TXEIE::SET);
        Ok(())
    }

    fn transmit_word(&self, _word: u32) -> Result<(), ErrorCode> {
        Err(ErrorCode::NOSUPPORT)
    }

    fn transmit_abort(&self) -> Result<(), ErrorCode> {
        if self.tx_state.get() == TxState::Idle {
            return Ok(());
        }
        self.registers.cr1.modify(CR1::TXEIE::CLEAR);
        self.tx_state.set(TxState::AbortRequested);
        self.deferred_call.set();
        Err(ErrorCode::BUSY)
    }
}

impl<'a> hil::uart::Receive<'a> for Usart<'a> {
    fn set_receive_client(&self, client: &'a dyn hil::uart::ReceiveClient) {
        self.rx_client.set(client);
    }

    fn receive_buffer(
        &self,
        rx_buffer: &'static mut [u8],
        rx_len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if self.rx_state.get() != RxState::Idle {
            return Err((ErrorCode::BUSY, rx_buffer));
        }
        if rx_len == 0 || rx_len > rx_buffer.len() {
            return Err((ErrorCode::SIZE, rx_buffer));
        }
        self.rx_buffer.replace(rx_buffer);
        self.rx_position.set(0);
        self.rx_len.set(rx_len);
        self.rx_state.set(RxState::Receiving);
        self.registers.cr1.modify(CR1::RXNEIE::SET);
        Ok(())
    }

    fn receive_word(&self) -> Result<(), ErrorCode> {
        Err(ErrorCode::NOSUPPORT)
    }

    fn receive_abort(&self) -> Result<(), ErrorCode> {
        if self.rx_state.get() == RxState::Idle {
            return Ok(());
        }
        self.registers.cr1.modify(CR1::RXNEIE::CLEAR);
        self.rx_state.set(RxState::AbortRequested);
        self.deferred_call.set();
        Err(ErrorCode::BUSY)
    }
}

impl hil::uart::Configure for Usart<'_> {
    /// 8 data bits, no parity, one or two stop bits, no flow control; any baud rate the
    /// kernel clock can divide to (BRR >= 16).
    fn configure(&self, params: hil::uart::Parameters) -> Result<(), ErrorCode> {
        if params.width != hil::uart::Width::Eight
            || params.parity != hil::uart::Parity::None
            || params.hw_flow_control
            || params.baud_rate == 0
        {
            return Err(ErrorCode::NOSUPPORT);
        }
        let clk = self.kernel_clock_hz.get();
        let brr = (clk + params.baud_rate / 2) / params.baud_rate;
        if !(16..=0xFFFF).contains(&brr) {
            return Err(ErrorCode::INVAL);
        }
        self.enable_clock();
        // M, PCE, OVER8, FIFOEN and BRR may only change while UE = 0.
        self.registers.cr1.set(0);
        self.registers.presc.set(0);
        self.registers.brr.set(brr);
        self.registers.cr2.modify(match params.stop_bits {
            hil::uart::StopBits::One => CR2::STOP::One,
            hil::uart::StopBits::Two => CR2::STOP::Two,
        });
        self.registers.cr3.set(0);
        self.registers.cr1.write(
            CR1::M0::CLEAR
                + CR1::M1::CLEAR
                + CR1::PCE::CLEAR
                + CR1::OVER8::CLEAR
                + CR1::FIFOEN::CLEAR
                + CR1::TE::SET
                + CR1::RE::SET
                + CR1::UE::SET,
        );
        Ok(())
    }
}

/// Configuration of the polled panic writer.
#[derive(Clone, Copy, Debug)]
pub struct UsartPanicWriterConfig {
    /// USART1's kernel clock (PCLK2), in Hz.
    pub kernel_clock_hz: u32,
    /// Baud rate to use if the USART is not already running.
    pub baud_rate: u32,
}

/// A polled USART1 writer for panic output (`kernel::debug::panic`).
pub struct UsartPanicWriter {
    registers: StaticRef<UsartRegisters>,
}

impl kernel::utilities::io_write::IoWrite for UsartPanicWriter {
    fn write(&mut self, buf: &[u8]) -> usize {
        for &b in buf {
            for _ in 0..SEND_BYTE_SPINS {
                if self.registers.isr.is_set(ISR::TXE) {
                    break;
                }
            }
            self.registers.tdr.set(u32::from(b));
        }
        for _ in 0..SEND_BYTE_SPINS {
            if self.registers.isr.is_set(ISR::TC) {
                break;
            }
        }
        buf.len()
    }
}

impl core::fmt::Write for UsartPanicWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        kernel::utilities::io_write::IoWrite::write(self, s.as_bytes());
        Ok(())
    }
}

impl kernel::platform::chip::PanicWriter for Usart<'_> {
    type Config = UsartPanicWriterConfig;

    unsafe fn create_panic_writer(
        config: Self::Config,
    ) -> impl kernel::utilities::io_write::IoWrite + core::fmt::Write {
        let registers = USART1_BASE;
        Rcc::new().enable(PeripheralClock::Usart1);
        if registers.cr1.is_set(CR1::UE) && registers.cr1.is_set(CR1::TE) {
            // Already running (the console): keep its settings, stop its interrupts.
            registers.cr1.modify(CR1::TXEIE::CLEAR + CR1::RXNEIE::CLEAR);
        } else {
            let baud = config.baud_rate.max(1);
            registers.cr1.set(0);
            registers.presc.set(0);
            registers.brr.set((config.kernel_clock_hz + baud / 2) / baud);
            registers.cr2.set(0);
            registers.cr3.set(0);
            registers.cr1.write(CR1::TE::SET + CR1::RE::SET + CR1::UE::SET);
        }
        UsartPanicWriter { registers }
    }
}
