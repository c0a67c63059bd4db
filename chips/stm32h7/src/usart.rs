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
//! Registers: RM0399 §48 "Universal synchronous/asynchronous receiver transmitter
//! (USART/UART)", register map (CR1..PRESC); 16x oversampling, BRR = f_ck / baud (§48 "baud
//! rate generation"). The kernel clock is PCLK2 (RCC_D2CCIP2R.USART16SEL = 0, set by
//! `rcc::configure`).
//!
//! **FIFO mode** (CR1.FIFOEN, §48 "USART FIFOs and thresholds"): the 16-entry receive FIFO
//! holds what is typed while the kernel is busy (a mount or a compaction runs long stretches
//! between interrupt bottom halves), where the single receive register would overrun at the
//! second byte. FIFOEN may only be written while the USART is disabled (UE = 0), so
//! [`init_registers`] writes it first with UE clear, as ST's HAL
//! (`HAL_UARTEx_EnableFifoMode`) does, and enables the USART in a separate write. In FIFO mode
//! ISR bit 5 is RXFNE (receive FIFO not empty) and bit 7 TXFNF (transmit FIFO not full), with
//! their interrupt enables at the same CR1 positions. The receive interrupt is RXFNEIE (one
//! interrupt as soon as a byte is there; the FIFO thresholds of CR3, RXFTCFG/RXFTIE, stay off:
//! a threshold would hold a lone keystroke back until more come); the handler drains the FIFO
//! into the client's buffer ([`receive_from_fifo`]) and leaves what does not fit in the FIFO
//! for the next `receive_buffer`. The transmit handler fills the transmit FIFO while TXFNF.
//! Line errors (overrun, framing, noise, parity) are cleared and the reception goes on.

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
        RXFNEIE OFFSET(5) NUMBITS(1) [],
        TXFNFIE OFFSET(7) NUMBITS(1) [],
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
        RXFNE OFFSET(5) NUMBITS(1) [],
        TC OFFSET(6) NUMBITS(1) [],
        TXFNF OFFSET(7) NUMBITS(1) []
    ]
];

const USART1_BASE: StaticRef<UsartRegisters> =
    // SAFETY: USART1 is at 0x4001_1000 (RM0399 memory map; facts file); the layout above
    // matches RM0399's USART register map.
    unsafe { StaticRef::new(0x4001_1000 as *const UsartRegisters) };

