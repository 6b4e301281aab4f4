//! The losses' maths, as per-token weights `w[b][t]` of one surrogate
//! `L = −Σ_b Σ_t w[b][t] · log π(x_bt)` whose gradient is the loss's: the trainer forms the weights
//! from rewards and log-likelihoods (constants of the gradient), and the policy's backward pass
//! takes them as they are. See [`crate::reinforce`] for the three losses' definitions.

/// Per-token advantages `[seq][t]` for sequences of `lens[seq]` tokens with terminal rewards
/// `rewards`: A_t = γ^(T−1−t) · (R − baseline) / scale, minus β times the discounted future sum
/// of `kl[seq][t]` (pass `beta = 0` and empty `kl` to skip it).
pub fn advantages(
    rewards: &[f64],
    lens: &[usize],
    baseline: f64,
    scale: f64,
    gamma: f64,
    beta: f64,
    kl: &[Vec<f64>],
) -> Vec<Vec<f64>> {
    rewards
        .iter()
        .zip(lens)
        .enumerate()
        .map(|(i, (&r, &len))| {
            let adv = (r - baseline) / scale;
            let mut out = vec![0.0; len];
            let mut kl_return = 0.0;
            for t in (0..len).rev() {
                if beta != 0.0 {
                    kl_return = kl[i].get(t).copied().unwrap_or(0.0) + gamma * kl_return;
                }
                out[t] = gamma.powi((len - 1 - t) as i32) * adv - beta * kl_return;
            }
            out
        })
        .collect()
}

/// Per-token weights `w[b][t] = adv[b][t] / B` of the REINFORCE loss written as the surrogate
/// `L = −Σ_b Σ_t w[b][t] · log π(x_bt)` = −(1/B) Σ_b Σ_t A_bt · log π(x_bt).
pub fn reinforce_weights(adv: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let b = adv.len().max(1) as f64;
    adv.iter()
        .map(|row| row.iter().map(|a| a / b).collect())
        .collect()
}

/// REINVENT's loss `(1/B) Σ_b (prior_ll[b] + σ·R[b] − agent_ll[b])²` for sequence
/// log-likelihoods, plus Olivecrona's regulariser `λ·(1/B) Σ_b −1/agent_ll[b]` (λ =
/// `likelihood_penalty`; 0 leaves the plain loss), and its per-token surrogate weights (as in
/// [`reinforce_weights`]): every token of sequence b gets the loss's derivative with respect to
/// `−log π` of that token, `(2/B)·(prior_ll[b] + σ·R[b] − agent_ll[b]) − λ/(B·agent_ll[b]²)`.
/// `lens[b]`: tokens of sequence b.
pub fn reinvent_weights(
    agent_ll: &[f64],
    prior_ll: &[f64],
    rewards: &[f64],
    sigma: f64,
    likelihood_penalty: f64,
    lens: &[usize],
) -> (f64, Vec<Vec<f64>>) {
    let b = agent_ll.len().max(1) as f64;
    // A sequence log-likelihood is negative; the floor keeps 1/ll finite for a certain one.
    let ll_floor = |a: f64| a.min(-1e-6);
    let gaps: Vec<f64> = agent_ll
        .iter()
        .zip(prior_ll)
        .zip(rewards)
        .map(|((a, p), r)| p + sigma * r - a)
        .collect();
    let penalty = likelihood_penalty * agent_ll.iter().map(|&a| -1.0 / ll_floor(a)).sum::<f64>() / b;
    let loss = gaps.iter().map(|g| g * g).sum::<f64>() / b + penalty;
    let weights = gaps
        .iter()
        .zip(agent_ll)
        .zip(lens)
        .map(|((g, &a), &l)| {
            let w = 2.0 * g / b - likelihood_penalty / (b * ll_floor(a).powi(2));
            vec![w; l]
        })
        .collect();
    (loss, weights)
}

/// Per-row sums: sequence log-likelihoods from per-token log-probs.
pub fn row_sums(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().map(|r| r.iter().sum()).collect()
}

