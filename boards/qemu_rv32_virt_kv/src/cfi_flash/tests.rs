// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host tests of the CFI driver against a model of QEMU's `pflash_cfi01` bank: two x16
//! parts, each with its own command state machine and status register, fed the two halves
//! of every 32-bit write.
//!
//! The model is stricter than QEMU where QEMU is lenient: a command must reach both parts, an
//! unknown command or a misaligned or out-of-region access fails the test. Like QEMU, a
//! program overwrites (it does not AND) and status bits are sticky until 0x50.

use super::*;
use std::cell::{Cell, RefCell};

const READY: u16 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    ReadArray,
    Status,
    ProgramSetup,
    EraseSetup,
}

#[derive(Clone, Copy)]
struct Part {
    mode: Mode,
    status: u16,
}

/// Faults the model injects into the next program or erase.
#[derive(Default)]
struct Faults {
    program_error: Cell<bool>,
    erase_error: Cell<bool>,
    locked: Cell<bool>,
    never_ready: Cell<bool>,
}

struct Model {
    mem: RefCell<Vec<u8>>,
    parts: [Cell<Part>; 2],
    faults: Faults,
    programs: Cell<u32>,
    erases: Cell<u32>,
}

impl Model {
    fn new(blocks: u32) -> Self {
        Self {
            mem: RefCell::new(vec![0xFF; (blocks * BLOCK_SIZE) as usize]),
            parts: [const { Cell::new(Part { mode: Mode::ReadArray, status: 0 }) }; 2],
            faults: Faults::default(),
            programs: Cell::new(0),
            erases: Cell::new(0),
        }
    }

    fn check(&self, offset: u32) {
        assert_eq!(offset % 4, 0, "misaligned 32-bit access at {offset:#x}");
        assert!((offset as usize) < self.mem.borrow().len(), "access outside the region at {offset:#x}");
    }

    fn modes(&self) -> [Mode; 2] {
        [self.parts[0].get().mode, self.parts[1].get().mode]
    }

    /// One part's reaction to the 16-bit half of a write; `lane` is its byte offset in the word.
    fn part_write(&self, p: usize, offset: u32, half: u16) {
        let mut part = self.parts[p].get();
        let lane = offset as usize + 2 * p;
        let status_after = |error: u16| {
            if self.faults.never_ready.get() {
                error
            } else {
                READY | error
            }
        };
        match part.mode {
            Mode::ProgramSetup => {
                if self.faults.locked.get() {
                    part.status |= status_after(0x12);
                } else if self.faults.program_error.get() {
                    part.status |= status_after(0x10);
                } else {
                    // QEMU overwrites: no bit-clearing AND.
                    self.mem.borrow_mut()[lane..lane + 2].copy_from_slice(&half.to_le_bytes());
                    part.status |= status_after(0);
                }
                part.mode = Mode::Status;
            }
            Mode::EraseSetup => {
                assert_eq!(half, 0x00D0, "block erase not confirmed with 0xD0");
                if self.faults.locked.get() {
                    part.status |= status_after(0x22);
                } else if self.faults.erase_error.get() {
                    part.status |= status_after(0x20);
                } else {
                    let start = (offset & !(BLOCK_SIZE - 1)) as usize;
                    let mut mem = self.mem.borrow_mut();
                    for word in (start..start + BLOCK_SIZE as usize).step_by(4) {
                        mem[word + 2 * p] = 0xFF;
                        mem[word + 2 * p + 1] = 0xFF;
                    }
                    part.status |= status_after(0);
                }
                part.mode = Mode::Status;
            }
            Mode::ReadArray | Mode::Status => {
                assert_eq!(half >> 8, 0, "command {half:#06x} is not a command byte");
                match half as u8 {
                    0xFF => part.mode = Mode::ReadArray,
                    0x70 => part.mode = Mode::Status,
                    0x50 => {
                        part.status = 0;
                        part.mode = Mode::ReadArray;
                    }
                    0x40 => part.mode = Mode::ProgramSetup,
                    0x20 => part.mode = Mode::EraseSetup,
                    other => panic!("unexpected command {other:#04x}"),
                }
            }
        }
        self.parts[p].set(part);
    }
}

