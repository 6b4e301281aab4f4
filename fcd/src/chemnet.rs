//! ChemNet (Preuer et al. 2018) as fcd_torch 1.0.7 runs it, up to its penultimate layer: SMILES
//! one-hot (35 symbols, 350 positions, scaled by 1/35) → Conv1d 35→32 (kernel 4, stride 2, Keras
//! "same" padding as fcd_torch computes it) → SELU → Conv1d 32→32 → SELU → LSTM 32→128 over the
//! reversed sequence → LSTM 128→512 over the reversed outputs → the last hidden state (512).
//! Every molecule runs all 88 positions, padding included, exactly as fcd_torch pads it.

use std::path::Path;

use candle_core::pickle::Object;
use fastmath::exp_fast;
use rayon::prelude::*;

use crate::torch_file::LegacyTorchFile;
use crate::Error;

/// fcd_torch's symbol table; symbols not in it map to `X`, `.` ends the string.
const VOCAB: [&str; 35] = [
    "C", "N", "O", "H", "F", "Cl", "P", "B", "Br", "S", "I", "Si", "#", "(", ")", "+", "-", "1", "2", "3",
    "4", "5", "6", "7", "8", "=", "[", "]", "@", "c", "n", "o", "s", "X", ".",
];
const N_SYMBOLS: usize = VOCAB.len();
/// Positions of the one-hot input.
pub const PAD_LEN: usize = 350;
const CONV_CHANNELS: usize = 32;
const KERNEL: usize = 4;
/// Length after the first convolution: padding (1, 1), stride 2.
const LEN1: usize = (PAD_LEN + 2 - KERNEL) / 2 + 1;
/// Length after the second: 175 is odd, so fcd_torch pads (1, 2).
const LEN2: usize = (LEN1 + 3 - KERNEL) / 2 + 1;
/// Width of the activations FCD uses.
pub const ACTIVATION_DIM: usize = 512;
/// Molecules per gemm in the recurrent layers (one rayon task each).
const CHUNK: usize = 256;

/// fcd_torch's `get_one_hot`, as symbol indices: a symbol is two characters when the second is
/// `r`, `i` or `l`; the first `.` ends the string (later fragments are dropped, as there); at most
/// 349 symbols, then the terminating `.`.
pub fn symbol_indices(smiles: &str) -> Vec<u8> {
    let index = |sym: &str| VOCAB.iter().position(|v| *v == sym).unwrap_or(N_SYMBOLS - 2) as u8;
    let chars: Vec<char> = smiles.chars().chain(std::iter::once('.')).collect();
    let mut out = Vec::new();
    let mut src = 0;
    // An empty string has no symbol; fcd_torch would fail on it, we give it the terminator alone.
    if chars[0] == '.' {
        return vec![index(".")];
    }
    loop {
        let two = matches!(chars.get(src + 1), Some('r' | 'i' | 'l'));
        let len = if two { 2 } else { 1 };
        let sym: String = chars[src..src + len].iter().collect();
        src += len;
        out.push(index(&sym));
        if chars[src] == '.' || out.len() == PAD_LEN - 1 {
            out.push(index("."));
            return out;
        }
    }
}

struct Lstm {
    input: usize,
    hidden: usize,
    /// `[W_ih | W_hh]`, shape (4·hidden, input + hidden), gate order i, f, g, o (PyTorch's).
    weights: Vec<f32>,
    /// `b_ih + b_hh`.
    bias: Vec<f32>,
}

/// What the recurrent layers do over padding, the same for every molecule: the convolutions give
/// exact zeros past a SMILES' last symbols, and the first LSTM reads those zeros first.
struct Padding {
    /// The first LSTM's hidden and cell states after `j + 1` zero inputs, (LEN2 × 128) each.
    h1: Vec<f32>,
    c1: Vec<f32>,
    /// The second LSTM's gate input from those states, `b + W_ih·h1[j]`, (LEN2 × 2048).
    gates2: Vec<f32>,
}

