//! `W += s · B · A` on host buffers: merging a LoRA pair into a weight while it is
//! loaded, a block of rows at a time.

use burn::tensor::backend::Backend;

/// Adds `scale · b · a` to `w` in place, all row-major f32: `w` is `[rows, cols]`, `b`
/// `[rows, rank]`, `a` `[rank, cols]` (`dims = [rows, rank, cols]`).
///
/// With the `flex` feature the product runs in `gemm` on the host, across the CPU's
/// threads, accumulating into `w` without a temporary; without it, it runs on
/// `device` through backend `B` and the result is copied back.
///
/// # Panics
/// When a buffer's length is not the product of its dimensions.
pub fn add_scaled_product<B: Backend>(
    w: &mut [f32],
    b: &[f32],
    a: &[f32],
    dims: [usize; 3],
    scale: f32,
    device: &B::Device,
) {
    let [rows, rank, cols] = dims;
    assert!(
        w.len() == rows * cols && b.len() == rows * rank && a.len() == rank * cols,
        "add_scaled_product: buffers of {}, {} and {} values for [{rows}, {cols}] += \
         [{rows}, {rank}] · [{rank}, {cols}]",
        w.len(),
        b.len(),
        a.len()
    );
    if rows == 0 || cols == 0 || rank == 0 {
        return;
    }
    #[cfg(feature = "flex")]
    {
        let _ = device;
        // SAFETY: the lengths were checked above: `w` holds rows·cols values with row
        // stride `cols`, `b` rows·rank with row stride `rank`, `a` rank·cols with row
        // stride `cols`; the three buffers do not overlap (`w` is borrowed mutably).
        unsafe {
            gemm::gemm(
                rows,
                cols,
                rank,
                w.as_mut_ptr(),
                1,
                cols as isize,
                true,
                b.as_ptr(),
                1,
                rank as isize,
                a.as_ptr(),
                1,
                cols as isize,
                1.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
    }
    #[cfg(not(feature = "flex"))]
    {
        use burn::tensor::{Tensor, TensorData};
        let tensor = |values: &[f32], shape: [usize; 2]| {
            Tensor::<B, 2>::from_data(
                TensorData::new(values.to_vec(), shape).convert::<B::FloatElem>(),
                device,
            )
        };
        let sum = tensor(w, [rows, cols])
            + tensor(b, [rows, rank]).matmul(tensor(a, [rank, cols])) * scale;
        let values = sum.into_data().convert::<f32>();
        match values.as_slice::<f32>() {
            Ok(v) => w.copy_from_slice(v),
            Err(e) => panic!("add_scaled_product: {e:?}"),
        }
    }
}
