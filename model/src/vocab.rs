//! SMILES tokenizer and vocabulary.
//!
//! Ids 0, 1, 2 are the special tokens PAD, BOS and EOS; the corpus tokens follow in sorted order,
//! so the same corpus always gives the same ids. Two modes:
//! - [`TokenMode::Char`] (default): every character is a token.
//! - [`TokenMode::Atom`]: like MolGPT's regex tokenizer, bracket atoms (`[nH+]`), the two-letter
//!   organic-subset elements `Cl` and `Br`, and two-digit ring closures (`%10`) are single tokens.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Padding id (also the ignore index of the loss).
pub const PAD: u32 = 0;
/// Beginning-of-sequence id: every sequence starts with it.
pub const BOS: u32 = 1;
/// End-of-sequence id: generation stops after it.
pub const EOS: u32 = 2;
const SPECIALS: [&str; 3] = ["<pad>", "<bos>", "<eos>"];

/// How a SMILES string is split into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenMode {
    /// One token per character.
    #[default]
    Char,
    /// Bracket atoms, `Cl`, `Br` and `%NN` ring closures are single tokens.
    Atom,
}

impl TokenMode {
    /// Splits `smiles` into token strings (slices of the input).
    pub fn split<'a>(&self, smiles: &'a str) -> Vec<&'a str> {
        let mut out = Vec::with_capacity(smiles.len());
        let mut rest = smiles;
        while let Some(c) = rest.chars().next() {
            let n = match self {
                TokenMode::Char => c.len_utf8(),
                TokenMode::Atom => match c {
                    '[' => rest.find(']').map_or(1, |i| i + 1),
                    'C' if rest[1..].starts_with('l') => 2,
                    'B' if rest[1..].starts_with('r') => 2,
                    '%' if rest.len() >= 3 && rest.as_bytes()[1..3].iter().all(u8::is_ascii_digit) => 3,
                    _ => c.len_utf8(),
                },
            };
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }
}

/// The token vocabulary: specials, then the corpus tokens in sorted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    mode: TokenMode,
    tokens: Vec<String>, // id -> token, specials included
    index: HashMap<String, u32>,
}

/// On-disk form of a [`Vocab`] (`vocab.json`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    mode: TokenMode,
    /// All tokens by id, the three specials first.
    tokens: Vec<String>,
}

impl Vocab {
    /// Builds the vocabulary of every token occurring in `corpus`.
    pub fn from_corpus<'a>(corpus: impl IntoIterator<Item = &'a str>, mode: TokenMode) -> Self {
        let mut set = std::collections::BTreeSet::new();
        for s in corpus {
            for t in mode.split(s) {
                if !set.contains(t) {
                    set.insert(t.to_string());
                }
            }
        }
        Self::from_tokens(mode, set.into_iter())
    }

    fn from_tokens(mode: TokenMode, corpus_tokens: impl Iterator<Item = String>) -> Self {
        let tokens: Vec<String> = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(corpus_tokens)
            .collect();
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self { mode, tokens, index }
    }

    /// Number of ids, specials included (the model's `vocab_size`).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when the vocabulary holds only the specials.
    pub fn is_empty(&self) -> bool {
        self.tokens.len() == SPECIALS.len()
    }

    /// The tokenizer mode.
    pub fn mode(&self) -> TokenMode {
        self.mode
    }

    /// The token string of `id` (specials as `<pad>`, `<bos>`, `<eos>`).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Token ids of `smiles`, without BOS/EOS; fails naming the first unknown token.
    pub fn encode(&self, smiles: &str) -> Result<Vec<u32>> {
        self.mode
            .split(smiles)
            .into_iter()
            .map(|t| match self.index.get(t) {
                Some(&id) if id > EOS => Ok(id),
                _ => Err(Error::UnknownToken {
                    token: t.to_string(),
                    smiles: smiles.to_string(),
                }),
            })
            .collect()
    }

    /// `[BOS] + encode(smiles) + [EOS]`.
    pub fn encode_with_specials(&self, smiles: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(smiles.len() + 2);
        ids.push(BOS);
        ids.extend(self.encode(smiles)?);
        ids.push(EOS);
        Ok(ids)
    }

    /// The SMILES of `ids`: stops at the first EOS, skips PAD and BOS.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut s = String::with_capacity(ids.len());
        for &id in ids {
            match id {
                EOS => break,
                PAD | BOS => {}
                _ => s.push_str(self.token(id).unwrap_or("?")),
            }
        }
        s
    }

    /// JSON text of the vocabulary.
    pub fn to_json(&self) -> String {
        let f = VocabFile {
            mode: self.mode,
            tokens: self.tokens.clone(),
        };
        serde_json::to_string_pretty(&f).expect("vocab serialises")
    }

    /// Parses [`Vocab::to_json`] output; checks the specials and that tokens are unique.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let f: VocabFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if f.tokens.len() < SPECIALS.len() || f.tokens[..SPECIALS.len()] != SPECIALS {
            return Err(format!("the first tokens must be {SPECIALS:?}"));
        }
        let v = Self::from_tokens(f.mode, f.tokens.into_iter().skip(SPECIALS.len()));
        if v.index.len() != v.tokens.len() {
            return Err("duplicate tokens".into());
        }
        Ok(v)
    }

    /// Writes `vocab.json`-style JSON to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::checkpoint::write_atomic(path, self.to_json().as_bytes())
    }

    /// Reads a vocabulary written by [`Vocab::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| Error::checkpoint(path, e))
    }
}

