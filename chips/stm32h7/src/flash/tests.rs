// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host tests: the FLASH driver against the register-level model.
//!
//! ```text
//! tests (this file) -> flash::Flash -> FlashRegisters = model::FlashModel
//! ```

use core::cell::{Cell, RefCell};

use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{NorFlash, NorFlashClient};

use super::model::{FlashModel, WordState};
use super::options::StoreRefusal;
use super::regs::{cr, sr, Bank, BANK2_BASE, SECTOR_SIZE};
use super::{DeferredSignal, Flash, FlashError, FlashRegion, RegionError};

/// Deferred calls in tests: a flag the test services by calling `handle_deferred`.
#[derive(Default)]
pub(super) struct TestDeferred(Cell<bool>);

impl DeferredSignal for TestDeferred {
    fn set(&self) {
        self.0.set(true);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    Read(Vec<u8>, Result<(), ErrorCode>),
    Program(usize, Result<(), ErrorCode>),
    Erase(Result<(), ErrorCode>),
}

#[derive(Default)]
pub(super) struct Recorder {
    events: RefCell<Vec<Event>>,
    /// The buffer of the last read or program completion, as it came back.
    returned: RefCell<Option<SubSliceMut<'static, u8>>>,
}

impl NorFlashClient for Recorder {
    fn read_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
        self.events.borrow_mut().push(Event::Read(buffer.as_slice().to_vec(), result));
        *self.returned.borrow_mut() = Some(buffer);
    }
    fn program_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
        self.events.borrow_mut().push(Event::Program(buffer.len(), result));
        *self.returned.borrow_mut() = Some(buffer);
    }
    fn erase_complete(&self, result: Result<(), ErrorCode>) {
        self.events.borrow_mut().push(Event::Erase(result));
    }
}

impl Recorder {
    pub(super) fn take(&self) -> Vec<Event> {
        core::mem::take(&mut *self.events.borrow_mut())
    }

    /// The buffer the last read or program completion gave back.
    pub(super) fn take_buffer(&self) -> Option<SubSliceMut<'static, u8>> {
        self.returned.borrow_mut().take()
    }
}

pub(super) type TestFlash = Flash<'static, &'static FlashModel, TestDeferred>;

pub(super) struct Rig {
    pub(super) model: &'static FlashModel,
    pub(super) flash: &'static TestFlash,
    pub(super) client: &'static Recorder,
}

/// The Portenta set-up: the region is bank 2 (8 sectors).
pub(super) const REGION_BASE: u32 = BANK2_BASE;
pub(super) const REGION_SIZE: u32 = 8 * SECTOR_SIZE;

pub(super) fn rig_with(base: u32, size: u32) -> Rig {
    let model: &'static FlashModel = Box::leak(Box::new(FlashModel::new()));
    let region = FlashRegion::new(base, size).unwrap();
    let flash: &'static TestFlash =
        Box::leak(Box::new(Flash::with_deferred(model, region, TestDeferred::default())));
    let client: &'static Recorder = Box::leak(Box::default());
    flash.set_client(client);
    Rig { model, flash, client }
}

pub(super) fn rig() -> Rig {
    rig_with(REGION_BASE, REGION_SIZE)
}

/// A leaked buffer holding `bytes`, lent whole.
fn buf(bytes: &[u8]) -> SubSliceMut<'static, u8> {
    SubSliceMut::new(Box::leak(bytes.to_vec().into_boxed_slice()))
}

/// A leaked buffer holding `bytes`, lent with the window `range`.
fn window(bytes: &[u8], range: core::ops::Range<usize>) -> SubSliceMut<'static, u8> {
    let mut b = buf(bytes);
    b.slice(range);
    b
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
}

impl Rig {
    /// Runs the deferred call if one is pending.
    pub(super) fn service_deferred(&self) {
        if self.flash.deferred.0.replace(false) {
            self.flash.handle_deferred();
        }
    }

    /// Lets the hardware finish one operation in `bank` and delivers the interrupt.
    pub(super) fn finish(&self, bank: Bank) {
        self.model.complete(bank);
        assert!(self.model.irq_pending(bank), "the completion must raise the FLASH interrupt");
        self.flash.handle_interrupt();
    }

