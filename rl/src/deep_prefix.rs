//! The trainable part of deep prefix tuning: L keys and values per layer `(n_layer, 2, L, C)`
//! that every position of the frozen prior attends to (`Gpt::with_kv_prefix`).
//!
//! Two parametrisations, as in Li & Liang 2021 §4.3:
//! - direct: the keys and values are the variable;
//! - reparameterised (the default): `kv = init + W₂·tanh(W₁·e_i + b₁) + b₂` per prefix slot i,
//!   with a small embedding e_i and W₂, b₂ starting at zero, so step 1 is exactly `init`. Only
//!   the folded `kv` is needed to sample; the MLP is kept in checkpoints to resume.
//!
//! `init` comes from the prior's own keys and values on real SMILES (or noise): a prefix slot
//! starts as a copy of what one real token at one real position contributes at every layer.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use model::rng::Rng;
use model::{Gpt, Vocab};

use crate::config::{PrefixConfig, PrefixInit};
use crate::{Error, Result, SmilesSource};

/// Name of the folded keys and values in agent and checkpoint files.
pub const KV_PREFIX_VAR: &str = "kv_prefix";

/// The MLP of the reparameterisation; names in checkpoints are `reparam.<field>`.
struct Reparam {
    emb: Var, // (L, H)
    w1: Var,  // (H, H)
    b1: Var,  // (H)
    w2: Var,  // (H, n_layer · 2 · C)
    b2: Var,  // (n_layer · 2 · C)
}

impl Reparam {
    /// The variables with their checkpoint names (`reparam.<name>`), for saving and restoring.
    fn named(&self) -> [(&'static str, &Var); 5] {
        [
            ("emb", &self.emb),
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ]
    }
}

/// Deep-prefix parameters of one policy.
pub struct DeepPrefix {
    /// `(n_layer, 2, L, C)`: the starting keys and values (a constant when reparameterised).
    init: Tensor,
    /// The keys and values themselves, when trained directly (or loaded folded).
    direct: Option<Var>,
    reparam: Option<Reparam>,
    dims: (usize, usize, usize), // (n_layer, L, C)
}

impl DeepPrefix {
    /// A fresh prefix for `prior` as `cfg` says; `seed` fixes the init, and `prior_kv` reads
    /// real molecules from `refs`' training set.
    pub fn new(
        prior: &Gpt,
        vocab: &Vocab,
        cfg: &PrefixConfig,
        seed: u64,
        refs: &dyn SmilesSource,
    ) -> Result<Self> {
        let gcfg = prior.config();
        let (nl, l, c) = (gcfg.n_layer, cfg.length, gcfg.n_embd);
        let device = prior.device();
        let mut rng = Rng::derive(seed, 0x4b56_5046); // "KVPF"
        let init = match cfg.init {
            PrefixInit::Noise => {
                let xs: Vec<f32> = (0..nl * 2 * l * c)
                    .map(|_| (rng.normal() * cfg.init_std) as f32)
                    .collect();
                Tensor::from_vec(xs, (nl, 2, l, c), device)?
            }
            PrefixInit::PriorKv => {
                let corpus = crate::references::training_set(refs)?;
                if corpus.is_empty() {
                    return Err(Error::config(
                        "prefix.init",
                        "prior_kv needs real SMILES, and the training set is empty",
                    ));
                }
                prior_kv_init(prior, vocab, &corpus, l, cfg.init_score, &mut rng)?
            }
        };
        let (direct, reparam) = if cfg.reparam {
            let h = cfg.reparam_hidden;
            let normal = |rng: &mut Rng, n: usize, std: f64| -> Vec<f32> {
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            };
            let var = |data: Vec<f32>, shape: &[usize]| -> Result<Var> {
                Ok(Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?)
            };
            let reparam = Reparam {
                emb: var(normal(&mut rng, l * h, 1.0), &[l, h])?,
                w1: var(normal(&mut rng, h * h, 1.0 / (h as f64).sqrt()), &[h, h])?,
                b1: var(vec![0.0; h], &[h])?,
                w2: var(vec![0.0; h * nl * 2 * c], &[h, nl * 2 * c])?,
                b2: var(vec![0.0; nl * 2 * c], &[nl * 2 * c])?,
            };
            (None, Some(reparam))
        } else {
            (Some(Var::from_tensor(&init)?), None)
        };
        Ok(Self {
            init,
            direct,
            reparam,
            dims: (nl, l, c),
        })
    }

