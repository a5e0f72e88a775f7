//! A backend that wraps Flex (`Autodiff<Flex>`, a router or fusion layer over it, …) is
//! not Flex: its tensors are not Flex's primitive, so the kernels cannot take them and
//! the plain-op fallback runs. That is correct but slower, and easy to miss; it is said
//! once per process on stderr.

use std::sync::Once;

use burn::tensor::backend::Backend;

/// Whether `B` is not burn's Flex backend but its type wraps it (its type name contains
/// `burn_flex`, as `Autodiff<Flex>`'s does): the kernels of this crate then take the
/// plain-op fallback, as on any backend other than Flex itself. Always `false` without
/// the `flex` feature (no backend has the kernels then).
pub fn wraps_flex<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    {
        !crate::flex::is_flex::<B>() && std::any::type_name::<B>().contains("burn_flex")
    }
    #[cfg(not(feature = "flex"))]
    {
        false
    }
}

/// Prints, once per process, that the fallback runs on `B` when `B` wraps Flex.
pub(crate) fn note<B: Backend>() {
    static NOTED: Once = Once::new();
    if NOTED.is_completed() || !wraps_flex::<B>() {
        return;
    }
    NOTED.call_once(|| {
        eprintln!(
            "omg-kernels: the fast CPU kernels run on burn::backend::Flex itself; this \
             backend ({}) takes the slower plain-op fallback",
            std::any::type_name::<B>()
        );
    });
}
