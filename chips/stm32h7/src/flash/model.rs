// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! A register-level model of the STM32H7 FLASH peripheral, for host tests of the driver.
//!
//! ```text
//! flash::Flash -> FlashRegisters
//!                     |
//!               FlashModel (this file): keys, CR/SR/CCR, write buffer, program-once array
//! ```
//!
//! It enforces what RM0399 chapter 4 demands and the driver must get right:
//! - unlock: KEY1 then KEY2 while locked; anything else locks the bank until reset (§4.5.1);
//!   writes to a locked CR are ignored (and counted);
//! - program (§4.3.9): stores only with CR.PG, not with SER, after a barrier that follows
//!   setting PG; eight stores to one 32-byte word (another word: INCERR; the same location
//!   twice: STRBERR); then the word is queued (QW/BSY) until [`FlashModel::complete`];
//! - erase (§4.3.10): START with SER and no PG; SNB picks the sector;
//! - write protection (WRPERR), EOP only with EOPIE, flags cleared by CCR;
//! - the program-once rule: programming a word that is not erased leaves it with a bad ECC;
//!   later reads of it raise DBECCERR and set ECC_FA (the driver's guarded read);
//! - injected failures: the next completion raises a chosen flag instead of EOP;
//! - the option registers in effect (OPTCR.SWAP_BANK, OPTSR_CUR.BCM4, BOOT4_CURR), only in
//!   bank 1's block and read-only to the driver (any write is counted).

use std::cell::RefCell;

use super::regs::{
    cr, sr, Bank, FlashRegisters, Reg, BANK_SIZE, FLASH_BASE, FLASH_END, KEY1, KEY2, SECTOR_SIZE, WORD_BYTES,
};

/// State of one flash word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordState {
    /// Erased, programmable.
    Erased,
    /// Programmed once since erase.
    Programmed,
    /// Programmed twice or torn: uncorrectable ECC.
    EccBad,
    /// Readable, but each read reports a corrected single-bit error.
    SingleBit,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Program { word: u32, data: [u32; 8] },
    Erase { sector: u32 },
}

#[derive(Clone, Debug)]
struct BankState {
    locked: bool,
    key_stage: u8,
    hard_locked: bool,
    cr: u32,
    sr: u32,
    ecc_fa: u32,
    barrier_since_pg: bool,
    buffer: Option<(u32, u8, [u32; 8])>,
    in_flight: Option<Op>,
    fail_next: Option<u32>,
    write_protected: [bool; 8],
}

impl BankState {
    fn new() -> Self {
        BankState {
            locked: true,
            key_stage: 0,
            hard_locked: false,
            cr: cr::LOCK,
            sr: 0,
            ecc_fa: 0,
            barrier_since_pg: false,
            buffer: None,
            in_flight: None,
            fail_next: None,
            write_protected: [false; 8],
        }
    }
}

struct State {
    banks: [BankState; 2],
    mem: Vec<u8>,
    words: Vec<WordState>,
    double_programs: u32,
    locks: [u32; 2],
    locked_writes: u32,
    register_writes: u32,
    stores: u32,
    dcache_invalidations: Vec<(u32, u32)>,
    optcr: u32,
    optsr_cur: u32,
    boot4_cur: u32,
    option_writes: u32,
}

/// The model. Interior mutability: the driver holds `&FlashModel`.
pub struct FlashModel {
    s: RefCell<State>,
}

fn idx(bank: Bank) -> usize {
    match bank {
        Bank::One => 0,
        Bank::Two => 1,
    }
}

impl FlashModel {
    /// A fresh, fully erased, locked part.
    pub fn new() -> Self {
        let size = (FLASH_END - FLASH_BASE) as usize;
        FlashModel {
            s: RefCell::new(State {
                banks: [BankState::new(), BankState::new()],
                mem: vec![0xFF; size],
                words: vec![WordState::Erased; size / WORD_BYTES as usize],
                double_programs: 0,
                locks: [0; 2],
                locked_writes: 0,
                register_writes: 0,
                stores: 0,
                dcache_invalidations: Vec::new(),
                // OPTLOCK set, banks not swapped; BCM4 clear (as Arduino's core leaves it);
                // factory boot addresses: M4 at 0x0810_0000 (ADD0), system memory (ADD1).
                optcr: 1,
                optsr_cur: 0,
                boot4_cur: 0x1FF0_0810,
                option_writes: 0,
            }),
        }
    }

