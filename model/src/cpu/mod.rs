//! What the hand-written CPU passes share: slice [`kernels`] and the weights' [`layout`].
//!
//! The GPT's forward exists three times, each tested against the others:
//! - [`Gpt::forward`](crate::Gpt::forward) on candle (every device; the reference, and the
//!   training path under candle's autograd),
//! - [`TrainPass`](crate::train_pass::TrainPass) (`train_pass.rs`): forward and backward by hand
//!   for CPU training; its tests compare losses and every gradient with candle's autograd,
//! - [`Decoder`](crate::decode_pass::Decoder) (`decode_pass.rs`): one position per call over
//!   in-place KV caches for CPU sampling; its tests compare logits with `Gpt::forward`, with and
//!   without a deep prefix, and the sampler's log-likelihoods with both training paths'.

pub(crate) mod kernels;
pub(crate) mod layout;

/// Copies `t`'s f32 values into `dst`, reusing its allocation. The training pass refreshes its
/// copy of the weights on every call; fresh buffers of that size cost more in page faults (the
/// kernel zeroing new pages) than the copy itself.
pub(crate) fn copy_f32_into(t: &candle_core::Tensor, dst: &mut Vec<f32>) -> candle_core::Result<()> {
    dst.clear();
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets())
        {
            dst.extend_from_slice(&cpu.as_slice::<f32>()?[start..end]);
            return Ok(());
        }
    }
    dst.extend(t.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}