    pub(super) fn program(&self, addr: u32, data: &[u8]) -> Result<(), ErrorCode> {
        let bank = Bank::of(REGION_BASE + addr);
        self.flash.program(addr, buf(data)).map_err(|(e, _)| e)?;
        for _ in 0..data.len() / 32 {
            self.finish(bank);
        }
        match self.client.take().as_slice() {
            [Event::Program(_, r)] => *r,
            other => panic!("expected one program completion, got {other:?}"),
        }
    }

    pub(super) fn read(&self, addr: u32, len: usize) -> Result<Vec<u8>, ErrorCode> {
        self.flash.read(addr, buf(&vec![0; len])).map_err(|(e, _)| e)?;
        assert!(self.client.take().is_empty(), "no synchronous callback (TRD3)");
        self.service_deferred();
        match self.client.take().pop() {
            Some(Event::Read(data, Ok(()))) => Ok(data[..len].to_vec()),
            Some(Event::Read(_, Err(e))) => Err(e),
            other => panic!("expected a read completion, got {other:?}"),
        }
    }

    pub(super) fn erase(&self, addr: u32) -> Result<(), ErrorCode> {
        self.flash.erase(addr)?;
        self.finish(Bank::of(REGION_BASE + addr));
        match self.client.take().as_slice() {
            [Event::Erase(r)] => *r,
            other => panic!("expected one erase completion, got {other:?}"),
        }
    }

    /// After every operation: both banks locked, no operation bits or enables left in CR,
    /// no flags left in SR.
    pub(super) fn assert_quiescent(&self) {
        for bank in [Bank::One, Bank::Two] {
            assert!(self.model.is_locked(bank), "{bank:?} must be locked again");
            assert!(!self.model.is_hard_locked(bank), "{bank:?} key sequence went wrong");
            let c = self.model.cr(bank);
            assert_eq!(c & (cr::PG | cr::SER | cr::START | cr::OP_IRQS), 0, "CR left with {c:#x}");
            assert_eq!(self.model.sr_flags(bank), 0, "SR flags left uncleared");
        }
        assert_eq!(self.model.locked_writes(), 0, "the driver wrote a locked CR");
    }
}

#[test]
fn program_a_word_then_read_it_back() {
    let r = rig();
    let data = pattern(32, 1);
    assert_eq!(r.program(0x40, &data), Ok(()));
    assert_eq!(r.model.bytes(REGION_BASE + 0x40, 32), data);
    assert_eq!(r.model.word_state(REGION_BASE + 0x40), WordState::Programmed);
    assert_eq!(r.read(0x40, 32), Ok(data.clone()));
    // Unaligned reads are fine: read size 1.
    assert_eq!(r.read(0x43, 5), Ok(data[3..8].to_vec()));
    r.assert_quiescent();
}

#[test]
fn program_several_words_one_interrupt_each() {
    let r = rig();
    let data = pattern(4 * 32, 9);
    r.flash.program(0x1000, buf(&data)).unwrap();
    for i in 0..4 {
        // While a word is in flight the bank is unlocked with PG and the interrupts set ...
        assert!(!r.model.is_locked(Bank::Two));
        assert_ne!(r.model.cr(Bank::Two) & cr::PG, 0);
        assert_eq!(r.model.cr(Bank::Two) & cr::OP_IRQS, cr::OP_IRQS);
        r.finish(Bank::Two);
        // ... and after each word's EOP it is locked again before the next starts.
        if i < 3 {
            assert!(r.client.take().is_empty());
        }
    }
    assert_eq!(r.client.take(), vec![Event::Program(128, Ok(()))]);
    assert_eq!(r.model.lock_count(Bank::Two), 4, "one unlock/lock bracket per word");
    assert_eq!(r.model.bytes(REGION_BASE + 0x1000, 128), data);
    let inval = r.model.dcache_invalidations();
    assert_eq!(inval.len(), 4);
    assert_eq!(inval[0], (REGION_BASE + 0x1000, 32));
    assert_eq!(inval[3], (REGION_BASE + 0x1060, 32));
    r.assert_quiescent();
}

#[test]
fn double_program_is_refused_before_the_hardware() {
    let r = rig();
    assert_eq!(r.program(0, &pattern(32, 2)), Ok(()));
    let writes = r.model.hardware_writes();
    assert_eq!(r.program(0, &pattern(32, 3)), Err(ErrorCode::RESERVE));
    assert_eq!(r.flash.last_error(), Some(FlashError::NotErased));
    assert_eq!(r.model.double_programs(), 0);
    assert_eq!(r.model.word_state(REGION_BASE), WordState::Programmed);
    // Only the blank check's flag clearing touched registers; no store, no unlock.
    assert!(r.model.hardware_writes() - writes <= 1);
    r.assert_quiescent();
}