/// A corpus encoded with a vocabulary, and what had to be left out.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The vocabulary used (built from the corpus unless one was given).
    pub vocab: Vocab,
    /// `[BOS] + tokens + [EOS]` per kept molecule, in corpus order.
    pub seqs: Vec<Vec<u32>>,
    /// Molecules dropped because they hold a token outside a given vocabulary.
    pub skipped_unknown: usize,
    /// Molecules dropped because `[BOS] + tokens` exceeds `max_tokens`.
    pub skipped_too_long: usize,
    /// Empty lines dropped.
    pub skipped_empty: usize,
}

/// Whether `seq` (BOS, tokens, EOS) fits a context of `block` tokens: the model's input is the
/// sequence less its last token, so EOS needs no slot of its own.
pub fn fits_block(seq: &[u32], block: usize) -> bool {
    seq.len() - 1 <= block
}

impl Corpus {
    /// Encodes `smiles` with `vocab`, or with a vocabulary built from `smiles` when `vocab` is
    /// `None` (then nothing is skipped as unknown). Sequences whose model input (`BOS` + tokens)
    /// is longer than `max_tokens` are skipped too, so every kept one fits a context of that size.
    pub fn build(smiles: &[String], vocab: Option<Vocab>, mode: TokenMode, max_tokens: usize) -> Self {
        let vocab = vocab.unwrap_or_else(|| Vocab::from_corpus(smiles.iter().map(|s| s.trim()), mode));
        let (mut unknown, mut long, mut empty) = (0, 0, 0);
        let mut seqs = Vec::with_capacity(smiles.len());
        for s in smiles {
            let s = s.trim();
            if s.is_empty() {
                empty += 1;
                continue;
            }
            match vocab.encode_with_specials(s) {
                Ok(ids) if !fits_block(&ids, max_tokens) => long += 1,
                Ok(ids) => seqs.push(ids),
                Err(_) => unknown += 1,
            }
        }
        Self {
            vocab,
            seqs,
            skipped_unknown: unknown,
            skipped_too_long: long,
            skipped_empty: empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moses_sample() -> Vec<String> {
        let text = include_str!("../../tests/data/moses_test_sample.smi");
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn char_round_trip_on_moses_sample() {
        let smiles = moses_sample();
        assert_eq!(smiles.len(), 1000);
        let v = Vocab::from_corpus(smiles.iter().map(String::as_str), TokenMode::Char);
        assert_eq!(v.token(PAD), Some("<pad>"));
        for s in &smiles {
            let ids = v.encode_with_specials(s).unwrap();
            assert_eq!(ids.len(), s.chars().count() + 2);
            assert_eq!(&v.decode(&ids), s);
        }
        let v2 = Vocab::from_json(&v.to_json()).unwrap();
        assert_eq!(v, v2);
    }

    #[test]
    fn atom_mode_tokens_and_round_trip() {
        let m = TokenMode::Atom;
        assert_eq!(
            m.split("ClC[nH+]Br%12c1"),
            ["Cl", "C", "[nH+]", "Br", "%12", "c", "1"]
        );
        let smiles = moses_sample();
        let v = Vocab::from_corpus(smiles.iter().map(String::as_str), m);
        for s in &smiles {
            assert_eq!(&v.decode(&v.encode_with_specials(s).unwrap()), s);
        }
        assert!(v.index.contains_key("Cl") && !v.index.contains_key("l"));
    }

    #[test]
    fn unknown_char_is_named_and_counted() {
        let v = Vocab::from_corpus(["CCO", "c1ccccc1"], TokenMode::Char);
        let err = v.encode("CCN").unwrap_err().to_string();
        assert!(err.contains("\"N\""), "{err}");
        let corpus: Vec<String> = ["CCO", "CCN", "", "c1ccccc1", "CCCCCCCCCC"]
            .map(String::from)
            .into();
        let c = Corpus::build(&corpus, Some(v), TokenMode::Char, 9);
        assert_eq!(
            (
                c.seqs.len(),
                c.skipped_unknown,
                c.skipped_empty,
                c.skipped_too_long
            ),
            (2, 1, 1, 1)
        );
        assert!(Vocab::from_json("{\"mode\":\"char\",\"tokens\":[\"C\"]}").is_err());
    }
}