impl CfiBus for &Model {
    fn read32(&self, offset: u32) -> u32 {
        self.check(offset);
        let mem = self.mem.borrow();
        let o = offset as usize;
        let half = |p: usize| -> u16 {
            let part = self.parts[p].get();
            match part.mode {
                Mode::ReadArray => u16::from_le_bytes([mem[o + 2 * p], mem[o + 2 * p + 1]]),
                _ => part.status,
            }
        };
        u32::from(half(1)) << 16 | u32::from(half(0))
    }

    fn write32(&self, offset: u32, value: u32) {
        self.check(offset);
        let before = self.modes();
        self.part_write(0, offset, value as u16);
        self.part_write(1, offset, (value >> 16) as u16);
        let after = self.modes();
        assert_eq!(after[0], after[1], "the two parts diverged: {value:#010x} went to one part only");
        if before[0] == Mode::ProgramSetup {
            self.programs.set(self.programs.get() + 1);
        }
        if before[0] == Mode::EraseSetup {
            self.erases.set(self.erases.get() + 1);
        }
    }
}

fn region(model: &Model) -> CfiRegion<&Model> {
    CfiRegion::new(model, 2).expect("2 blocks is a valid region")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn geometry_and_region_validation() {
    let model = Model::new(2);
    let g = region(&model).geometry();
    assert_eq!(
        g,
        Geometry { size: 512 * 1024, read_size: 1, program_size: 32, erase_size: 262144, erase_value: 0xFF }
    );
    assert!(CfiRegion::new(&model, 0).is_none());
    assert!(CfiRegion::new(&model, 3).is_none(), "odd block count");
    assert!(CfiRegion::new(&model, 130).is_none(), "larger than the bank");
    assert!(CfiRegion::new(&model, u32::MAX).is_none(), "overflow");
    assert_eq!(CfiRegion::new(&model, 128).map(|r| r.geometry().size), Some(BANK_SIZE));
}

#[test]
fn reads_of_any_alignment() {
    let model = Model::new(2);
    let r = region(&model);
    let data = pattern(64, 7);
    r.program(64, &data).unwrap();
    let mut buf = [0u8; 64];
    r.read(64, &mut buf);
    assert_eq!(&buf[..], &data[..]);
    for (addr, len) in [(65u32, 7usize), (67, 1), (66, 30), (60, 12), (127, 3)] {
        let mut buf = vec![0u8; len];
        r.read(addr, &mut buf);
        let expect: Vec<u8> = (addr..addr + len as u32)
            .map(|a| if (64..128).contains(&a) { data[(a - 64) as usize] } else { 0xFF })
            .collect();
        assert_eq!(buf, expect, "read {addr}+{len}");
    }
}

#[test]
fn program_then_erase() {
    let model = Model::new(2);
    let r = region(&model);
    let data = pattern(96, 1);
    r.program(BLOCK_SIZE - 32, &data[..32]).unwrap();
    r.program(BLOCK_SIZE, &data[32..]).unwrap();
    assert_eq!(model.programs.get(), 96 / 4, "one word program per 32-bit word");
    let mut buf = vec![0u8; 96];
    r.read(BLOCK_SIZE - 32, &mut buf);
    assert_eq!(buf, data);
    r.erase(BLOCK_SIZE).unwrap();
    assert_eq!(model.erases.get(), 1);
    r.read(BLOCK_SIZE - 32, &mut buf);
    assert_eq!(&buf[..32], &data[..32], "the other block is untouched");
    assert!(buf[32..].iter().all(|&b| b == 0xFF));
    // Erased again, the unit programs again.
    r.program(BLOCK_SIZE, &data[32..64]).unwrap();
}

#[test]
fn refuses_to_program_a_unit_that_is_not_erased() {
    let model = Model::new(2);
    let r = region(&model);
    let first = pattern(32, 3);
    r.program(32, &first).unwrap();
    let programs = model.programs.get();
    // Same data, different data, all-0x00: each is a second program of unit 32..64.
    for data in [first.clone(), pattern(32, 9), vec![0; 32]] {
        assert_eq!(r.program(32, &data), Err(CfiError::NotErased));
    }
    // A range of an erased unit followed by the programmed one: nothing is programmed.
    assert_eq!(r.program(0, &pattern(64, 5)), Err(CfiError::NotErased));
    assert_eq!(model.programs.get(), programs, "no word was programmed");
    let mut buf = [0u8; 64];
    r.read(0, &mut buf);
    assert!(buf[..32].iter().all(|&b| b == 0xFF));
    assert_eq!(&buf[32..], &first[..]);
    // A single non-erased byte is enough to refuse.
    let mut torn = vec![0xFF; 32];
    torn[31] = 0x7F;
    r.program(96, &torn).unwrap();
    assert_eq!(r.program(96, &[0xFF; 32]), Err(CfiError::NotErased));
}

#[test]
fn status_errors_are_reported_and_leave_read_array_mode() {
    let model = Model::new(2);
    let r = region(&model);
    let data = pattern(32, 2);

    model.faults.program_error.set(true);
    assert_eq!(r.program(0, &data), Err(CfiError::ProgramFailed));
    model.faults.program_error.set(false);
    assert_eq!(model.modes(), [Mode::ReadArray; 2]);

    model.faults.locked.set(true);
    assert_eq!(r.program(0, &data), Err(CfiError::Locked));
    assert_eq!(r.erase(0), Err(CfiError::Locked));
    model.faults.locked.set(false);
    assert_eq!(model.modes(), [Mode::ReadArray; 2]);

    model.faults.erase_error.set(true);
    assert_eq!(r.erase(0), Err(CfiError::EraseFailed));
    model.faults.erase_error.set(false);

    model.faults.never_ready.set(true);
    assert_eq!(r.erase(0), Err(CfiError::Timeout));
    model.faults.never_ready.set(false);
    assert_eq!(model.modes(), [Mode::ReadArray; 2]);

    // Sticky errors were cleared: the next operations succeed.
    r.erase(0).unwrap();
    r.program(0, &data).unwrap();
    let mut buf = [0u8; 32];
    r.read(0, &mut buf);
    assert_eq!(&buf[..], &data[..]);
}

#[test]
fn error_code_mapping() {
    use kernel::ErrorCode::{FAIL, RESERVE};
    let table = [
        (CfiError::NotErased, RESERVE),
        (CfiError::Locked, RESERVE),
        (CfiError::ProgramFailed, FAIL),
        (CfiError::EraseFailed, FAIL),
        (CfiError::Voltage, FAIL),
        (CfiError::Timeout, FAIL),
        (CfiError::Verify, FAIL),
    ];
    for (e, code) in table {
        assert_eq!(e.to_error_code(), code, "{e:?}");
    }
}

/// The split-phase wrapper, in one test: deferred-call state binds to one thread.
mod split_phase {
    use super::*;
    use kernel::platform::chip::ThreadIdProvider;
    use kernel::utilities::cells::MapCell;

    struct TestThreads;
    // SAFETY: every thread gets its own id from a thread-local counter value.
    unsafe impl ThreadIdProvider for TestThreads {
        fn running_thread_id() -> usize {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(1);
            thread_local!(static ID: usize = NEXT.fetch_add(1, Ordering::Relaxed));
            ID.with(|id| *id)
        }
    }

    #[derive(Debug, PartialEq)]
    enum Event {
        Read(Vec<u8>, Result<(), ErrorCode>),
        Program(Result<(), ErrorCode>),
        Erase(Result<(), ErrorCode>),
    }

    struct Client {
        events: RefCell<Vec<Event>>,
        buffer: MapCell<SubSliceMut<'static, u8>>,
    }

    impl NorFlashClient for Client {
        fn read_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
            self.events.borrow_mut().push(Event::Read(buffer.as_slice().to_vec(), result));
            self.buffer.put(buffer);
        }
        fn program_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>) {
            self.events.borrow_mut().push(Event::Program(result));
            self.buffer.put(buffer);
        }
        fn erase_complete(&self, result: Result<(), ErrorCode>) {
            self.events.borrow_mut().push(Event::Erase(result));
        }
    }

    fn run_deferred() -> usize {
        let mut n = 0;
        while DeferredCall::service_next_pending().is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn callbacks_come_later_busy_and_inval() {
        kernel::deferred_call::initialize_deferred_call_state::<TestThreads>();
        let model: &'static Model = Box::leak(Box::new(Model::new(2)));
        let flash: &'static CfiFlash<'static, &'static Model> =
            Box::leak(Box::new(CfiFlash::new(CfiRegion::new(model, 2).unwrap())));
        flash.register();
        let client: &'static Client =
            Box::leak(Box::new(Client { events: RefCell::new(Vec::new()), buffer: MapCell::empty() }));
        flash.set_client(client);
        let mut buf = SubSliceMut::new(Box::leak(vec![0u8; 64].into_boxed_slice()));

        // Program from a window at an offset: no callback inside the call; BUSY until the
        // deferred call ran.
        buf.as_mut_slice()[16..48].copy_from_slice(&pattern(32, 4));
        buf.slice(16..48);
        assert!(flash.program(32, buf).is_ok());
        assert!(client.events.borrow().is_empty(), "callback inside the call");
        assert_eq!(flash.erase(0), Err(ErrorCode::BUSY));
        let other = SubSliceMut::new(Box::leak(vec![0u8; 8].into_boxed_slice()));
        let (e, other) = flash.read(0, other).unwrap_err();
        assert_eq!(e, ErrorCode::BUSY);
        assert_eq!(run_deferred(), 1);
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Program(Ok(()))));
        assert_eq!(model.mem.borrow()[32..64], pattern(32, 4)[..]);

        // Second program of the same unit: refused through the callback with RESERVE. The
        // buffer comes back with the window it was lent with.
        let buf = client.buffer.take().unwrap();
        assert_eq!(buf.active_range(), 16..48);
        assert!(flash.program(32, buf).is_ok());
        run_deferred();
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Program(Err(ErrorCode::RESERVE))));

        // Read back into a window: only the window is written.
        let mut buf = client.buffer.take().unwrap();
        assert_eq!(buf.active_range(), 16..48);
        buf.reset();
        buf.as_mut_slice().fill(0xAA);
        buf.slice(40..48);
        assert!(flash.read(32, buf).is_ok());
        run_deferred();
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Read(pattern(8, 4), Ok(()))));
        let mut buf = client.buffer.take().unwrap();
        assert_eq!(buf.active_range(), 40..48);
        buf.reset();
        assert!(buf[..40].iter().chain(&buf[48..]).all(|b| *b == 0xAA));

        // INVAL: outside the region, misaligned program, odd erase. The buffer comes back in
        // the error with its window.
        let size = flash.geometry().size;
        buf.slice(8..16);
        let (e, mut buf) = flash.read(size - 4, buf).unwrap_err();
        assert_eq!((e, buf.active_range()), (ErrorCode::INVAL, 8..16));
        buf.reset();
        buf.slice(0..32);
        let (e, mut buf) = flash.program(16, buf).unwrap_err();
        assert_eq!((e, buf.active_range()), (ErrorCode::INVAL, 0..32));
        buf.reset();
        buf.slice(4..28);
        let (e, mut buf) = flash.program(0, buf).unwrap_err();
        assert_eq!((e, buf.active_range()), (ErrorCode::INVAL, 4..28));
        let (e, _other) = flash.read(u32::MAX, other).unwrap_err();
        assert_eq!(e, ErrorCode::INVAL);
        assert_eq!(flash.erase(4096), Err(ErrorCode::INVAL));
        assert_eq!(flash.erase(size), Err(ErrorCode::INVAL));
        assert_eq!(run_deferred(), 0, "refused calls schedule nothing");
        buf.reset();
        buf.slice(16..48);

        // Erase, and the unit programs again.
        assert_eq!(flash.erase(0), Ok(()));
        run_deferred();
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Erase(Ok(()))));
        assert!(flash.program(32, buf).is_ok());
        run_deferred();
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Program(Ok(()))));

        // A device error reaches the callback as FAIL and the driver is usable afterwards.
        model.faults.erase_error.set(true);
        assert_eq!(flash.erase(BLOCK_SIZE), Ok(()));
        run_deferred();
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Erase(Err(ErrorCode::FAIL))));
        model.faults.erase_error.set(false);
        assert_eq!(flash.erase(BLOCK_SIZE), Ok(()));
        run_deferred();
        assert_eq!(client.events.borrow_mut().pop(), Some(Event::Erase(Ok(()))));
    }
}