/// DPG's per-token weights: the batch's self-normalised importance weights towards the tilted
/// prior P(x) ∝ p_prior(x)·exp(R(x)/β), `q_b = softmax_b(prior_ll[b] + R[b]/β − agent_ll[b])`,
/// minus their mean 1/B, on every token of sequence b. The loss `−Σ_b (q_b − 1/B) log π(x_b)` is
/// a weighted maximum likelihood; the weights are constants of the gradient, and subtracting 1/B
/// is a baseline (E_π[∇ log π] = 0; Korbak et al. 2022): it leaves the expected gradient as is but
/// pushes down the samples P wants less of instead of leaving them out, which cuts the variance
/// when a few samples carry most of the weight. At the target, π = P, all weights are 0.
/// Returns the loss value, the weights and the effective sample size `1 / Σ q_b²`.
pub fn dpg_weights(
    agent_ll: &[f64],
    prior_ll: &[f64],
    rewards: &[f64],
    beta: f64,
    lens: &[usize],
) -> (f64, Vec<Vec<f64>>, f64) {
    let log_w: Vec<f64> = agent_ll
        .iter()
        .zip(prior_ll)
        .zip(rewards)
        .map(|((a, p), r)| p + r / beta - a)
        .collect();
    let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let unnorm: Vec<f64> = log_w.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = unnorm.iter().sum();
    let q: Vec<f64> = unnorm.iter().map(|u| u / total).collect();
    let ess = 1.0 / q.iter().map(|q| q * q).sum::<f64>();
    let mean = 1.0 / q.len().max(1) as f64;
    let w: Vec<f64> = q.iter().map(|q| q - mean).collect();
    let loss = -w.iter().zip(agent_ll).map(|(w, a)| w * a).sum::<f64>();
    let weights = w.iter().zip(lens).map(|(&w, &l)| vec![w; l]).collect();
    (loss, weights, ess)
}

