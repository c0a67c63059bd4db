//! Background work: one bounded step at a time (compact a torn tail, erase the standby area, erase
//! ahead in the active area, compact early).

use super::compact::*;
use super::erase::*;
use super::shared::*;

/// The next piece of background work, most urgent first: compact away a torn tail, erase
/// the standby area, pre-erase the next active sector, compact early.
pub(crate) fn next_maintenance(c: &Core) -> Option<Maint> {
    let area = c.lay.area_size;
    let ahead = c.erased_until < area && c.erased_until < c.free + c.geo.erase_size;
    let early = c.opts.compact_below > 0
        && area - c.free < c.opts.compact_below
        && c.live_bytes + c.lay.first_record() + c.opts.compact_below < area;
    Some(if c.torn_tail {
        Maint::Compact(Compact::new(Skip::None))
    } else if c.standby_clean < area {
        Maint::Standby(EnsureErased::new(Area::Standby, c.sector_end(c.standby_clean).min(area)))
    } else if ahead {
        Maint::Ahead(EnsureErased::new(Area::Active, c.sector_end(c.erased_until).min(area)))
    } else if early {
        Maint::Compact(Compact::new(Skip::None))
    } else {
        return None;
    })
}

/// One maintenance step.
pub(crate) enum Maint {
    Choose,
    Compact(Compact),
    Standby(EnsureErased),
    Ahead(EnsureErased),
}