#[test]
fn not_erased_word_inside_a_multi_word_program_stops_it() {
    let r = rig();
    assert_eq!(r.program(0x20, &pattern(32, 4)), Ok(()));
    // Words 0x00 and 0x20: the second is already programmed.
    r.flash.program(0, buf(&pattern(64, 5))).unwrap();
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(64, Err(ErrorCode::RESERVE))]);
    assert_eq!(r.model.double_programs(), 0);
    r.assert_quiescent();
}

#[test]
fn the_model_flags_a_double_program_and_the_read_reports_it() {
    // Bypass the driver's blank check: program the same word twice at register level.
    let r = rig();
    let m = r.model;
    let word = REGION_BASE + 0x200;
    for v in [0x1234_5678u32, 0x0F0F_0F0F] {
        use super::regs::{FlashRegisters, Reg, KEY1, KEY2};
        m.write(Bank::Two, Reg::Keyr, KEY1);
        m.write(Bank::Two, Reg::Keyr, KEY2);
        m.write(Bank::Two, Reg::Cr, cr::PG | cr::PSIZE_X32 | cr::EOPIE);
        m.barrier();
        for i in 0..8 {
            m.store_word(word + 4 * i, v);
        }
        m.complete(Bank::Two);
        m.write(Bank::Two, Reg::Ccr, sr::CLEARABLE);
        m.write(Bank::Two, Reg::Cr, cr::LOCK);
    }
    assert_eq!(m.double_programs(), 1);
    assert_eq!(m.word_state(word), WordState::EccBad);
    assert_eq!(r.read(0x200, 32), Err(ErrorCode::FAIL));
    assert_eq!(r.flash.last_error(), Some(FlashError::EccDoubleBit { addr: word }));
    // A neighbouring word still reads.
    assert_eq!(r.read(0x220, 32), Ok(vec![0xFF; 32]));
    r.assert_quiescent();
}

#[test]
fn requests_outside_the_region_are_refused_without_touching_hardware() {
    let r = rig();
    let size = REGION_SIZE;
    let cases: [(u32, usize); 4] = [(size, 32), (size - 32, 64), (u32::MAX - 31, 32), (size + 0x1000, 32)];
    for (addr, len) in cases {
        let e = r.flash.program(addr, buf(&vec![0; len])).map_err(|(e, _)| e);
        assert_eq!(e, Err(ErrorCode::INVAL), "program at {addr:#x}+{len}");
        let e = r.flash.read(addr, buf(&vec![0; len])).map_err(|(e, _)| e);
        assert_eq!(e, Err(ErrorCode::INVAL), "read at {addr:#x}+{len}");
    }
    assert_eq!(r.flash.erase(size), Err(ErrorCode::INVAL));
    assert_eq!(r.flash.erase(u32::MAX - SECTOR_SIZE + 1), Err(ErrorCode::INVAL));
    assert_eq!(r.flash.last_error(), Some(FlashError::OutOfRegion));
    assert_eq!(r.model.hardware_writes(), 0);
    assert!(r.client.take().is_empty());
    r.assert_quiescent();
}

#[test]
fn bank1_below_the_region_is_unreachable() {
    // A region at the start of bank 2 cannot address bank 1 (bootloader, kernel, apps): the
    // only addresses are offsets 0..size, mapped to 0x0810_0000 and up.
    let r = rig();
    assert_eq!(r.program(0, &pattern(32, 6)), Ok(()));
    assert_eq!(r.model.word_state(REGION_BASE), WordState::Programmed);
    assert_eq!(r.model.word_state(REGION_BASE - 32), WordState::Erased);
    assert!(r.model.is_locked(Bank::One));
    assert_eq!(r.model.cr(Bank::One), cr::LOCK);
}

