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
