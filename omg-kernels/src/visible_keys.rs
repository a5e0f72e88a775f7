//! Which keys a query of a causal, left-padded sequence sees (shared by the causal
//! attention's kernel and its fallback).

/// The keys query position `p` of a row with `pad` padding positions sees: `pad ..= p`,
/// or itself only when it is padding (`p < pad`).
pub(crate) fn visible_keys(p: usize, pad: usize) -> std::ops::RangeInclusive<usize> {
    if p < pad { p..=p } else { pad..=p }
}