#[test]
fn unaligned_requests_are_refused() {
    let r = rig();
    for (addr, len) in [(16u32, 32usize), (0, 48), (4, 4), (1, 32)] {
        // The window's offset in its buffer does not matter; its length is the request's.
        let e = r.flash.program(addr, window(&[0; 64], 3..3 + len)).map_err(|(e, _)| e);
        assert_eq!(e, Err(ErrorCode::INVAL), "program {addr}+{len}");
    }
    for addr in [4096u32, 1, SECTOR_SIZE / 2] {
        assert_eq!(r.flash.erase(addr), Err(ErrorCode::INVAL), "erase {addr}");
    }
    assert_eq!(r.model.hardware_writes(), 0);
}

#[test]
fn a_refused_request_gives_the_buffer_back_with_its_window() {
    let r = rig();
    let bytes = pattern(96, 1);
    // INVAL (outside the region), for both operations.
    let (e, b) = r.flash.program(REGION_SIZE, window(&bytes, 5..37)).unwrap_err();
    assert_eq!((e, b.active_range()), (ErrorCode::INVAL, 5..37));
    assert_eq!(b.take(), &bytes[..]);
    let (e, b) = r.flash.read(REGION_SIZE - 4, window(&bytes, 9..17)).unwrap_err();
    assert_eq!((e, b.active_range()), (ErrorCode::INVAL, 9..17));
    assert_eq!(b.take(), &bytes[..], "a refused read writes nothing");
    // BUSY.
    r.flash.program(0, buf(&pattern(32, 2))).unwrap();
    let (e, b) = r.flash.program(0x40, window(&bytes, 32..64)).unwrap_err();
    assert_eq!((e, b.active_range()), (ErrorCode::BUSY, 32..64));
    let (e, b) = r.flash.read(0x40, window(&bytes, 1..2)).unwrap_err();
    assert_eq!((e, b.active_range()), (ErrorCode::BUSY, 1..2));
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(32, Ok(()))]);
    // RESERVE from the blank check, before the hardware.
    let (e, b) = r.flash.program(0, window(&bytes, 40..72)).unwrap_err();
    assert_eq!((e, b.active_range()), (ErrorCode::RESERVE, 40..72));
    r.assert_quiescent();
}

#[test]
fn program_from_a_window_at_an_offset() {
    let r = rig();
    let bytes = pattern(100, 3);
    // Two words from bytes[5..69]: the second word is fetched from the window too.
    r.flash.program(0x80, window(&bytes, 5..69)).unwrap();
    r.finish(Bank::Two);
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(64, Ok(()))]);
    assert_eq!(r.model.bytes(REGION_BASE + 0x80, 64), bytes[5..69].to_vec());
    let back = r.client.take_buffer().expect("the buffer comes back");
    assert_eq!(back.active_range(), 5..69, "same window as lent");
    assert_eq!(back.take(), &bytes[..], "programming does not write the buffer");
    // An empty window completes through the deferred call, window unchanged.
    r.flash.program(0x100, window(&bytes, 50..50)).unwrap();
    r.service_deferred();
    assert_eq!(r.client.take(), vec![Event::Program(0, Ok(()))]);
    assert_eq!(r.client.take_buffer().unwrap().active_range(), 50..50);
    // A failure mid-way (second word not erased) gives the same window back too.
    r.flash.program(0x60, window(&bytes, 7..71)).unwrap();
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(64, Err(ErrorCode::RESERVE))]);
    assert_eq!(r.client.take_buffer().unwrap().active_range(), 7..71);
    r.assert_quiescent();
}

#[test]
fn read_into_a_window_at_an_offset() {
    let r = rig();
    let data = pattern(64, 4);
    assert_eq!(r.program(0x200, &data), Ok(()));
    r.flash.read(0x203, window(&[0xAA; 50], 7..37)).unwrap();
    assert!(r.client.take().is_empty(), "no synchronous callback (TRD3)");
    r.service_deferred();
    assert_eq!(r.client.take(), vec![Event::Read(data[3..33].to_vec(), Ok(()))]);
    let back = r.client.take_buffer().expect("the buffer comes back");
    assert_eq!(back.active_range(), 7..37, "same window as lent");
    let all = back.take();
    assert_eq!(&all[7..37], &data[3..33]);
    assert!(all[..7].iter().chain(&all[37..]).all(|b| *b == 0xAA), "only the window is written");
    // An ECC failure still gives the buffer back with its window.
    r.model.corrupt_word(REGION_BASE + 0x220);
    r.flash.read(0x200, window(&[0; 80], 16..80)).unwrap();
    r.service_deferred();
    assert!(matches!(r.client.take().as_slice(), [Event::Read(_, Err(ErrorCode::FAIL))]));
    assert_eq!(r.client.take_buffer().unwrap().active_range(), 16..80);
    r.assert_quiescent();
}