/// Bounded wait for TXE (TXFNF in FIFO mode, the same bit) in the polled (panic) path.
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

    /// Polled transmit of one byte, for the panic handler: waits (bounded) for TXE / TXFNF.
    pub fn send_byte(&self, byte: u8) {
        for _ in 0..SEND_BYTE_SPINS {
            if self.registers.isr.is_set(ISR::TXFNF) {
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

        if isr.is_set(ISR::RXFNE) && self.rx_state.get() == RxState::Receiving {
            let (pos, len) = (self.rx_position.get(), self.rx_len.get());
            let pos = self.rx_buffer.map_or(pos, |buf| receive_from_fifo(&self.registers, buf, pos, len));
            self.rx_position.set(pos);
            if pos >= len {
                self.registers.cr1.modify(CR1::RXFNEIE::CLEAR);
                self.rx_state.set(RxState::Idle);
                if let Some(buf) = self.rx_buffer.take() {
                    self.rx_client.map(move |c| c.received_buffer(buf, len, Ok(()), hil::uart::Error::None));
                }
            }
        }

        if isr.is_set(ISR::TXFNF) && self.registers.cr1.is_set(CR1::TXFNFIE) {
            if self.tx_state.get() == TxState::Transmitting {
                let (mut pos, len) = (self.tx_position.get(), self.tx_len.get());
                self.tx_buffer.map(|buf| {
                    while pos < len && self.registers.isr.is_set(ISR::TXFNF) {
                        self.registers.tdr.set(u32::from(buf.get(pos).copied().unwrap_or(0)));
                        pos += 1;
                    }
                });
                self.tx_position.set(pos);
                if self.tx_position.get() >= self.tx_len.get() {
                    self.registers.cr1.modify(CR1::TXFNFIE::CLEAR);
                    self.tx_state.set(TxState::Idle);
                    if let Some(buf) = self.tx_buffer.take() {
                        let len = self.tx_len.get();
                        self.tx_client.map(move |c| c.transmitted_buffer(buf, len, Ok(())));
                    }
                }
            } else {
                self.registers.cr1.modify(CR1::TXFNFIE::CLEAR);
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
        self.registers.cr1.modify(CR1::TXFNFIE::SET);
        Ok(())
    }

    fn transmit_word(&self, _word: u32) -> Result<(), ErrorCode> {
        Err(ErrorCode::NOSUPPORT)
    }

    fn transmit_abort(&self) -> Result<(), ErrorCode> {
        if self.tx_state.get() == TxState::Idle {
            return Ok(());
        }
        self.registers.cr1.modify(CR1::TXFNFIE::CLEAR);
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
        self.registers.cr1.modify(CR1::RXFNEIE::SET);
        Ok(())
    }

    fn receive_word(&self) -> Result<(), ErrorCode> {
        Err(ErrorCode::NOSUPPORT)
    }

    fn receive_abort(&self) -> Result<(), ErrorCode> {
        if self.rx_state.get() == RxState::Idle {
            return Ok(());
        }
        self.registers.cr1.modify(CR1::RXFNEIE::CLEAR);
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
        init_registers(&self.registers, brr, params.stop_bits);
        Ok(())
    }
}

/// A USART register, for [`UsartRegs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsartReg {
    /// CR1.
    Cr1,
    /// CR2.
    Cr2,
    /// CR3 (FIFO thresholds, DMA, flow control).
    Cr3,
    /// BRR.
    Brr,
    /// ISR.
    Isr,
    /// RDR (reading pops the receive FIFO).
    Rdr,
    /// PRESC.
    Presc,
}

/// CR1 bits the sequences here use (RM0399 §48 USART_CR1, FIFO mode).
pub mod cr1 {
    /// USART enable.
    pub const UE: u32 = 1 << 0;
    /// Receiver enable.
    pub const RE: u32 = 1 << 2;
    /// Transmitter enable.
    pub const TE: u32 = 1 << 3;
    /// Word length bit 0 (with M1: 8 data bits when both are 0).
    pub const M0: u32 = 1 << 12;
    /// Parity control enable.
    pub const PCE: u32 = 1 << 10;
    /// Oversampling by 8.
    pub const OVER8: u32 = 1 << 15;
    /// Word length bit 1.
    pub const M1: u32 = 1 << 28;
    /// FIFO mode enable.
    pub const FIFOEN: u32 = 1 << 29;
    /// The bits RM0399 lets change only while UE = 0.
    pub const UE_0_ONLY: u32 = M0 | PCE | OVER8 | M1 | FIFOEN;
}

/// ISR.RXFNE (FIFO mode): the receive FIFO holds a byte.
pub const ISR_RXFNE: u32 = 1 << 5;
/// CR2.STOP field (bits 13:12): 0b00 one stop bit, 0b10 two.
const CR2_STOP_MASK: u32 = 0b11 << 12;

/// Register-level access to a USART for the sequences that the host tests check against a
/// model: the initialisation and the draining of the receive FIFO.
pub trait UsartRegs {
    /// Reads a register (RDR: pops the receive FIFO).
    fn read(&self, reg: UsartReg) -> u32;
    /// Writes a register.
    fn write(&self, reg: UsartReg, value: u32);
}

impl UsartRegs for StaticRef<UsartRegisters> {
    fn read(&self, reg: UsartReg) -> u32 {
        match reg {
            UsartReg::Cr1 => self.cr1.get(),
            UsartReg::Cr2 => self.cr2.get(),
            UsartReg::Cr3 => self.cr3.get(),
            UsartReg::Brr => self.brr.get(),
            UsartReg::Isr => self.isr.get(),
            UsartReg::Rdr => self.rdr.get(),
            UsartReg::Presc => self.presc.get(),
        }
    }

    fn write(&self, reg: UsartReg, value: u32) {
        match reg {
            UsartReg::Cr1 => self.cr1.set(value),
            UsartReg::Cr2 => self.cr2.set(value),
            UsartReg::Cr3 => self.cr3.set(value),
            UsartReg::Brr => self.brr.set(value),
            UsartReg::Presc => self.presc.set(value),
            UsartReg::Isr | UsartReg::Rdr => {}
        }
    }
}

/// Initialises a USART for 8N1 (or 8N2) at `brr` with the FIFOs on (module documentation).
///
/// RM0399 §48 USART_CR1: M, PCE, OVER8, FIFOEN and BRR may only change while UE = 0. So: UE
/// off (CR1 = 0), the clocking and frame registers, CR3 = 0 (no FIFO threshold interrupts, no
/// DMA, no flow control), then CR1 with FIFOEN, TE and RE but UE still 0, and UE last.
pub fn init_registers<R: UsartRegs>(r: &R, brr: u32, stop_bits: hil::uart::StopBits) {
    r.write(UsartReg::Cr1, 0);
    r.write(UsartReg::Presc, 0);
    r.write(UsartReg::Brr, brr);
    let stop = match stop_bits {
        hil::uart::StopBits::One => 0,
        hil::uart::StopBits::Two => 0b10 << 12,
    };
    let cr2 = r.read(UsartReg::Cr2);
    r.write(UsartReg::Cr2, (cr2 & !CR2_STOP_MASK) | stop);
    r.write(UsartReg::Cr3, 0);
    let frame = cr1::FIFOEN | cr1::TE | cr1::RE;
    r.write(UsartReg::Cr1, frame);
    r.write(UsartReg::Cr1, frame | cr1::UE);
}

/// Moves bytes from the receive FIFO into `buf[pos..len]` while the FIFO has any (ISR.RXFNE)
/// and returns the new position; bytes beyond `len` stay in the FIFO for the next receive.
pub fn receive_from_fifo<R: UsartRegs>(r: &R, buf: &mut [u8], mut pos: usize, len: usize) -> usize {
    while pos < len && r.read(UsartReg::Isr) & ISR_RXFNE != 0 {
        let byte = r.read(UsartReg::Rdr) as u8;
        if let Some(slot) = buf.get_mut(pos) {
            *slot = byte;
        }
        pos += 1;
    }
    pos
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
                if self.registers.isr.is_set(ISR::TXFNF) {
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
            registers.cr1.modify(CR1::TXFNFIE::CLEAR + CR1::RXFNEIE::CLEAR);
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

#[cfg(test)]
mod tests {
    //! Host tests: the USART initialisation and the receive-FIFO drain against a
    //! register-level model of USART1 (RM0399 §48).
    //!
    //! ```text
    //! tests (this file) -> init_registers / receive_from_fifo -> UsartRegs = UsartModel
    //! ```

    use std::cell::RefCell;
    use std::collections::VecDeque;

    use kernel::hil::uart::StopBits;

    use super::{cr1, init_registers, receive_from_fifo, UsartReg, UsartRegs, ISR_RXFNE};

    /// USART1's registers and the receive FIFO (16 entries with FIFOEN, 1 without).
    ///
    /// It flags what RM0399 §48 forbids: M, PCE, OVER8, FIFOEN, BRR and PRESC written only while UE = 0,
    /// counting a CR1 write that changes one of them together with setting UE.
    #[derive(Default)]
    struct UsartModel {
        regs: RefCell<[u32; 7]>,
        rx: RefCell<VecDeque<u8>>,
        writes: RefCell<Vec<(UsartReg, u32)>>,
        violations: RefCell<Vec<String>>,
        overruns: RefCell<u32>,
    }

    impl UsartModel {
        fn get(&self, reg: UsartReg) -> u32 {
            self.regs.borrow()[reg as usize]
        }

        /// A byte arrives on RX.
        fn arrive(&self, byte: u8) {
            let depth = if self.get(UsartReg::Cr1) & cr1::FIFOEN != 0 { 16 } else { 1 };
            let mut rx = self.rx.borrow_mut();
            if rx.len() >= depth {
                *self.overruns.borrow_mut() += 1;
            } else {
                rx.push_back(byte);
            }
        }
    }

    impl UsartRegs for UsartModel {
        fn read(&self, reg: UsartReg) -> u32 {
            match reg {
                UsartReg::Isr => {
                    if self.rx.borrow().is_empty() {
                        0
                    } else {
                        ISR_RXFNE
                    }
                }
                UsartReg::Rdr => self.rx.borrow_mut().pop_front().map_or(0, u32::from),
                _ => self.get(reg),
            }
        }

        fn write(&self, reg: UsartReg, value: u32) {
            self.writes.borrow_mut().push((reg, value));
            let old = self.get(UsartReg::Cr1);
            let enabled = old & cr1::UE != 0;
            let guarded = match reg {
                UsartReg::Cr1 => (old ^ value) & cr1::UE_0_ONLY != 0 && (enabled || value & cr1::UE != 0),
                UsartReg::Brr | UsartReg::Presc => enabled,
                _ => false,
            };
            if guarded {
                self.violations.borrow_mut().push(format!("{reg:?} = {value:#x} written with UE = 1"));
            }
            self.regs.borrow_mut()[reg as usize] = value;
        }
    }

    #[test]
    fn init_sets_fifoen_while_the_usart_is_disabled_then_enables_it() {
        let usart = UsartModel::default();
        // Running as a bootloader or an earlier configure left it: enabled, FIFO off.
        usart.regs.borrow_mut()[UsartReg::Cr1 as usize] = cr1::UE | cr1::TE | cr1::RE;
        init_registers(&usart, 868, StopBits::One);
        assert_eq!(*usart.violations.borrow(), Vec::<String>::new());
        let cr1_writes: Vec<u32> =
            usart.writes.borrow().iter().filter(|(r, _)| *r == UsartReg::Cr1).map(|(_, v)| *v).collect();
        assert_eq!(cr1_writes, [0, cr1::FIFOEN | cr1::TE | cr1::RE, cr1::FIFOEN | cr1::TE | cr1::RE | cr1::UE]);
        assert_eq!(usart.get(UsartReg::Brr), 868);
        assert_eq!(usart.get(UsartReg::Cr3), 0, "no FIFO threshold interrupts, DMA or flow control");
        assert_eq!(usart.get(UsartReg::Cr2) & (0b11 << 12), 0);
        // The 8N1 frame: M0, M1, PCE, OVER8 all clear.
        assert_eq!(usart.get(UsartReg::Cr1) & (cr1::M0 | cr1::M1 | cr1::PCE | cr1::OVER8), 0);
    }

    #[test]
    fn the_model_flags_fifoen_written_with_the_usart_enabled() {
        let usart = UsartModel::default();
        usart.write(UsartReg::Cr1, cr1::FIFOEN | cr1::UE);
        usart.write(UsartReg::Brr, 100);
        assert_eq!(usart.violations.borrow().len(), 2, "{:?}", usart.violations.borrow());
    }

    #[test]
    fn sixteen_bytes_typed_while_the_kernel_is_busy_are_all_received() {
        let usart = UsartModel::default();
        init_registers(&usart, 868, StopBits::One);
        // A mount runs: 16 keystrokes arrive before the interrupt's bottom half reads any.
        for b in b"format\rget key\r!" {
            usart.arrive(*b);
        }
        assert_eq!(*usart.overruns.borrow(), 0);
        let mut buf = [0u8; 16];
        assert_eq!(receive_from_fifo(&usart, &mut buf, 0, 16), 16);
        assert_eq!(&buf, b"format\rget key\r!");
    }

    #[test]
    fn bytes_beyond_the_request_stay_in_the_fifo_for_the_next_receive() {
        let usart = UsartModel::default();
        init_registers(&usart, 868, StopBits::One);
        for b in b"abcde" {
            usart.arrive(*b);
        }
        let mut buf = [0u8; 4];
        assert_eq!(receive_from_fifo(&usart, &mut buf, 1, 3), 3);
        assert_eq!(&buf[1..3], b"ab");
        let mut next = [0u8; 8];
        assert_eq!(receive_from_fifo(&usart, &mut next, 0, 8), 3, "stops when the FIFO is empty");
        assert_eq!(&next[..3], b"cde");
    }

    #[test]
    fn without_the_fifo_the_second_byte_overruns() {
        // What the FIFO fixes: with FIFOEN clear the model keeps one byte.
        let usart = UsartModel::default();
        usart.write(UsartReg::Cr1, cr1::TE | cr1::RE);
        usart.write(UsartReg::Cr1, cr1::TE | cr1::RE | cr1::UE);
        usart.arrive(b'a');
        usart.arrive(b'b');
        assert_eq!(*usart.overruns.borrow(), 1);
    }
}
