//! Shape checks of kernel operands and their messages, e.g.
//! `masked_attention: k is [2, 5, 16], expected [B=2, Nk, C=32] (q is [2, 3, 32])`.

use std::fmt;

/// The function a check runs for: a kernel entry or its `*_fallback` twin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    name: &'static str,
    fallback: bool,
}

impl Site {
    /// The kernel entry `name`.
    pub(crate) fn entry(name: &'static str) -> Self {
        Self {
            name,
            fallback: false,
        }
    }

    /// The fallback of the kernel entry `name` (`{name}_fallback`).
    pub(crate) fn fallback(name: &'static str) -> Self {
        Self {
            name,
            fallback: true,
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = if self.fallback { "_fallback" } else { "" };
        write!(f, "{}{suffix}", self.name)
    }
}

/// One dimension of an expected shape.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dim {
    /// A named size this operand must have (`C=32`).
    Is(&'static str, usize),
    /// A named size of its own, any value (`Nk`).
    Any(&'static str),
    /// A named size, or 1 (broadcast): `B=2 or 1`.
    IsOrOne(&'static str, usize),
    /// An exact size without a name (`2`).
    Eq(usize),
    /// Any number of leading dimensions (`..`); first only.
    Lead,
}

impl Dim {
    fn fits(self, size: usize) -> bool {
        match self {
            Self::Is(_, n) | Self::Eq(n) => size == n,
            Self::IsOrOne(_, n) => size == n || size == 1,
            Self::Any(_) | Self::Lead => true,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Is(name, n) => write!(f, "{name}={n}"),
            Self::Any(name) => write!(f, "{name}"),
            Self::IsOrOne(name, n) => write!(f, "{name}={n} or 1"),
            Self::Eq(n) => write!(f, "{n}"),
            Self::Lead => write!(f, ".."),
        }
    }
}

/// Whether `dims` has the shape `expected`.
fn fits(dims: &[usize], expected: &[Dim]) -> bool {
    match expected.split_first() {
        Some((Dim::Lead, rest)) => {
            dims.len() >= rest.len() && fits(&dims[dims.len() - rest.len()..], rest)
        }
        _ => dims.len() == expected.len() && dims.iter().zip(expected).all(|(&d, e)| e.fits(d)),
    }
}

/// Panics unless `operand`'s `dims` fit `expected`: `{at}: {operand} is {dims:?},
/// expected [..] ({name} is {value:?}, ..)`, `from` being the operands (or parameters)
/// the expected sizes come from.
pub(crate) fn expect(
    at: Site,
    operand: &str,
    dims: &[usize],
    expected: &[Dim],
    from: &[(&str, &dyn fmt::Debug)],
) {
    if fits(dims, expected) {
        return;
    }
    let expected: Vec<String> = expected.iter().map(Dim::to_string).collect();
    let mut message = format!(
        "{at}: {operand} is {dims:?}, expected [{}]",
        expected.join(", ")
    );
    if !from.is_empty() {
        let from: Vec<String> = from
            .iter()
            .map(|(name, value)| format!("{name} is {value:?}"))
            .collect();
        message += &format!(" ({})", from.join(", "));
    }
    panic!("{message}");
}

/// Panics with `{at}: {message()}` unless `ok`.
pub(crate) fn require(at: Site, ok: bool, message: impl FnOnce() -> String) {
    if !ok {
        panic!("{at}: {}", message());
    }
}

/// Panics unless the last two of `weight`'s dims are equal and odd (a k×k filter, odd
/// k, for a "same" convolution).
pub(crate) fn odd_square(at: Site, weight: &[usize]) {
    let [kh, kw] = [weight[weight.len() - 2], weight[weight.len() - 1]];
    require(at, kh == kw && kh % 2 == 1, || {
        format!("weight is {weight:?}, expected a k×k filter with k odd (zero padding k/2)")
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dims_match_any_rank() {
        assert!(fits(&[2, 3, 5], &[Dim::Lead, Dim::Is("in", 5)]));
        assert!(fits(&[5], &[Dim::Lead, Dim::Is("in", 5)]));
        assert!(!fits(&[5, 4], &[Dim::Lead, Dim::Is("in", 5)]));
        assert!(!fits(&[], &[Dim::Lead, Dim::Is("in", 5)]));
    }

    #[test]
    fn every_dim_and_the_rank_count() {
        let e = [Dim::IsOrOne("B", 2), Dim::Any("Nq"), Dim::Eq(2)];
        assert!(fits(&[2, 7, 2], &e));
        assert!(fits(&[1, 7, 2], &e));
        assert!(!fits(&[3, 7, 2], &e));
        assert!(!fits(&[2, 7, 3], &e));
        assert!(!fits(&[2, 7], &e));
    }

    #[test]
    #[should_panic(
        expected = "f_fallback: k is [2, 5, 16], expected [B=2, Nk, C=32] (q is [2, 3, 32])"
    )]
    fn the_message_names_function_operand_and_shapes() {
        expect(
            Site::fallback("f"),
            "k",
            &[2, 5, 16],
            &[Dim::Is("B", 2), Dim::Any("Nk"), Dim::Is("C", 32)],
            &[("q", &[2, 3, 32])],
        );
    }
}