#[test]
fn erase_a_sector() {
    let r = rig();
    let sector1 = SECTOR_SIZE;
    assert_eq!(r.program(sector1 + 0x40, &pattern(32, 7)), Ok(()));
    assert_eq!(r.program(0, &pattern(32, 8)), Ok(()));
    r.flash.erase(sector1).unwrap();
    // SER with SNB = sector 1 of bank 2, START, the interrupts, unlocked while running.
    let c = r.model.cr(Bank::Two);
    assert_eq!(c & (cr::SER | cr::START | cr::PG), cr::SER | cr::START);
    assert_eq!((c & cr::SNB_MASK) >> cr::SNB_SHIFT, 1);
    assert_eq!(c & cr::OP_IRQS, cr::OP_IRQS);
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Erase(Ok(()))]);
    assert_eq!(r.model.bytes(REGION_BASE + sector1 + 0x40, 32), vec![0xFF; 32]);
    assert_eq!(r.model.word_state(REGION_BASE + sector1 + 0x40), WordState::Erased);
    // Sector 0 untouched.
    assert_eq!(r.model.word_state(REGION_BASE), WordState::Programmed);
    assert_eq!(r.model.dcache_invalidations().last(), Some(&(REGION_BASE + sector1, SECTOR_SIZE)));
    // Programmable again.
    assert_eq!(r.program(sector1 + 0x40, &pattern(32, 9)), Ok(()));
    r.assert_quiescent();
}

#[test]
fn last_sector_of_bank_2_has_snb_7() {
    let r = rig();
    r.flash.erase(7 * SECTOR_SIZE).unwrap();
    assert_eq!((r.model.cr(Bank::Two) & cr::SNB_MASK) >> cr::SNB_SHIFT, 7);
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Erase(Ok(()))]);
    r.assert_quiescent();
}

#[test]
fn write_error_flags_map_to_errors_and_are_cleared() {
    let cases = [
        (sr::WRPERR, FlashError::WriteProtection, ErrorCode::RESERVE),
        (sr::PGSERR, FlashError::ProgramSequence, ErrorCode::FAIL),
        (sr::STRBERR, FlashError::Strobe, ErrorCode::FAIL),
        (sr::INCERR, FlashError::Inconsistency, ErrorCode::FAIL),
        (sr::OPERR, FlashError::Operation, ErrorCode::FAIL),
    ];
    for (flag, internal, code) in cases {
        // Program.
        let r = rig();
        r.model.fail_next(Bank::Two, flag);
        assert_eq!(r.program(0, &pattern(32, 1)), Err(code), "program with {flag:#x}");
        assert_eq!(r.flash.last_error(), Some(internal));
        r.assert_quiescent();
        // The driver is usable again.
        assert_eq!(r.program(0x20, &pattern(32, 2)), Ok(()));
        // Erase.
        let r = rig();
        r.model.fail_next(Bank::Two, flag);
        assert_eq!(r.erase(0), Err(code), "erase with {flag:#x}");
        assert_eq!(r.flash.last_error(), Some(internal));
        r.assert_quiescent();
    }
}

#[test]
fn write_protected_sector_raises_wrperr() {
    let r = rig();
    r.model.write_protect(Bank::Two, 2);
    assert_eq!(r.erase(2 * SECTOR_SIZE), Err(ErrorCode::RESERVE));
    assert_eq!(r.flash.last_error(), Some(FlashError::WriteProtection));
    r.assert_quiescent();
    // Programming a protected sector: the store is refused at once, the interrupt follows.
    r.flash.program(2 * SECTOR_SIZE, buf(&pattern(32, 1))).unwrap();
    assert!(r.model.irq_pending(Bank::Two));
    r.flash.handle_interrupt();
    assert_eq!(r.client.take(), vec![Event::Program(32, Err(ErrorCode::RESERVE))]);
    r.assert_quiescent();
}

