//! Kernel operands and results between generic burn tensors and Flex's primitive: an
//! operand (a float, int or bool tensor, an `Option` of one, a tuple of those) becomes a
//! contiguous Flex tensor at offset 0 whose buffer holds exactly its elements, so a
//! kernel may read it as one row-major slice or write it in place.

#[cfg(feature = "flex")]
use burn::tensor::TensorPrimitive;
use burn::tensor::{Bool, Int, Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;
#[cfg(feature = "flex")]
use std::any::Any;

/// The tensor operands of a kernel entry.
pub(crate) trait Operands<B: Backend> {
    /// Whether no operand has zero elements (the kernels take non-empty operands only).
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    fn nonempty(&self) -> bool;

    /// The operands as Flex tensors (the same structure, `FlexTensor` in place of each
    /// tensor).
    #[cfg(feature = "flex")]
    type Flex;

    /// The operands as contiguous Flex tensors at offset 0; only called when `B` is Flex.
    #[cfg(feature = "flex")]
    fn into_flex(self) -> Self::Flex;
}

/// The result of a kernel entry.
pub(crate) trait Output<B: Backend> {
    /// The result from a kernel's output; only called when `B` is Flex.
    #[cfg(feature = "flex")]
    fn from_flex(out: FlexTensor) -> Self;
}

/// A Flex primitive (float, int or bool) as a contiguous tensor at offset 0 that covers
/// its whole buffer (a copy only when it is a strided, offset or partial view).
#[cfg(feature = "flex")]
fn contiguous(primitive: Box<dyn Any>) -> FlexTensor {
    primitive
        .downcast::<FlexTensor>()
        .expect("operands are converted only when the backend is Flex")
        .to_contiguous()
}

/// One tensor kind's operand impl (they differ in how the primitive is taken out).
macro_rules! tensor_operand {
    ($kind:ty, |$x:ident| $primitive:expr) => {
        impl<B: Backend, const D: usize> Operands<B> for Tensor<B, D, $kind> {
            fn nonempty(&self) -> bool {
                self.shape().num_elements() > 0
            }

            #[cfg(feature = "flex")]
            type Flex = FlexTensor;

            #[cfg(feature = "flex")]
            fn into_flex(self) -> FlexTensor {
                let $x = self;
                contiguous(Box::new($primitive))
            }
        }
    };
}

tensor_operand!(burn::tensor::Float, |x| x.into_primitive().tensor());
tensor_operand!(Int, |x| x.into_primitive());
tensor_operand!(Bool, |x| x.into_primitive());

impl<B: Backend, T: Operands<B>> Operands<B> for Option<T> {
    fn nonempty(&self) -> bool {
        self.as_ref().is_none_or(T::nonempty)
    }

    #[cfg(feature = "flex")]
    type Flex = Option<T::Flex>;

    #[cfg(feature = "flex")]
    fn into_flex(self) -> Self::Flex {
        self.map(T::into_flex)
    }
}

/// The impl for a tuple of operands.
macro_rules! tuple_operands {
    ($($t:ident),+) => {
        impl<B: Backend, $($t: Operands<B>),+> Operands<B> for ($($t,)+) {
            fn nonempty(&self) -> bool {
                #[allow(non_snake_case)]
                let ($($t,)+) = self;
                true $(&& $t.nonempty())+
            }

            #[cfg(feature = "flex")]
            type Flex = ($($t::Flex,)+);

            #[cfg(feature = "flex")]
            fn into_flex(self) -> Self::Flex {
                #[allow(non_snake_case)]
                let ($($t,)+) = self;
                ($($t.into_flex(),)+)
            }
        }
    };
}

tuple_operands!(T1, T2);
tuple_operands!(T1, T2, T3);
tuple_operands!(T1, T2, T3, T4);

impl<B: Backend, const D: usize> Output<B> for Tensor<B, D> {
    #[cfg(feature = "flex")]
    fn from_flex(out: FlexTensor) -> Self {
        let boxed: Box<dyn Any> = Box::new(out);
        let primitive = *boxed
            .downcast::<B::FloatTensorPrimitive>()
            .expect("a kernel runs only when the backend is Flex");
        Tensor::from_primitive(TensorPrimitive::Float(primitive))
    }
}