/// ChemNet's weights.
pub struct ChemNet {
    /// (32, 35, 4).
    conv1: Vec<f32>,
    /// (32, 32, 4).
    conv2: Vec<f32>,
    lstm1: Lstm,
    lstm2: Lstm,
    padding: Padding,
}

fn dict_get<'a>(dict: &'a Object, key: &str) -> Option<&'a Object> {
    match dict {
        Object::Dict(items) => items
            .iter()
            .find(|(k, _)| matches!(k, Object::Unicode(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

impl ChemNet {
    /// Loads `ChemNet_v0.13_pretrained.pt` from the fcd_torch 1.0.7 wheel.
    pub fn load(path: &Path) -> Result<ChemNet, Error> {
        let file = LegacyTorchFile::read(path)?;
        let bad = |why: String| Error::Weights {
            path: path.to_path_buf(),
            why,
        };
        let layers = match &file.object {
            Object::List(layers) => layers,
            _ => return Err(bad("the saved object is not fcd_torch's layer list".into())),
        };
        // Each layer: (type, (state_dict, kwargs, other_info)).
        let mut parts = Vec::new();
        for layer in layers {
            let Object::Tuple(pair) = layer else {
                return Err(bad("a layer is not a (type, config) pair".into()));
            };
            let (Some(Object::Unicode(kind)), Some(Object::Tuple(config))) = (pair.first(), pair.get(1))
            else {
                return Err(bad("a layer is not a (type, config) pair".into()));
            };
            parts.push((kind.as_str(), config));
        }
        let kinds: Vec<&str> = parts.iter().map(|(k, _)| *k).collect();
        if kinds != ["Conv1d", "Conv1d", "LSTM", "LSTM"] {
            return Err(bad(format!(
                "layers {kinds:?}, expected ChemNet v0.13's Conv1d, Conv1d, LSTM, LSTM"
            )));
        }
        let tensor = |config: &[Object], name: &str, shape: &[usize]| -> Result<Vec<f32>, Error> {
            let reference = config
                .first()
                .and_then(|state| dict_get(state, name))
                .ok_or_else(|| bad(format!("no tensor {name}")))?;
            let (values, got) = file.tensor(name, reference)?;
            if got != shape {
                return Err(bad(format!("{name} has shape {got:?}, expected {shape:?}")));
            }
            Ok(values)
        };
        let conv1 = tensor(parts[0].1, "weight", &[CONV_CHANNELS, N_SYMBOLS, KERNEL])?;
        let conv2 = tensor(parts[1].1, "weight", &[CONV_CHANNELS, CONV_CHANNELS, KERNEL])?;
        let lstm = |config: &[Object], input: usize, hidden: usize| -> Result<Lstm, Error> {
            let w_ih = tensor(config, "weight_ih_l0", &[4 * hidden, input])?;
            let w_hh = tensor(config, "weight_hh_l0", &[4 * hidden, hidden])?;
            let b_ih = tensor(config, "bias_ih_l0", &[4 * hidden])?;
            let b_hh = tensor(config, "bias_hh_l0", &[4 * hidden])?;
            let mut weights = Vec::with_capacity(4 * hidden * (input + hidden));
            for row in 0..4 * hidden {
                weights.extend_from_slice(&w_ih[row * input..(row + 1) * input]);
                weights.extend_from_slice(&w_hh[row * hidden..(row + 1) * hidden]);
            }
            let bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
            Ok(Lstm {
                input,
                hidden,
                weights,
                bias,
            })
        };
        let lstm1 = lstm(parts[2].1, CONV_CHANNELS, 128)?;
        let lstm2 = lstm(parts[3].1, 128, ACTIVATION_DIM)?;
        let padding = Padding::new(&lstm1, &lstm2);
        Ok(ChemNet {
            conv1,
            conv2,
            lstm1,
            lstm2,
            padding,
        })
    }

    /// Penultimate-layer activations of canonical SMILES, `ACTIVATION_DIM` per molecule, in order.
    pub fn activations<S: AsRef<str> + Sync>(&self, smiles: &[S]) -> Vec<f32> {
        let symbols: Vec<Vec<u8>> = smiles.par_iter().map(|s| symbol_indices(s.as_ref())).collect();
        // Molecules of similar length share a chunk, so that few steps need the full gemm.
        let mut order: Vec<usize> = (0..smiles.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(symbols[i].len()));
        let sorted: Vec<&[u8]> = order.iter().map(|&i| symbols[i].as_slice()).collect();
        let outputs: Vec<f32> = sorted
            .par_chunks(CHUNK)
            .flat_map_iter(|chunk| self.forward(chunk))
            .collect();
        let mut activations = vec![0f32; smiles.len() * ACTIVATION_DIM];
        for (row, &i) in order.iter().enumerate() {
            activations[i * ACTIVATION_DIM..(i + 1) * ACTIVATION_DIM]
                .copy_from_slice(&outputs[row * ACTIVATION_DIM..(row + 1) * ACTIVATION_DIM]);
        }
        activations
    }

    /// Convolutions of one molecule: (LEN2 positions × 32 channels), and how many leading
    /// positions can be non-zero (the rest are exact zeros: no symbol reaches them).
    fn convolve(&self, symbols: &[u8]) -> (Vec<f32>, usize) {
        let scale = 1.0 / N_SYMBOLS as f32;
        // Output t reads inputs 2t − 1 … 2t + 2 (one column of padding on the left).
        let live1 = LEN1.min(symbols.len() / 2 + 1);
        let live2 = LEN2.min(live1 / 2 + 1);
        let mut h1 = vec![0f32; CONV_CHANNELS * LEN1]; // (channel, position)
        for o in 0..CONV_CHANNELS {
            for t in 0..live1 {
                let mut sum = 0.0;
                for k in 0..KERNEL {
                    let Some(p) = (2 * t + k).checked_sub(1) else {
                        continue;
                    };
                    if let Some(&s) = symbols.get(p) {
                        sum += self.conv1[(o * N_SYMBOLS + s as usize) * KERNEL + k] * scale;
                    }
                }
                h1[o * LEN1 + t] = selu(sum);
            }
        }
        let mut h2 = vec![0f32; LEN2 * CONV_CHANNELS]; // (position, channel)
        for t in 0..live2 {
            for o in 0..CONV_CHANNELS {
                let mut sum = 0.0;
                for c in 0..CONV_CHANNELS {
                    for k in 0..KERNEL {
                        let Some(p) = (2 * t + k).checked_sub(1) else {
                            continue;
                        };
                        if p < LEN1 {
                            sum += self.conv2[(o * CONV_CHANNELS + c) * KERNEL + k] * h1[c * LEN1 + p];
                        }
                    }
                }
                h2[t * CONV_CHANNELS + o] = selu(sum);
            }
        }
        (h2, live2)
    }

    /// Activations of one chunk of molecules (sorted longest first).
    fn forward(&self, symbols: &[&[u8]]) -> Vec<f32> {
        let b = symbols.len();
        let convs: Vec<(Vec<f32>, usize)> = symbols.iter().map(|s| self.convolve(s)).collect();
        let live = convs.iter().map(|(_, l)| *l).max().unwrap_or(1);
        let pad = &self.padding;
        let (h1, h2) = (self.lstm1.hidden, self.lstm2.hidden);
        // The first LSTM reads the convolution outputs last position first: its first
        // LEN2 − live steps see zeros for every molecule, so it starts from the padding states.
        let first = LEN2 - live;
        let mut state1 = LstmState::new(b, &self.lstm1);
        if first > 0 {
            state1.set(
                &pad.h1[(first - 1) * h1..first * h1],
                &pad.c1[(first - 1) * h1..first * h1],
            );
        }
        let mut outputs1 = vec![0f32; live * b * h1]; // steps first.., (step, molecule, hidden)
        for step in first..LEN2 {
            let t = LEN2 - 1 - step;
            state1.step(
                &self.lstm1,
                |m| &convs[m].0[t * CONV_CHANNELS..(t + 1) * CONV_CHANNELS],
                None,
            );
            state1.hidden_into(&mut outputs1[(step - first) * b * h1..(step - first + 1) * b * h1]);
        }
        // The second reads the first's outputs reversed again, and keeps its last state. From
        // step `live` on, its input is the padding trajectory, the same for every molecule.
        let mut state2 = LstmState::new(b, &self.lstm2);
        for step in 0..LEN2 {
            let s = LEN2 - 1 - step;
            if step < live {
                let at = (s - first) * b * h1;
                state2.step(&self.lstm2, |m| &outputs1[at + m * h1..at + (m + 1) * h1], None);
            } else {
                state2.step(
                    &self.lstm2,
                    |_| &[],
                    Some(&pad.gates2[s * 4 * h2..(s + 1) * 4 * h2]),
                );
            }
        }
        let mut out = vec![0f32; b * h2];
        state2.hidden_into(&mut out);
        out
    }
}

impl Padding {
    fn new(lstm1: &Lstm, lstm2: &Lstm) -> Padding {
        let (h1, h2) = (lstm1.hidden, lstm2.hidden);
        let zeros = vec![0f32; lstm1.input];
        let mut state = LstmState::new(1, lstm1);
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for _ in 0..LEN2 {
            state.step(lstm1, |_| &zeros, None);
            hs.extend_from_slice(state.hidden(0));
            cs.extend_from_slice(&state.cell);
        }
        // b + W_ih·h for every padding state at once: (LEN2 × h1) · W_ihᵀ.
        let mut gates2 = Vec::with_capacity(LEN2 * 4 * h2);
        for _ in 0..LEN2 {
            gates2.extend_from_slice(&lstm2.bias);
        }
        let width = lstm2.input + h2;
        matmul_transposed_acc(&mut gates2, &hs, h1, &lstm2.weights, width, LEN2, 4 * h2, h1);
        Padding {
            h1: hs,
            c1: cs,
            gates2,
        }
    }
}

/// The state of one LSTM over a batch: `[x | h]` rows ready for the fused gemm, and the cells.
struct LstmState {
    batch: usize,
    input: usize,
    hidden: usize,
    joined: Vec<f32>,
    cell: Vec<f32>,
    gates: Vec<f32>,
}

impl LstmState {
    fn new(batch: usize, lstm: &Lstm) -> LstmState {
        let width = lstm.input + lstm.hidden;
        LstmState {
            batch,
            input: lstm.input,
            hidden: lstm.hidden,
            joined: vec![0.0; batch * width],
            cell: vec![0.0; batch * lstm.hidden],
            gates: vec![0.0; batch * 4 * lstm.hidden],
        }
    }

    fn width(&self) -> usize {
        self.input + self.hidden
    }

    /// Sets every molecule's hidden and cell state.
    fn set(&mut self, h: &[f32], c: &[f32]) {
        let (n_in, width, n_h) = (self.input, self.width(), self.hidden);
        for m in 0..self.batch {
            self.joined[m * width + n_in..(m + 1) * width].copy_from_slice(h);
            self.cell[m * n_h..(m + 1) * n_h].copy_from_slice(c);
        }
    }

    fn hidden(&self, m: usize) -> &[f32] {
        let width = self.width();
        &self.joined[m * width + self.input..(m + 1) * width]
    }

    fn hidden_into(&self, out: &mut [f32]) {
        for (m, row) in out.chunks_exact_mut(self.hidden).enumerate() {
            row.copy_from_slice(self.hidden(m));
        }
    }

    /// One step. `input(m)` is molecule m's input; with `shared_input_gates` (the bias plus the
    /// input's contribution, the same for every molecule) the input is not read.
    fn step<'a>(
        &mut self,
        lstm: &Lstm,
        input: impl Fn(usize) -> &'a [f32],
        shared_input_gates: Option<&[f32]>,
    ) {
        let (n_in, n_h, width, b) = (self.input, self.hidden, self.width(), self.batch);
        match shared_input_gates {
            None => {
                for m in 0..b {
                    self.joined[m * width..m * width + n_in].copy_from_slice(input(m));
                }
                for row in self.gates.chunks_exact_mut(4 * n_h) {
                    row.copy_from_slice(&lstm.bias);
                }
                matmul_transposed_acc(
                    &mut self.gates,
                    &self.joined,
                    width,
                    &lstm.weights,
                    width,
                    b,
                    4 * n_h,
                    width,
                );
            }
            Some(shared) => {
                for row in self.gates.chunks_exact_mut(4 * n_h) {
                    row.copy_from_slice(shared);
                }
                // Only the recurrent half: h (columns n_in..) times W_hh (columns n_in..).
                matmul_transposed_acc(
                    &mut self.gates,
                    &self.joined[n_in..],
                    width,
                    &lstm.weights[n_in..],
                    width,
                    b,
                    4 * n_h,
                    n_h,
                );
            }
        }
        for m in 0..b {
            let g = &self.gates[m * 4 * n_h..(m + 1) * 4 * n_h];
            let c = &mut self.cell[m * n_h..(m + 1) * n_h];
            let h = &mut self.joined[m * width + n_in..(m + 1) * width];
            cell_update(g, c, h);
        }
    }
}

/// `c (m×n) += a (m×k) · bᵀ`, with `b` stored (n×k); `a` and `b` have row strides `a_rs` and `b_rs`
/// (≥ k), `c` is dense; single-threaded (the callers run one chunk of molecules per rayon task).
#[allow(clippy::too_many_arguments)]
fn matmul_transposed_acc(
    c: &mut [f32],
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(a_rs >= k && b_rs >= k);
    assert!(c.len() >= m * n && a.len() >= (m - 1) * a_rs + k && b.len() >= (n - 1) * b_rs + k);
    // SAFETY: the asserts keep every index the strides reach inside the slices; `c` is a
    // distinct mutable borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            b_rs as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The LSTM cell: gates (i, f, g, o) → `c = σ(f)·c + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`.
fn cell_update(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    use fastmath::simd::{level, SimdLevel};
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: `level` never exceeds what the CPU has.
        SimdLevel::Avx512 => return unsafe { cell_update_avx512(gates, c, h) },
        SimdLevel::Avx2 => return unsafe { cell_update_avx2(gates, c, h) },
        SimdLevel::Portable => {}
    }
    cell_update_body(gates, c, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn cell_update_avx512(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    cell_update_body(gates, c, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cell_update_avx2(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    cell_update_body(gates, c, h)
}

#[inline(always)]
fn cell_update_body(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    let (i, rest) = gates.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (g, o) = rest.split_at(n);
    for j in 0..n {
        c[j] = sigmoid(f[j]) * c[j] + sigmoid(i[j]) * tanh(g[j]);
        h[j] = sigmoid(o[j]) * tanh(c[j]);
    }
}

/// SELU with PyTorch's constants.
fn selu(x: f32) -> f32 {
    const ALPHA: f32 = 1.673_263_2;
    const SCALE: f32 = 1.050_701;
    if x > 0.0 {
        SCALE * x
    } else {
        SCALE * ALPHA * x.exp_m1()
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(smiles: &str) -> Vec<&'static str> {
        symbol_indices(smiles)
            .iter()
            .map(|&i| VOCAB[i as usize])
            .collect()
    }

    #[test]
    fn symbols_as_fcd_torch_splits_them() {
        assert_eq!(names("ClCBr"), ["Cl", "C", "Br", "."]);
        // Unknown symbols are X; 'Sn' is S then n (only r, i, l make two-letter symbols).
        assert_eq!(names("[Sn]Li"), ["[", "S", "n", "]", "X", "."]);
        // The first '.' ends the string.
        assert_eq!(names("CC.O"), ["C", "C", "."]);
        let long = "C".repeat(400);
        let s = symbol_indices(&long);
        assert_eq!(s.len(), PAD_LEN);
        assert_eq!(VOCAB[s[PAD_LEN - 1] as usize], ".");
    }

    #[test]
    fn fast_gates_match_std() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6, "{x}");
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "{x}");
        }
    }

    #[test]
    fn shapes_follow_fcd_torch_padding() {
        assert_eq!(LEN1, 175);
        assert_eq!(LEN2, 88);
    }
}