#[test]
fn double_ecc_error_on_read_is_an_error_result_and_cleared() {
    let r = rig();
    assert_eq!(r.program(0x100, &pattern(64, 3)), Ok(()));
    r.model.corrupt_word(REGION_BASE + 0x120);
    assert_eq!(r.read(0x100, 64), Err(ErrorCode::FAIL));
    assert_eq!(r.flash.last_error(), Some(FlashError::EccDoubleBit { addr: REGION_BASE + 0x120 }));
    assert_eq!(r.model.dcache_invalidations().last(), Some(&(REGION_BASE + 0x100, 64)));
    r.assert_quiescent();
    // The good word before it still reads, and a later read is not blamed for the old error.
    assert_eq!(r.read(0x100, 32), Ok(pattern(64, 3)[..32].to_vec()));
}

#[test]
fn single_ecc_error_is_corrected_and_counted() {
    let r = rig();
    assert_eq!(r.program(0, &pattern(32, 4)), Ok(()));
    r.model.single_bit_word(REGION_BASE);
    assert_eq!(r.read(0, 32), Ok(pattern(32, 4)));
    assert_eq!(r.flash.corrected_ecc_errors(), 1);
    r.assert_quiescent();
}

#[test]
fn busy_while_an_operation_is_in_flight() {
    let r = rig();
    r.flash.program(0, buf(&pattern(32, 5))).unwrap();
    let writes = r.model.hardware_writes();
    let e = r.flash.program(0x40, buf(&[0; 32])).map_err(|(e, _)| e);
    assert_eq!(e, Err(ErrorCode::BUSY));
    let e = r.flash.read(0x40, buf(&[0; 32])).map_err(|(e, _)| e);
    assert_eq!(e, Err(ErrorCode::BUSY));
    assert_eq!(r.flash.erase(SECTOR_SIZE), Err(ErrorCode::BUSY));
    assert_eq!(r.flash.last_error(), Some(FlashError::Busy));
    assert_eq!(r.model.hardware_writes(), writes, "a refused request must change nothing");
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(32, Ok(()))]);
    // A read pending its deferred call also makes the driver busy.
    r.flash.read(0, buf(&[0; 4])).unwrap();
    assert_eq!(r.flash.erase(0), Err(ErrorCode::BUSY));
    r.service_deferred();
    assert_eq!(r.client.take().len(), 1);
    r.assert_quiescent();
}

#[test]
fn busy_when_the_controller_is_occupied() {
    let r = rig();
    r.model.occupy(Bank::Two);
    let e = r.flash.program(0, buf(&[0; 32])).map_err(|(e, _)| e);
    assert_eq!(e, Err(ErrorCode::BUSY));
    assert_eq!(r.flash.erase(0), Err(ErrorCode::BUSY));
    assert_eq!(r.model.hardware_writes(), 0);
}

#[test]
fn spurious_interrupts_are_harmless() {
    let r = rig();
    r.flash.handle_interrupt();
    assert!(r.client.take().is_empty());
    // During a program, an interrupt before the word is done changes nothing.
    r.flash.program(0, buf(&pattern(32, 6))).unwrap();
    r.flash.handle_interrupt();
    assert!(r.client.take().is_empty());
    assert!(!r.model.is_locked(Bank::Two));
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(32, Ok(()))]);
    r.assert_quiescent();
}

#[test]
fn zero_length_operations_complete_through_the_deferred_call() {
    let r = rig();
    r.flash.program(0, buf(&[])).unwrap();
    assert!(r.client.take().is_empty());
    r.service_deferred();
    assert_eq!(r.client.take(), vec![Event::Program(0, Ok(()))]);
    assert_eq!(r.read(0, 0), Ok(vec![]));
    assert_eq!(r.model.hardware_writes(), 0);
}

#[test]
fn region_spanning_both_banks() {
    // Last sector of bank 1 and first of bank 2 (a board could configure this).
    let base = BANK2_BASE - SECTOR_SIZE;
    let r = rig_with(base, 2 * SECTOR_SIZE);
    let data = pattern(64, 7);
    // Word in bank 1, then word in bank 2.
    r.flash.program(SECTOR_SIZE - 32, buf(&data)).unwrap();
    r.finish(Bank::One);
    r.finish(Bank::Two);
    assert_eq!(r.client.take(), vec![Event::Program(64, Ok(()))]);
    assert_eq!(r.read(SECTOR_SIZE - 32, 64), Ok(data));
    r.flash.erase(0).unwrap();
    assert_eq!((r.model.cr(Bank::One) & cr::SNB_MASK) >> cr::SNB_SHIFT, 7);
    r.finish(Bank::One);
    assert_eq!(r.client.take(), vec![Event::Erase(Ok(()))]);
    r.assert_quiescent();
}

