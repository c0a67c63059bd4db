//! Erase ahead: blank checks and erasing sectors only when they are not already blank.

use super::api::*;
use super::shared::*;
use core::task::Poll::Ready;

/// Reads `[from, to)` of an area; reports whether it is blank. With `erase_sector`, erases
/// that sector when it is not (the range must then be the whole sector).
pub(crate) struct BlankCheck {
    pub(crate) area: Area,
    pub(crate) pos: u32,
    pub(crate) to: u32,
    pub(crate) erase_sector: Option<u32>,
    pub(crate) st: BcState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BcState {
    Start,
    AwaitRead { len: u32 },
    AwaitErase,
}

impl BlankCheck {
    pub(crate) fn new(area: Area, from: u32, to: u32, erase_sector: Option<u32>) -> Self {
        BlankCheck { area, pos: from, to, erase_sector, st: BcState::Start }
    }

    /// `Ok(true)`: blank (or erased now); `Ok(false)`: dirty and not erased.
    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<bool> {
        match self.st {
            BcState::Start => {}
            BcState::AwaitRead { len } => {
                // An unreadable unit is as dirty as a programmed one.
                let clean = matches!(ev, Ev::Io(Ok(()))) && c.is_blank(c.got(self.pos, len));
                if let (Ev::Io(Err(IoError::PowerLost)), _) = (ev, clean) {
                    return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                }
                if clean {
                    self.pos += len;
                } else {
                    return match self.erase_sector {
                        Some(s) => {
                            self.st = BcState::AwaitErase;
                            c.erase(self.area, s)
                        }
                        None => Ready(Ok(false)),
                    };
                }
            }
            BcState::AwaitErase => {
                ev.result(IoKind::Erase)?;
                return Ready(Ok(true));
            }
        }
        if self.pos >= self.to {
            return Ready(Ok(true));
        }
        let len = (self.to - self.pos).min(c.chunk);
        self.st = BcState::AwaitRead { len };
        c.read(self.area, self.pos, len)
    }
}

/// Makes sure `[watermark, upto)` of an area is erased, one sector at a time.
pub(crate) struct EnsureErased {
    pub(crate) area: Area,
    pub(crate) upto: u32,
    pub(crate) check: Option<BlankCheck>,
}

impl EnsureErased {
    pub(crate) fn new(area: Area, upto: u32) -> Self {
        EnsureErased { area, upto, check: None }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<()> {
        loop {
            if let Some(check) = &mut self.check {
                ready!(check.poll(c, ev));
                self.check = None;
                let w = *c.watermark(self.area);
                let next = c.sector_end(w).min(c.lay.area_size);
                *c.watermark(self.area) = next;
                ev = Ev::Start;
            }
            let w = *c.watermark(self.area);
            if w >= self.upto {
                return Ready(Ok(()));
            }
            // The watermark is always sector-aligned here.
            let end = c.sector_end(w).min(c.lay.area_size);
            self.check = Some(BlankCheck::new(self.area, w, end, Some(w)));
        }
    }
}