    /// The keys and values `(n_layer, 2, L, C)`, differentiable in the trainable variables.
    pub fn kv(&self) -> Result<Tensor> {
        if let Some(v) = &self.direct {
            return Ok(v.as_tensor().clone());
        }
        let r = self
            .reparam
            .as_ref()
            .expect("a prefix is direct or reparameterised");
        let (nl, l, c) = self.dims;
        let hidden = r.emb.matmul(r.w1.as_tensor())?.broadcast_add(&r.b1)?.tanh()?; // (L, H)
        let delta = hidden.matmul(r.w2.as_tensor())?.broadcast_add(&r.b2)?; // (L, nl·2·C)
        let delta = delta
            .reshape((l, nl, 2, c))?
            .permute((1, 2, 0, 3))?
            .contiguous()?;
        Ok((&self.init + delta)?)
    }

    /// The trainable variables by checkpoint name.
    pub fn vars(&self) -> HashMap<String, Var> {
        let mut out = HashMap::new();
        if let Some(v) = &self.direct {
            out.insert(KV_PREFIX_VAR.to_string(), v.clone());
        }
        if let Some(r) = &self.reparam {
            for (name, v) in r.named() {
                out.insert(format!("reparam.{name}"), v.clone());
            }
        }
        out
    }

    /// Trainable parameter count (the reparameterisation's while training).
    pub fn num_trainable(&self) -> usize {
        self.vars().values().map(|v| v.elem_count()).sum()
    }

    /// What a checkpoint holds: the trainable variables, the init they are relative to, and the
    /// folded keys and values (all a sampler needs).
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .collect();
        out.insert(KV_PREFIX_VAR.to_string(), self.kv()?.detach());
        if self.reparam.is_some() {
            out.insert("reparam.init".to_string(), self.init.clone());
        }
        Ok(out)
    }

    /// Restores what [`Self::tensors`] wrote. A file with only the folded keys and values (an
    /// agent file, e.g. from the prompt library) makes this prefix direct: enough to sample.
    pub fn restore(&mut self, ts: &HashMap<String, Tensor>, path: &std::path::Path) -> Result<()> {
        let (nl, l, c) = self.dims;
        let check = |name: &str, t: &Tensor, want: &[usize]| -> Result<()> {
            if t.dims() != want {
                return Err(Error::checkpoint(
                    path,
                    format!("{name} has shape {:?}, the config wants {want:?}", t.dims()),
                ));
            }
            Ok(())
        };
        let kv = ts.get(KV_PREFIX_VAR).ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("no {KV_PREFIX_VAR} tensor (not a prefix-mode agent?)"),
            )
        })?;
        check(KV_PREFIX_VAR, kv, &[nl, 2, l, c])?;
        match (&self.reparam, ts.contains_key("reparam.w2")) {
            (Some(r), true) => {
                let init = ts
                    .get("reparam.init")
                    .ok_or_else(|| Error::checkpoint(path, "no reparam.init tensor"))?;
                check("reparam.init", init, &[nl, 2, l, c])?;
                self.init = init.to_dtype(DType::F32)?;
                for (name, v) in r.named() {
                    let key = format!("reparam.{name}");
                    let t = ts
                        .get(&key)
                        .ok_or_else(|| Error::checkpoint(path, format!("no {key} tensor")))?;
                    check(&key, t, v.dims())?;
                    v.set(&t.to_dtype(DType::F32)?)?;
                }
            }
            _ => {
                let kv = kv.to_dtype(DType::F32)?;
                match &self.direct {
                    Some(v) => v.set(&kv)?,
                    None => self.direct = Some(Var::from_tensor(&kv)?),
                }
                self.reparam = None;
            }
        }
        Ok(())
    }
}

/// Molecules of the training set the `prior_kv` init reads.
const INIT_MOLECULES: usize = 64;