    fn word_index(addr: u32) -> usize {
        ((addr - FLASH_BASE) / WORD_BYTES) as usize
    }

    /// Time passes: the operation queued in `bank` finishes (EOP, or the injected flag).
    pub fn complete(&self, bank: Bank) {
        let mut s = self.s.borrow_mut();
        let s = &mut *s;
        let b = idx(bank);
        let Some(op) = s.banks[b].in_flight.take() else {
            return;
        };
        let fail = s.banks[b].fail_next.take();
        match op {
            Op::Program { word, data } => {
                let wi = Self::word_index(word);
                let off = (word - FLASH_BASE) as usize;
                if fail == Some(sr::OPERR) {
                    // A failed program leaves a torn word.
                    s.words[wi] = WordState::EccBad;
                } else if fail.is_none() {
                    let mut bytes = [0u8; 32];
                    for (i, w) in data.iter().enumerate() {
                        bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
                    }
                    if s.words[wi] == WordState::Erased {
                        s.mem[off..off + 32].copy_from_slice(&bytes);
                        s.words[wi] = WordState::Programmed;
                    } else {
                        for (m, n) in s.mem[off..off + 32].iter_mut().zip(bytes) {
                            *m &= n;
                        }
                        s.words[wi] = WordState::EccBad;
                        s.double_programs += 1;
                    }
                }
            }
            Op::Erase { sector } => {
                if fail.is_none() {
                    let start = (bank.base() - FLASH_BASE + sector * SECTOR_SIZE) as usize;
                    s.mem[start..start + SECTOR_SIZE as usize].fill(0xFF);
                    let w0 = start / WORD_BYTES as usize;
                    s.words[w0..w0 + (SECTOR_SIZE / WORD_BYTES) as usize].fill(WordState::Erased);
                }
                s.banks[b].cr &= !cr::START;
            }
        }
        match fail {
            Some(flag) => s.banks[b].sr |= flag,
            None => {
                if s.banks[b].cr & cr::EOPIE != 0 {
                    s.banks[b].sr |= sr::EOP;
                }
            }
        }
    }

    /// Whether the bank raises the FLASH interrupt: EOP with EOPIE, or an error with its enable.
    pub fn irq_pending(&self, bank: Bank) -> bool {
        let s = self.s.borrow();
        let st = &s.banks[idx(bank)];
        let enabled = [
            (sr::EOP, cr::EOPIE),
            (sr::WRPERR, cr::WRPERRIE),
            (sr::PGSERR, cr::PGSERRIE),
            (sr::STRBERR, cr::STRBERRIE),
            (sr::INCERR, cr::INCERRIE),
            (sr::OPERR, cr::OPERRIE),
        ];
        enabled.iter().any(|(flag, ie)| st.sr & flag != 0 && st.cr & ie != 0)
    }

    /// Makes the next completion in `bank` raise `flag` instead of succeeding.
    pub fn fail_next(&self, bank: Bank, flag: u32) {
        self.s.borrow_mut().banks[idx(bank)].fail_next = Some(flag);
    }

    /// Sets the option bytes in effect: SWAP_BANK, BCM4 and FLASH_BOOT4_CURR.
    pub fn set_option_bytes(&self, swap_bank: bool, bcm4: bool, boot4_cur: u32) {
        let mut s = self.s.borrow_mut();
        s.optcr = if swap_bank {
            s.optcr | super::regs::optcr::SWAP_BANK
        } else {
            s.optcr & !super::regs::optcr::SWAP_BANK
        };
        s.optsr_cur = if bcm4 { super::regs::optsr::BCM4 } else { 0 };
        s.boot4_cur = boot4_cur;
    }

    /// Writes to the option registers (the driver must make none).
    pub fn option_writes(&self) -> u32 {
        self.s.borrow().option_writes
    }

    /// Write-protects a sector (option bytes WPSN).
    pub fn write_protect(&self, bank: Bank, sector: u32) {
        self.s.borrow_mut().banks[idx(bank)].write_protected[sector as usize] = true;
    }

    /// Marks the word at `addr` as torn (uncorrectable ECC).
    pub fn corrupt_word(&self, addr: u32) {
        self.s.borrow_mut().words[Self::word_index(addr)] = WordState::EccBad;
    }

