//! AdamW with inspectable moments (candle_nn's keeps them private, so they could not be
//! checkpointed), global-norm gradient clipping, and the warmup + cosine learning-rate schedule.

use crate::{Error, Result};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// AdamW hyper-parameters (Loshchilov & Hutter 2019; decoupled weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Learning rate (set every step by the schedule).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not to biases and LayerNorm).
    pub weight_decay: f64,
}

/// AdamW over named variables, moments kept as tensors so they can be saved and restored.
pub struct AdamW {
    params: AdamWParams,
    vars: Vec<(String, Var)>, // sorted by name
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
}

impl AdamW {
    /// An optimizer for `vars` (name → variable), moments at zero.
    pub fn new(vars: HashMap<String, Var>, params: AdamWParams) -> Result<Self> {
        let mut vars: Vec<(String, Var)> = vars.into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            params,
            vars,
            m,
            v,
            step: 0,
        })
    }

    /// Sets the learning rate for the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Updates taken so far (bias correction uses it).
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Global L2 norm of the gradients of the optimizer's variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var) {
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(sq.sqrt())
    }

    /// One AdamW update with the gradients' global norm clipped to `max_norm` (0 = no clipping).
    /// Returns the norm before clipping (NaN when not computed).
    pub fn clip_and_step(&mut self, grads: &GradStore, max_norm: f64) -> Result<f64> {
        let (norm, scale) = if max_norm > 0.0 {
            let norm = self.grad_norm(grads)?;
            (norm, if norm > max_norm { max_norm / norm } else { 1.0 })
        } else {
            (f64::NAN, 1.0)
        };
        self.step(grads, scale)?;
        Ok(norm)
    }

    /// One AdamW update with gradients multiplied by `grad_scale` (for clipping).
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let bc1 = 1.0 - p.beta1.powi(self.step as i32);
        let bc2 = 1.0 - p.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let decay = if p.weight_decay > 0.0 && var.rank() >= 2 {
                1.0 - p.lr * p.weight_decay
            } else {
                1.0
            };
            if var.device().is_cpu() && var.dtype() == DType::F32 {
                // One pass over plain slices instead of a dozen temporary tensors per variable.
                let (shape, dev) = (var.shape().clone(), var.device().clone());
                let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                let (gv, mut mv, mut vv, mut wv) =
                    (flat(g)?, flat(&self.m[i])?, flat(&self.v[i])?, flat(var)?);
                let (b1, b2, scale) = (p.beta1 as f32, p.beta2 as f32, grad_scale as f32);
                let (step_size, bc2, eps, decay) =
                    ((p.lr / bc1) as f32, bc2 as f32, p.eps as f32, decay as f32);
                for j in 0..wv.len() {
                    let g = gv[j] * scale;
                    mv[j] = b1 * mv[j] + (1.0 - b1) * g;
                    vv[j] = b2 * vv[j] + (1.0 - b2) * g * g;
                    wv[j] = wv[j] * decay - step_size * mv[j] / ((vv[j] / bc2).sqrt() + eps);
                }
                var.set(&Tensor::from_vec(wv, &shape, &dev)?)?;
                self.m[i] = Tensor::from_vec(mv, &shape, &dev)?;
                self.v[i] = Tensor::from_vec(vv, shape, &dev)?;
                continue;
            }
            let g = if grad_scale != 1.0 {
                (g * grad_scale)?
            } else {
                g.clone()
            };
            let m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let update = ((&m * (p.lr / bc1))? / ((&v / bc2)?.sqrt()? + p.eps)?)?;
            let mut w = var.as_tensor().clone();
            if decay != 1.0 {
                w = (w * decay)?;
            }
            var.set(&(w - update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Writes the moments as `m.<name>` / `v.<name>` tensors to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut ts = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            ts.insert(format!("m.{name}"), self.m[i].clone());
            ts.insert(format!("v.{name}"), self.v[i].clone());
        }
        ts.insert(
            "step".to_string(),
            Tensor::new(&[self.step as u32], &Device::Cpu)?,
        );
        candle_core::safetensors::save(&ts, path)?;
        Ok(())
    }

    /// Restores moments and step written by [`AdamW::save`]; errors name the file.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |msg: String| Error::checkpoint(path, msg);
        if !path.exists() {
            return Err(bad(
                "missing: a resume needs the optimizer state (sampling does not)".into(),
            ));
        }
        let dev = self
            .vars
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(Device::Cpu);
        let ts = candle_core::safetensors::load(path, &dev).map_err(|e| bad(e.to_string()))?;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (key, slot) in [
                (format!("m.{name}"), &mut self.m[i]),
                (format!("v.{name}"), &mut self.v[i]),
            ] {
                let t = ts.get(&key).ok_or_else(|| bad(format!("missing tensor {key}")))?;
                if t.shape() != var.shape() {
                    return Err(bad(format!(
                        "{key} has shape {:?}, expected {:?}",
                        t.shape(),
                        var.shape()
                    )));
                }
                *slot = t.clone();
            }
        }
        let step = ts.get("step").ok_or_else(|| bad("missing tensor step".into()))?;
        self.step = step.to_vec1::<u32>()?.first().copied().unwrap_or(0) as usize;
        Ok(())
    }
}

/// Linear warmup from 0 to `lr` over `warmup` steps, then cosine decay to `min_lr` at `total`
/// (constant `min_lr` after). `step` counts from 0.
pub fn lr_at(step: usize, lr: f64, min_lr: f64, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    if step >= total || total <= warmup {
        return min_lr;
    }
    let progress = (step - warmup) as f64 / (total - warmup) as f64;
    min_lr + 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (lr - min_lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_shape() {
        assert!((lr_at(0, 1.0, 0.1, 10, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 1.0, 0.1, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 1.0, 0.1, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(55, 1.0, 0.1, 10, 100) - 0.55).abs() < 1e-12);
        assert!((lr_at(500, 1.0, 0.1, 10, 100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_minimises_a_quadratic_and_round_trips() {
        let x = Var::new(&[3f32, -2.0], &Device::Cpu).unwrap();
        let params = AdamWParams {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut opt = AdamW::new(HashMap::from([("x".to_string(), x.clone())]), params).unwrap();
        for _ in 0..200 {
            let grads = x
                .as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let norm = opt.grad_norm(&grads).unwrap();
            opt.step(&grads, 1.0f64.min(1.0 / norm.max(1e-12))).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.safetensors");
        opt.save(&path).unwrap();
        let mut opt2 = AdamW::new(HashMap::from([("x".to_string(), x.clone())]), params).unwrap();
        opt2.load(&path).unwrap();
        assert_eq!(opt2.step_count(), 200);
        assert_eq!(
            opt2.m[0].to_vec1::<f32>().unwrap(),
            opt.m[0].to_vec1::<f32>().unwrap()
        );
    }
}
