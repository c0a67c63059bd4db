//! Background work: one bounded step at a time (compact a torn tail, erase the standby area, erase
//! ahead in the active area, compact early).

use super::api::*;
use super::compact::{Compact, Skip};
use super::erase::EnsureErased;
use super::shared::*;
use core::task::Poll::Ready;

/// One maintenance step: chooses the most urgent piece of background work, does it, and
/// says whether more is pending.
pub(crate) enum Maintain {
    Choose,
    Compact(Compact),
    Erase(EnsureErased),
}

impl Maintain {
    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<Outcome> {
        loop {
            match self {
                Maintain::Choose => {
                    let Some(next) = next_maintenance(c) else {
                        return Ready(Ok(Outcome::Maintained(false)));
                    };
                    *self = next;
                    ev = Ev::Start;
                }
                Maintain::Compact(k) => {
                    ready!(k.poll(c, ev));
                    return Ready(Ok(Outcome::Maintained(next_maintenance(c).is_some())));
                }
                Maintain::Erase(e) => {
                    ready!(e.poll(c, ev));
                    return Ready(Ok(Outcome::Maintained(next_maintenance(c).is_some())));
                }
            }
        }
    }
}

/// Whether [`next_maintenance`] has something to do.
pub(crate) fn due(c: &Core) -> bool {
    next_maintenance(c).is_some()
}

/// The next piece of background work, most urgent first: compact away a torn tail, erase
/// the standby area, pre-erase the next active sector, compact early.
fn next_maintenance(c: &Core) -> Option<Maintain> {
    let area = c.lay.area_size;
    let ahead = c.erased_until < area && c.erased_until < c.free + c.geo.erase_size;
    let early = c.opts.compact_below > 0
        && area - c.free < c.opts.compact_below
        && c.live_bytes + c.lay.first_record() + c.opts.compact_below < area;
    Some(if c.torn_tail {
        Maintain::Compact(Compact::new(Skip::None))
    } else if c.standby_clean < area {
        Maintain::Erase(EnsureErased::new(Area::Standby, c.sector_end(c.standby_clean).min(area)))
    } else if ahead {
        Maintain::Erase(EnsureErased::new(Area::Active, c.sector_end(c.erased_until).min(area)))
    } else if early {
        Maintain::Compact(Compact::new(Skip::None))
    } else {
        return None;
    })
}