    /// Makes reads of the word at `addr` report a corrected single-bit error.
    pub fn single_bit_word(&self, addr: u32) {
        self.s.borrow_mut().words[Self::word_index(addr)] = WordState::SingleBit;
    }

    /// Puts an operation in flight as if another master had started it.
    pub fn occupy(&self, bank: Bank) {
        self.s.borrow_mut().banks[idx(bank)].in_flight = Some(Op::Erase { sector: 7 });
    }

    /// State of the word at `addr`.
    pub fn word_state(&self, addr: u32) -> WordState {
        self.s.borrow().words[Self::word_index(addr)]
    }

    /// Array contents.
    pub fn bytes(&self, addr: u32, len: usize) -> Vec<u8> {
        let off = (addr - FLASH_BASE) as usize;
        self.s.borrow().mem[off..off + len].to_vec()
    }

    /// CR.LOCK of `bank`.
    pub fn is_locked(&self, bank: Bank) -> bool {
        self.s.borrow().banks[idx(bank)].locked
    }

    /// The key sequence went wrong: locked until reset.
    pub fn is_hard_locked(&self, bank: Bank) -> bool {
        self.s.borrow().banks[idx(bank)].hard_locked
    }

    /// Raw CR.
    pub fn cr(&self, bank: Bank) -> u32 {
        self.s.borrow().banks[idx(bank)].cr
    }

    /// Raw SR flags (without the in-flight bits).
    pub fn sr_flags(&self, bank: Bank) -> u32 {
        self.s.borrow().banks[idx(bank)].sr
    }

    /// Words programmed twice since erase.
    pub fn double_programs(&self) -> u32 {
        self.s.borrow().double_programs
    }

    /// Times software set CR.LOCK on `bank`.
    pub fn lock_count(&self, bank: Bank) -> u32 {
        self.s.borrow().locks[idx(bank)]
    }

    /// CR writes attempted while locked.
    pub fn locked_writes(&self) -> u32 {
        self.s.borrow().locked_writes
    }

    /// All register writes plus array stores: zero means the hardware was not touched.
    pub fn hardware_writes(&self) -> u32 {
        let s = self.s.borrow();
        s.register_writes + s.stores
    }

    /// D-cache invalidations, as (address, length).
    pub fn dcache_invalidations(&self) -> Vec<(u32, u32)> {
        self.s.borrow().dcache_invalidations.clone()
    }

    fn raise(st: &mut BankState, flag: u32) {
        st.sr |= flag;
        st.buffer = None;
    }
}

impl FlashRegisters for FlashModel {
    fn read(&self, bank: Bank, reg: Reg) -> u32 {
        let s = self.s.borrow();
        let st = &s.banks[idx(bank)];
        match reg {
            Reg::Keyr | Reg::Ccr => 0,
            Reg::Cr => st.cr,
            Reg::Sr => {
                let mut v = st.sr;
                if st.in_flight.is_some() {
                    v |= sr::QW | sr::BSY;
                }
                if st.buffer.is_some() {
                    v |= sr::WBNE;
                }
                v
            }
            Reg::EccFa => st.ecc_fa,
            Reg::Optcr if bank == Bank::One => s.optcr,
            Reg::OptsrCur if bank == Bank::One => s.optsr_cur,
            Reg::Boot4Cur if bank == Bank::One => s.boot4_cur,
            // Reserved offsets in bank 2's block.
            Reg::Optcr | Reg::OptsrCur | Reg::Boot4Cur => 0,
        }
    }