/// Value of the surrogate `−Σ_b Σ_t w[b][t] · logp[b][t]`.
pub fn surrogate_loss(weights: &[Vec<f64>], logp: &[Vec<f64>]) -> f64 {
    -weights
        .iter()
        .zip(logp)
        .map(|(w, l)| w.iter().zip(l).map(|(w, l)| w * l).sum::<f64>())
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var, D};

    /// Log-probs `(N, 1)` of `ids` under softmax(z), z `(1, K)`.
    fn gathered(z: &Var, ids: &[u32]) -> Tensor {
        let lp = candle_nn::ops::log_softmax(z.as_tensor(), D::Minus1).unwrap(); // (1, K)
        let idx = Tensor::new(ids, &Device::Cpu).unwrap();
        lp.squeeze(0)
            .unwrap()
            .index_select(&idx, 0)
            .unwrap()
            .unsqueeze(1)
            .unwrap()
    }

    fn grad_of(z: &Var, loss: &Tensor) -> Vec<f64> {
        let g = loss.backward().unwrap();
        g.get(z)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// The REINFORCE loss −(1/B) Σ_b Σ_t adv[b][t] · logp[b][t] as a candle graph, from
    /// [`reinforce_weights`], for log-probs `(N, 1)`.
    fn reinforce_loss(logp: &Tensor, adv: &[Vec<f64>]) -> Tensor {
        let w: Vec<f32> = reinforce_weights(adv).iter().map(|r| r[0] as f32).collect();
        let w = Tensor::from_vec(w, logp.dims(), &Device::Cpu).unwrap();
        (logp * w).unwrap().sum_all().unwrap().neg().unwrap()
    }

    /// On a categorical policy over 4 tokens with reward 1 on token 0, the REINFORCE loss's
    /// gradient equals the closed form ∂(−E[R])/∂z_j = −p₀(δ₀ⱼ − pⱼ): exactly when the
    /// expectation is enumerated, within Monte-Carlo error with 20k samples and a mean baseline;
    /// and a gradient step raises p₀.
    #[test]
    fn reinforce_gradient_matches_closed_form() {
        let z = Var::from_vec(vec![0.3f32, -0.2, 0.5, 0.1], (1, 4), &Device::Cpu).unwrap();
        let p: Vec<f64> = candle_nn::ops::softmax(z.as_tensor(), D::Minus1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        let reward = |k: usize| if k == 0 { 1.0 } else { 0.0 };
        let expected: Vec<f64> = (0..4)
            .map(|j| -p[0] * (if j == 0 { 1.0 } else { 0.0 } - p[j]))
            .collect();

        // Exact expectation: each token once, advantage weighted by its probability (× K for the 1/B).
        let ids: Vec<u32> = (0..4).collect();
        let adv: Vec<Vec<f64>> = (0..4).map(|k| vec![4.0 * p[k] * reward(k)]).collect();
        let g = grad_of(&z, &reinforce_loss(&gathered(&z, &ids), &adv));
        for j in 0..4 {
            assert!(
                (g[j] - expected[j]).abs() < 1e-6,
                "exact {j}: {} vs {}",
                g[j],
                expected[j]
            );
        }

        // Monte Carlo with a batch-mean baseline.
        let mut rng = model::rng::Rng::new(7);
        let n = 20_000;
        let ids: Vec<u32> = (0..n)
            .map(|_| {
                let mut u = rng.next_f64();
                let mut k = 0;
                while k < 3 && u >= p[k] {
                    u -= p[k];
                    k += 1;
                }
                k as u32
            })
            .collect();
        let rewards: Vec<f64> = ids.iter().map(|&k| reward(k as usize)).collect();
        let mean = rewards.iter().sum::<f64>() / n as f64;
        let adv = advantages(&rewards, &vec![1; n], mean, 1.0, 1.0, 0.0, &[]);
        let g = grad_of(&z, &reinforce_loss(&gathered(&z, &ids), &adv));
        for j in 0..4 {
            assert!(
                (g[j] - expected[j]).abs() < 0.01,
                "mc {j}: {} vs {}",
                g[j],
                expected[j]
            );
        }
        assert!(g[0] < 0.0 && g[1..].iter().all(|&x| x > 0.0)); // descent raises z₀, lowers the rest
        let z_new = (z.as_tensor()
            - Tensor::from_vec(
                g.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                (1, 4),
                &Device::Cpu,
            )
            .unwrap())
        .unwrap();
        let p_new: Vec<f32> = candle_nn::ops::softmax(&z_new, D::Minus1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(p_new[0] as f64 > p[0] + 0.01, "{} vs {}", p_new[0], p[0]);
    }

    /// Discounting runs from the end of the sequence; the KL term is a discounted future sum.
    #[test]
    fn advantages_closed_form() {
        let a = advantages(&[1.0, 0.0], &[3, 2], 0.5, 2.0, 0.9, 0.0, &[]);
        let close = |x: f64, y: f64| assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        close(a[0][2], 0.25);
        close(a[0][1], 0.9 * 0.25);
        close(a[0][0], 0.81 * 0.25);
        close(a[1][1], -0.25);
        let kl = vec![vec![0.1, 0.2]];
        let b = advantages(&[0.0], &[2], 0.0, 1.0, 0.5, 2.0, &kl);
        close(b[0][1], -2.0 * 0.2);
        close(b[0][0], -2.0 * (0.1 + 0.5 * 0.2));
    }

    /// DPG's weights are the softmax of log p + R/β − log π, less its mean 1/B; at the target
    /// π ∝ p·exp(R/β) they are all 0, whatever the normaliser.
    #[test]
    fn dpg_weights_closed_form() {
        let prior = [-10.0, -12.0, -9.0];
        let rewards = [0.9, 0.5, 0.0];
        let beta = 0.1;
        let agent = prior; // π = p: weights ∝ exp(R/β)
        let (_, w, ess) = dpg_weights(&agent, &prior, &rewards, beta, &[2, 1, 3]);
        let z: f64 = rewards.iter().map(|r| (r / beta).exp()).sum();
        for (b, r) in rewards.iter().enumerate() {
            assert!((w[b][0] - ((r / beta).exp() / z - 1.0 / 3.0)).abs() < 1e-12);
        }
        assert_eq!([w[0].len(), w[1].len(), w[2].len()], [2, 1, 3]);
        assert!(ess > 1.0 && ess < 3.0);
        let at_target: Vec<f64> = prior
            .iter()
            .zip(&rewards)
            .map(|(p, r)| p + r / beta - 7.3)
            .collect();
        let (_, w, ess) = dpg_weights(&at_target, &prior, &rewards, beta, &[1, 1, 1]);
        assert!(w.iter().all(|row| row[0].abs() < 1e-12));
        assert!((ess - 3.0).abs() < 1e-9);
    }

    /// Sampled DPG updates on a 4-way categorical policy converge to the tilted prior
    /// p·exp(R/β)/Z (computed in closed form), keeping mass on every rewarded outcome.
    #[test]
    fn dpg_converges_to_tilted_prior() {
        let prior = [0.4f64, 0.3, 0.2, 0.1];
        let rewards = [0.0f64, 0.5, 0.6, 0.6];
        let beta = 0.2f64;
        let z: f64 = prior
            .iter()
            .zip(&rewards)
            .map(|(p, r)| p * (r / beta).exp())
            .sum();
        let target: Vec<f64> = prior
            .iter()
            .zip(&rewards)
            .map(|(p, r)| p * (r / beta).exp() / z)
            .collect();
        let mut logits: Vec<f64> = prior.iter().map(|p| p.ln()).collect();
        let mut rng = model::rng::Rng::new(11);
        let softmax = |l: &[f64]| {
            let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = l.iter().map(|x| (x - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| x / s).collect::<Vec<_>>()
        };
        for _ in 0..400 {
            let pi = softmax(&logits);
            let xs: Vec<usize> = (0..256)
                .map(|_| {
                    let u = rng.next_f64();
                    pi.iter()
                        .scan(0.0, |c, p| {
                            *c += p;
                            Some(*c)
                        })
                        .position(|c| u < c)
                        .unwrap_or(3)
                })
                .collect();
            let agent: Vec<f64> = xs.iter().map(|&x| pi[x].ln()).collect();
            let pr: Vec<f64> = xs.iter().map(|&x| prior[x].ln()).collect();
            let r: Vec<f64> = xs.iter().map(|&x| rewards[x]).collect();
            let (_, w, _) = dpg_weights(&agent, &pr, &r, beta, &vec![1; xs.len()]);
            // Gradient ascent on Σ_i w_i log π(x_i): d/dz_k = Σ_i w_i (1[x_i = k] − π_k).
            let mut g = [0.0; 4];
            for (i, &x) in xs.iter().enumerate() {
                for k in 0..4 {
                    g[k] += w[i][0] * (f64::from(u8::from(x == k)) - pi[k]);
                }
            }
            logits.iter_mut().zip(g).for_each(|(l, g)| *l += 0.5 * g);
        }
        let pi = softmax(&logits);
        for k in 0..4 {
            assert!((pi[k] - target[k]).abs() < 0.03, "{k}: {:?} vs {target:?}", pi);
        }
    }

    /// REINVENT's loss is the mean squared gap to the augmented likelihood; each token's weight
    /// is the loss's derivative with respect to −log π of that token, (2/B)·gap.
    #[test]
    fn reinvent_loss_and_weights() {
        let (l, w) = reinvent_weights(&[-10.0, -20.0], &[-12.0, -18.0], &[0.5, 0.0], 8.0, 0.0, &[3, 2]);
        // Gaps −12 + 4 + 10 = 2 and −18 + 20 = 2: loss (4 + 4)/2, weights (2/2)·2.
        assert!((l - 4.0).abs() < 1e-12, "{l}");
        assert_eq!(w, vec![vec![2.0; 3], vec![2.0; 2]]);
        // Finite difference of the loss in agent_ll[0] (= −Σ of its −log π terms).
        let h = 1e-6;
        let (l2, _) = reinvent_weights(
            &[-10.0 - h, -20.0],
            &[-12.0, -18.0],
            &[0.5, 0.0],
            8.0,
            0.0,
            &[3, 2],
        );
        assert!(((l2 - l) / h - w[0][0]).abs() < 1e-4);
    }

    /// The likelihood regulariser adds λ·mean(−1/ll) to the loss and −λ/(B·ll²) to every token's
    /// weight: a nearly certain sequence is pushed down hardest.
    #[test]
    fn reinvent_likelihood_penalty() {
        let agent = [-10.0, -2.0];
        let prior = [-12.0, -18.0];
        let (l, w) = reinvent_weights(&agent, &prior, &[0.5, 0.0], 8.0, 100.0, &[3, 2]);
        // Gaps 2 and −16: (4 + 256)/2 = 130; penalty 100·(1/10 + 1/2)/2 = 30.
        assert!((l - 160.0).abs() < 1e-9, "{l}");
        // Weights: (2/2)·2 − 100/(2·100) = 1.5; (2/2)·(−16) − 100/(2·4) = −28.5.
        assert!(
            (w[0][0] - 1.5).abs() < 1e-12 && (w[1][1] + 28.5).abs() < 1e-12,
            "{w:?}"
        );
        // Each weight is −∂loss/∂agent_ll (a token's −log π moves agent_ll by −1).
        for i in 0..2 {
            let h = 1e-6;
            let mut moved = agent;
            moved[i] -= h;
            let (l2, _) = reinvent_weights(&moved, &prior, &[0.5, 0.0], 8.0, 100.0, &[3, 2]);
            assert!(((l2 - l) / h - w[i][0]).abs() < 1e-3, "{i}: {}", (l2 - l) / h);
        }
    }
}
