//! The kernel boundary: every public kernel entry describes itself as an [`Entry`] and
//! runs through [`dispatch`] (its `*_fallback` twin through [`fallback`]), which
//!
//! 1. checks the shapes of all operands ([`Entry::check`], the same check for the kernel
//!    and the fallback), panicking with a message that names the function, the operand
//!    and both shapes;
//! 2. on burn's Flex backend, when the kernel takes the operands (dtypes, size limits,
//!    no empty operand), converts them to contiguous Flex tensors at offset 0 and runs
//!    the kernel;
//! 3. else runs the fallback in plain burn ops (and notes once on stderr when the
//!    backend wraps Flex, see [`wraps_flex`]).

mod operands;
mod shapes;
mod wrapped;

pub(crate) use operands::{Operands, Output};
pub(crate) use shapes::{Dim, Site, expect, odd_square, require};
pub use wrapped::wraps_flex;

use burn::tensor::{DType, Tensor, backend::Backend};

/// One kernel entry: its parameters (the implementing value), its tensor operands, the
/// shape check, the Flex kernel and the fallback.
pub(crate) trait Entry<B: Backend>: Sized {
    /// The tensor operands: a tensor, an `Option` of one, or a tuple of those.
    type Operands: Operands<B>;
    /// The result, a float tensor of `B`.
    type Output: Output<B>;

    /// The public function's name, as the messages give it.
    fn name(&self) -> &'static str;

    /// Panics unless the operands' shapes fit the operation (see [`expect`]).
    fn check(&self, at: Site, operands: &Self::Operands);

    /// Whether the Flex kernel takes operands of these dtypes (and sizes, where it has a
    /// limit); the shapes are checked already.
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    fn kernel_takes(&self, operands: &Self::Operands) -> bool;

    /// The Flex kernel, on checked, non-empty, contiguous operands that it takes.
    #[cfg(feature = "flex")]
    fn kernel(self, operands: <Self::Operands as Operands<B>>::Flex) -> burn_flex::FlexTensor;

    /// The plain-op path, on checked operands.
    fn fallback(self, operands: Self::Operands) -> Self::Output;
}

/// Runs `entry` on `operands`: the shape check, then the Flex kernel where it applies,
/// else the fallback.
pub(crate) fn dispatch<B: Backend, E: Entry<B>>(entry: E, operands: E::Operands) -> E::Output {
    entry.check(Site::entry(entry.name()), &operands);
    #[cfg(feature = "flex")]
    if crate::flex::is_flex::<B>() {
        if operands.nonempty() && entry.kernel_takes(&operands) {
            // read the instruction-set setting here, in the caller's thread, so that a
            // bad value panics where the call is made
            crate::flex::isa::isa();
            return <E::Output as Output<B>>::from_flex(entry.kernel(operands.into_flex()));
        }
        return entry.fallback(operands);
    }
    wrapped::note::<B>();
    entry.fallback(operands)
}

/// Runs the fallback of `entry` after the same shape check as [`dispatch`] (the public
/// `*_fallback` functions).
pub(crate) fn fallback<B: Backend, E: Entry<B>>(entry: E, operands: E::Operands) -> E::Output {
    entry.check(Site::fallback(entry.name()), &operands);
    entry.fallback(operands)
}

/// Whether `x` holds f32 (the dtype of every kernel's float operands but a half weight).
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) fn is_f32<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    x.dtype() == DType::F32
}