/// `(n_layer, 2, L, C)` from the prior's activations on real SMILES: slot i's values are the
/// prior's mean value, a tenth of the way towards its value at one random (molecule, position),
/// all layers alike; each head's keys solve the ridge least-squares fit `q·k/√hd ≈ score` over
/// the queries of every position read.
fn prior_kv_init(
    prior: &Gpt,
    vocab: &Vocab,
    corpus: &[String],
    l: usize,
    score: f64,
    rng: &mut Rng,
) -> Result<Tensor> {
    let cfg = prior.config();
    let (nl, c, nh) = (cfg.n_layer, cfg.n_embd, cfg.n_head);
    let hd = c / nh;
    let device: &Device = prior.device();
    // Per layer: every query read (rows of C), and every (key, value) position for the values.
    let mut queries: Vec<Vec<f32>> = vec![Vec::new(); nl];
    let mut values: Vec<Vec<Vec<f32>>> = vec![Vec::new(); nl]; // [layer][position] -> C
    let mut read = 0;
    for _ in 0..100 * INIT_MOLECULES {
        if read == INIT_MOLECULES {
            break;
        }
        let smiles = &corpus[rng.below(corpus.len())];
        let Ok(seq) = vocab.encode_with_specials(smiles) else {
            continue;
        };
        let input = &seq[..seq.len() - 1]; // BOS + tokens: positions the prior reads
        if input.len() > cfg.block_size {
            continue;
        }
        read += 1;
        let idx = Tensor::new(input, device)?.unsqueeze(0)?;
        for (layer, [q, _, v]) in prior.layer_qkv(&idx)?.into_iter().enumerate() {
            queries[layer].extend(q.flatten_all()?.to_vec1::<f32>()?);
            values[layer].extend(v.get(0)?.to_vec2::<f32>()?);
        }
    }
    if read == 0 {
        return Err(Error::config(
            "prefix.init",
            "no embedded SMILES fits the prior's vocabulary and block_size; use init = \"noise\"",
        ));
    }
    let positions = values[0].len();
    let picks: Vec<usize> = (0..l).map(|_| rng.below(positions)).collect();
    let mut out = vec![0f32; nl * 2 * l * c];
    for layer in 0..nl {
        for h in 0..nh {
            let key = fit_key(&queries[layer], c, h * hd, hd, score * (hd as f64).sqrt());
            for slot in 0..l {
                let base = ((layer * 2) * l + slot) * c + h * hd;
                for (i, &k) in key.iter().enumerate() {
                    // A little noise so that slots with the same key can part ways in training.
                    out[base + i] = (k + 0.01 * k.abs().max(0.1) * rng.normal()) as f32;
                }
            }
        }
        // Values: the prior's mean value over the positions read, moved a tenth of the way
        // towards one real position's. Attention the prefix draws then returns about what
        // the context would have given on average, even in a model whose queries score every
        // key alike (there the fitted keys cannot keep the prefix's share small).
        let mean: Vec<f32> = (0..c)
            .map(|i| values[layer].iter().map(|v| v[i]).sum::<f32>() / positions as f32)
            .collect();
        for (slot, &pos) in picks.iter().enumerate() {
            let base = ((layer * 2 + 1) * l + slot) * c;
            for i in 0..c {
                out[base + i] = mean[i] + 0.1 * (values[layer][pos][i] - mean[i]);
            }
        }
    }
    Ok(Tensor::from_vec(out, (nl, 2, l, c), device)?)
}

/// The key k (of width `hd`, at column `off` of the rows of `q`, `width` wide) minimising
/// Σ_rows (q·k − target)² + ε‖k‖², by the normal equations.
fn fit_key(q: &[f32], width: usize, off: usize, hd: usize, target: f64) -> Vec<f64> {
    let mut ata = vec![0f64; hd * hd];
    let mut atb = vec![0f64; hd];
    for row in q.chunks(width) {
        let r = &row[off..off + hd];
        for i in 0..hd {
            atb[i] += r[i] as f64 * target;
            for j in 0..hd {
                ata[i * hd + j] += r[i] as f64 * r[j] as f64;
            }
        }
    }
    let trace: f64 = (0..hd).map(|i| ata[i * hd + i]).sum();
    let ridge = 1e-6 * trace / hd as f64 + 1e-9;
    (0..hd).for_each(|i| ata[i * hd + i] += ridge);
    solve_spd(&mut ata, &mut atb, hd);
    atb
}

/// Solves `a x = b` for a symmetric positive definite `a` (n×n, overwritten) by Cholesky;
/// `b` becomes x.
fn solve_spd(a: &mut [f64], b: &mut [f64], n: usize) {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        let d = d.max(1e-12).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * n + k] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= a[k * n + i] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Cholesky solve recovers x from a x for a random SPD matrix; the fitted key scores a
    /// consistent set of queries at the target.
    #[test]
    fn least_squares_key() {
        let mut rng = Rng::new(1);
        let n = 5;
        let m: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] =
                    (0..n).map(|k| m[k * n + i] * m[k * n + j]).sum::<f64>() + f64::from(u8::from(i == j));
            }
        }
        let x: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let mut b: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * x[j]).sum())
            .collect();
        let mut a2 = a.clone();
        solve_spd(&mut a2, &mut b, n);
        for i in 0..n {
            assert!((b[i] - x[i]).abs() < 1e-9, "{b:?} vs {x:?}");
        }
        // Queries sharing a mean direction (as real ones do) can all be given score −6.
        let q: Vec<f32> = (0..200 * 4)
            .map(|i| (if i % 4 == 0 { 3.0 } else { 0.0 } + 0.1 * rng.normal()) as f32)
            .collect();
        let k = fit_key(&q, 4, 0, 4, -6.0);
        let scores: Vec<f64> = q
            .chunks(4)
            .map(|row| row.iter().zip(&k).map(|(a, b)| *a as f64 * b).sum())
            .collect();
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        assert!((mean + 6.0).abs() < 0.05, "{mean}");
        // The first coordinate's noise (σ 0.1 on 3) spreads the scores by about ±0.2.
        assert!(scores.iter().all(|s| (s + 6.0).abs() < 1.0), "{scores:?}");
    }
}