    fn write(&self, bank: Bank, reg: Reg, value: u32) {
        let mut s = self.s.borrow_mut();
        let s = &mut *s;
        s.register_writes += 1;
        let st = &mut s.banks[idx(bank)];
        match reg {
            Reg::Keyr => {
                if st.hard_locked {
                    return;
                }
                if !st.locked {
                    // Keys while unlocked: a wrong sequence.
                    st.hard_locked = true;
                    st.locked = true;
                    st.cr |= cr::LOCK;
                    return;
                }
                match (st.key_stage, value) {
                    (0, KEY1) => st.key_stage = 1,
                    (1, KEY2) => {
                        st.key_stage = 0;
                        st.locked = false;
                        st.cr &= !cr::LOCK;
                    }
                    _ => {
                        st.hard_locked = true;
                        st.key_stage = 0;
                    }
                }
            }
            Reg::Cr => {
                if st.locked {
                    s.locked_writes += 1;
                    return;
                }
                let old = st.cr;
                st.cr = value & !cr::LOCK;
                if value & cr::PG != 0 && old & cr::PG == 0 {
                    st.barrier_since_pg = false;
                }
                if value & cr::LOCK != 0 {
                    st.locked = true;
                    st.cr |= cr::LOCK;
                    s.locks[idx(bank)] += 1;
                }
                if value & cr::START != 0 && old & cr::START == 0 {
                    let sector = (value & cr::SNB_MASK) >> cr::SNB_SHIFT;
                    if value & cr::SER == 0 || value & cr::PG != 0 || st.in_flight.is_some() {
                        Self::raise(st, sr::PGSERR);
                        st.cr &= !cr::START;
                    } else if st.write_protected[sector as usize] {
                        Self::raise(st, sr::WRPERR);
                        st.cr &= !cr::START;
                    } else {
                        st.in_flight = Some(Op::Erase { sector });
                    }
                }
            }
            Reg::Ccr => {
                st.sr &= !(value & sr::CLEARABLE);
                if value & sr::DBECCERR != 0 {
                    st.ecc_fa = 0;
                }
            }
            Reg::Sr | Reg::EccFa => {}
            Reg::Optcr | Reg::OptsrCur | Reg::Boot4Cur => s.option_writes += 1,
        }
    }

    fn store_word(&self, addr: u32, value: u32) {
        let mut s = self.s.borrow_mut();
        let s = &mut *s;
        s.stores += 1;
        let bank = Bank::of(addr);
        let st = &mut s.banks[idx(bank)];
        if st.locked || st.cr & cr::PG == 0 || st.cr & cr::SER != 0 || !st.barrier_since_pg {
            Self::raise(st, sr::PGSERR);
            return;
        }
        if st.in_flight.is_some() {
            Self::raise(st, sr::PGSERR);
            return;
        }
        let sector = (addr - bank.base()) / SECTOR_SIZE;
        if st.write_protected[sector as usize] {
            Self::raise(st, sr::WRPERR);
            return;
        }
        let word = addr & !(WORD_BYTES - 1);
        let slot = ((addr - word) / 4) as u8;
        let (w, mut mask, mut data) = st.buffer.unwrap_or((word, 0, [0; 8]));
        if w != word {
            Self::raise(st, sr::INCERR);
            return;
        }
        if mask & (1 << slot) != 0 {
            Self::raise(st, sr::STRBERR);
            return;
        }
        mask |= 1 << slot;
        data[slot as usize] = value;
        if mask == 0xFF {
            st.buffer = None;
            st.in_flight = Some(Op::Program { word, data });
        } else {
            st.buffer = Some((word, mask, data));
        }
    }

    fn load_guarded(&self, addr: u32, buf: &mut [u8]) {
        let mut s = self.s.borrow_mut();
        let s = &mut *s;
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i as u32;
            let wi = Self::word_index(a);
            let bank = Bank::of(a);
            let st = &mut s.banks[idx(bank)];
            match s.words[wi] {
                WordState::EccBad => {
                    if st.sr & sr::DBECCERR == 0 {
                        st.ecc_fa = (a - bank.base()) / WORD_BYTES;
                    }
                    st.sr |= sr::DBECCERR;
                    *b = 0;
                }
                WordState::SingleBit => {
                    st.sr |= sr::SNECCERR;
                    *b = s.mem[(a - FLASH_BASE) as usize];
                }
                WordState::Erased | WordState::Programmed => *b = s.mem[(a - FLASH_BASE) as usize],
            }
        }
    }

    fn barrier(&self) {
        let mut s = self.s.borrow_mut();
        for st in s.banks.iter_mut() {
            if st.cr & cr::PG != 0 {
                st.barrier_since_pg = true;
            }
        }
    }

    fn invalidate_dcache(&self, addr: u32, len: u32) {
        self.s.borrow_mut().dcache_invalidations.push((addr, len));
    }
}

// Keep the bank size in use for the model's documentation of the address map.
const _: () = assert!(BANK_SIZE * 2 == FLASH_END - FLASH_BASE);
