//! Where each GPT weight sits in [`Gpt::parameters`](crate::Gpt::parameters)' flat order: the
//! hand-written training pass and decoder index the same list, by these names.

/// Token embedding (also the tied output head).
pub(crate) const WTE: usize = 0;
/// Position embedding.
pub(crate) const WPE: usize = 1;
/// Tensors per block, in this order:
pub(crate) const PER_LAYER: usize = 12;
pub(crate) const LN1_W: usize = 0;
pub(crate) const LN1_B: usize = 1;
pub(crate) const ATTN_W: usize = 2;
pub(crate) const ATTN_B: usize = 3;
pub(crate) const PROJ_W: usize = 4;
pub(crate) const PROJ_B: usize = 5;
pub(crate) const LN2_W: usize = 6;
pub(crate) const LN2_B: usize = 7;
pub(crate) const FC_W: usize = 8;
pub(crate) const FC_B: usize = 9;
pub(crate) const FCP_W: usize = 10;
pub(crate) const FCP_B: usize = 11;

/// Index of block `l`'s first tensor.
pub(crate) fn block_start(l: usize) -> usize {
    2 + l * PER_LAYER
}

/// Block `l`'s tensors, indexed by the constants above.
pub(crate) fn block<T>(params: &[T], l: usize) -> &[T] {
    &params[block_start(l)..][..PER_LAYER]
}

/// Indices of the final LayerNorm's weight and bias in a list of `n_params` tensors: the last two.
pub(crate) fn ln_f(n_params: usize) -> (usize, usize) {
    (n_params - 2, n_params - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_gpt;

    /// The constants name what `Gpt::parameters` puts there.
    #[test]
    fn indices_name_the_parameters() {
        let (gpt, _) = tiny_gpt(12, 16, 8, 0);
        let names: Vec<String> = gpt.parameters().into_iter().map(|(n, _)| n).collect();
        let n_layer = (names.len() - 4) / PER_LAYER;
        assert_eq!(names.len(), 2 + n_layer * PER_LAYER + 2);
        assert_eq!(names[WTE], "wte.weight");
        assert_eq!(names[WPE], "wpe.weight");
        let expect = [
            (LN1_W, "ln_1.weight"),
            (LN1_B, "ln_1.bias"),
            (ATTN_W, "attn.c_attn.weight"),
            (ATTN_B, "attn.c_attn.bias"),
            (PROJ_W, "attn.c_proj.weight"),
            (PROJ_B, "attn.c_proj.bias"),
            (LN2_W, "ln_2.weight"),
            (LN2_B, "ln_2.bias"),
            (FC_W, "mlp.c_fc.weight"),
            (FC_B, "mlp.c_fc.bias"),
            (FCP_W, "mlp.c_proj.weight"),
            (FCP_B, "mlp.c_proj.bias"),
        ];
        for l in 0..n_layer {
            for (i, name) in expect {
                assert_eq!(block(&names, l)[i], format!("h.{l}.{name}"));
            }
        }
        let (w, b) = ln_f(names.len());
        assert_eq!(
            (names[w].as_str(), names[b].as_str()),
            ("ln_f.weight", "ln_f.bias")
        );
    }
}