#[test]
fn geometry_is_mbed_flashiap() {
    let r = rig();
    let g = r.flash.geometry();
    assert_eq!(
        (g.size, g.read_size, g.program_size, g.erase_size, g.erase_value),
        (REGION_SIZE, 1, 32, 131072, 0xFF)
    );
}

#[test]
fn regions_must_be_whole_sectors_inside_the_array() {
    assert_eq!(FlashRegion::new(BANK2_BASE, 0), Err(RegionError::Empty));
    assert_eq!(FlashRegion::new(BANK2_BASE + 32, SECTOR_SIZE), Err(RegionError::Unaligned));
    assert_eq!(FlashRegion::new(BANK2_BASE, 1000), Err(RegionError::Unaligned));
    assert_eq!(FlashRegion::new(BANK2_BASE, 9 * SECTOR_SIZE), Err(RegionError::OutsideArray));
    assert_eq!(FlashRegion::new(0x0000_0000, SECTOR_SIZE), Err(RegionError::OutsideArray));
    assert_eq!(FlashRegion::new(u32::MAX - SECTOR_SIZE + 1, 2 * SECTOR_SIZE), Err(RegionError::OutsideArray));
    let r = FlashRegion::new(BANK2_BASE, 8 * SECTOR_SIZE).unwrap();
    assert!(!r.overlaps(0x0800_0000, 0x0810_0000));
    assert!(r.overlaps(0x081F_0000, 0x0820_0000));
}

#[test]
fn the_model_enforces_the_sequence() {
    use super::regs::{FlashRegisters, Reg, KEY1, KEY2};
    // Stores without PG, or before the barrier that follows PG: PGSERR.
    let m = FlashModel::new();
    m.store_word(BANK2_BASE, 0);
    assert_ne!(m.sr_flags(Bank::Two) & sr::PGSERR, 0);
    let m = FlashModel::new();
    m.write(Bank::Two, Reg::Keyr, KEY1);
    m.write(Bank::Two, Reg::Keyr, KEY2);
    m.write(Bank::Two, Reg::Cr, cr::PG);
    m.store_word(BANK2_BASE, 0);
    assert_ne!(m.sr_flags(Bank::Two) & sr::PGSERR, 0, "missing barrier");
    // Two words in one buffer: INCERR; the same slot twice: STRBERR.
    m.write(Bank::Two, Reg::Ccr, sr::CLEARABLE);
    m.barrier();
    m.store_word(BANK2_BASE, 0);
    m.store_word(BANK2_BASE + 32, 0);
    assert_ne!(m.sr_flags(Bank::Two) & sr::INCERR, 0);
    m.store_word(BANK2_BASE, 0);
    m.store_word(BANK2_BASE, 0);
    assert_ne!(m.sr_flags(Bank::Two) & sr::STRBERR, 0);
    // A wrong key locks until reset.
    let m = FlashModel::new();
    m.write(Bank::One, Reg::Keyr, KEY2);
    m.write(Bank::One, Reg::Keyr, KEY1);
    m.write(Bank::One, Reg::Keyr, KEY2);
    assert!(m.is_hard_locked(Bank::One));
    assert!(m.is_locked(Bank::One));
}

#[test]
fn a_wrong_unlock_is_reported_as_locked() {
    use super::regs::{FlashRegisters, Reg};
    let r = rig();
    r.model.write(Bank::Two, Reg::Keyr, 0xDEAD_BEEF); // something else broke the sequence
    let e = r.flash.program(0, buf(&[0; 32])).map_err(|(e, _)| e);
    assert_eq!(e, Err(ErrorCode::FAIL));
    assert_eq!(r.flash.last_error(), Some(FlashError::Locked));
    assert_eq!(r.model.word_state(REGION_BASE), WordState::Erased);
}

/// A rig whose part has these option bytes in effect when the driver is created.
fn rig_with_options(swap_bank: bool, bcm4: bool, boot4_cur: u32) -> Rig {
    let model: &'static FlashModel = Box::leak(Box::new(FlashModel::new()));
    model.set_option_bytes(swap_bank, bcm4, boot4_cur);
    let region = FlashRegion::new(REGION_BASE, REGION_SIZE).unwrap();
    let flash: &'static TestFlash =
        Box::leak(Box::new(Flash::with_deferred(model, region, TestDeferred::default())));
    let client: &'static Recorder = Box::leak(Box::default());
    flash.set_client(client);
    Rig { model, flash, client }
}

/// Every operation is refused with NODEVICE, the buffers come back, nothing reaches the
/// hardware and no callback follows.
fn assert_everything_refused(r: &Rig, why: StoreRefusal) {
    assert_eq!(r.flash.refusal(), Some(why));
    let writes = r.model.hardware_writes();
    let (e, b) = r.flash.read(0, buf(&[7; 16])).unwrap_err();
    assert_eq!((e, b.as_slice()), (ErrorCode::NODEVICE, &[7u8; 16][..]));
    let (e, b) = r.flash.program(0, buf(&pattern(32, 1))).unwrap_err();
    assert_eq!((e, b.len()), (ErrorCode::NODEVICE, 32));
    assert_eq!(r.flash.erase(0), Err(ErrorCode::NODEVICE));
    assert_eq!(r.flash.last_error(), Some(FlashError::Refused(why)));
    r.service_deferred();
    assert!(r.client.take().is_empty());
    assert_eq!(r.model.hardware_writes(), writes, "no flash operation at all");
    assert_eq!(r.model.word_state(REGION_BASE), WordState::Erased);
}

#[test]
fn factory_option_bytes_with_the_m4_off_leave_the_store_alone() {
    // BCM4 clear (Arduino's core clears it), ADD0 still the factory 0x0810_0000.
    let r = rig_with_options(false, false, 0x1FF0_0810);
    let o = r.flash.option_bytes();
    assert_eq!((o.swap_bank, o.bcm4, o.cm4_boot0, o.cm4_boot1), (false, false, 0x0810_0000, 0x1FF0_0000));
    assert_eq!(r.flash.refusal(), None);
    assert_eq!(r.erase(0), Ok(()));
    assert_eq!(r.program(0, &pattern(32, 2)), Ok(()));
    assert_eq!(r.model.option_writes(), 0, "the driver never writes an option register");
}

#[test]
fn an_m4_that_boots_from_the_region_refuses_every_operation() {
    // Factory boot address (ADD0 = 0x0810) with BCM4 set: the M4 runs bank 2.
    let r = rig_with_options(false, true, 0x1FF0_0810);
    assert_everything_refused(&r, StoreRefusal::Cm4BootsInRegion { address: 0x0810_0000 });
    // Through ADD1 (boot pin high) too: the pin cannot be read, so both count.
    let r = rig_with_options(false, true, 0x0814_0800);
    assert_everything_refused(&r, StoreRefusal::Cm4BootsInRegion { address: 0x0814_0000 });
}

#[test]
fn an_m4_that_boots_elsewhere_leaves_the_store_alone() {
    // BCM4 set, both boot addresses outside bank 2 (system memory, bank 1's app area).
    let r = rig_with_options(false, true, 0x1FF0_080C);
    assert_eq!(r.flash.refusal(), None);
    assert_eq!(r.erase(SECTOR_SIZE), Ok(()));
}

#[test]
fn swapped_banks_refuse_every_operation() {
    // SWAP_BANK: 0x0810_0000 is physical bank 1, the bootloader's; CR2 would erase bank 2,
    // which is now mapped at 0x0800_0000 with the bootloader and kernel.
    let r = rig_with_options(true, false, 0x1FF0_0810);
    assert_everything_refused(&r, StoreRefusal::BankSwap);
    // The swap is reported first even when the M4 would also boot there.
    let r = rig_with_options(true, true, 0x1FF0_0810);
    assert_eq!(r.flash.refusal(), Some(StoreRefusal::BankSwap));
}

#[test]
fn refusals_explain_the_fix() {
    assert!(StoreRefusal::BankSwap.explanation().contains("SWAP_BANK"));
    assert!(StoreRefusal::Cm4BootsInRegion { address: 0x0810_0000 }.explanation().contains("BCM4"));
    assert_eq!(FlashError::Refused(StoreRefusal::BankSwap).to_error_code(), ErrorCode::NODEVICE);
}
