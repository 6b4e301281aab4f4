//! Augmented Memory (Guo & Schwaller, "Augmented Memory: Sample-Efficient Generative Molecular
//! Design with Reinforcement Learning", JACS Au 2024): after each step's REINVENT update, a few
//! more updates on the step's batch and the whole replay memory, each molecule written as a new
//! randomized SMILES. A molecule has many SMILES; training on several of them for one oracle call
//! gets more learning out of each call.

use model::grammar::SmilesGrammar;
use model::Vocab;
use rayon::prelude::*;

/// One molecule to rewrite.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// Its SMILES, if it is a molecule (an invalid sample has none).
    pub molecule: Option<&'a str>,
    /// The string as sampled, BOS first: the fallback when no randomized string is admitted
    /// (`None` if the vocabulary cannot write it either).
    pub as_sampled: Option<Vec<u32>>,
    /// Its reward (the randomized string names the same molecule, so it keeps it).
    pub reward: f64,
}

/// A training sequence and, under the grammar, its masks.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// BOS, the tokens, EOS.
    pub tokens: Vec<u32>,
    /// The grammar's allowed tokens at each target position (`len × V`), where it is on.
    pub masks: Option<Vec<bool>>,
}

/// `tokens` (BOS, the string, EOS) as a training sequence, if the model can be trained on it: it
/// fits in `block` tokens and, under the grammar, is a string the grammar could have sampled (a
/// memory kept from before the grammar was switched on may not be). Replay and Augmented Memory
/// both admit their sequences here.
pub fn admit(tokens: Vec<u32>, block: usize, grammar: Option<&SmilesGrammar>) -> Option<Admitted> {
    if !model::fits_block(&tokens, block) {
        return None;
    }
    match grammar {
        None => Some(Admitted { tokens, masks: None }),
        Some(g) => g.masks_along(&tokens[1..]).map(|m| Admitted {
            tokens,
            masks: Some(m),
        }),
    }
}

/// Each source as a randomized SMILES drawn from `seed` and its index, or as sampled where
/// randomizing fails or gives a string the vocabulary, `block` tokens or the grammar do not admit
/// (as Guo & Schwaller's code keeps a string its vocabulary cannot encode). `None`: neither is
/// admitted.
pub fn randomized_sequences(
    sources: &[Source],
    vocab: &Vocab,
    block: usize,
    grammar: Option<&SmilesGrammar>,
    seed: u64,
) -> Vec<Option<Admitted>> {
    sources
        .par_iter()
        .enumerate()
        .map(|(i, src)| {
            let draw = model::rng::Rng::derive(seed, i as u64).next_u64();
            src.molecule
                .and_then(|smiles| chem::randomize_smiles(smiles, draw))
                .and_then(|s| vocab.encode_with_specials(&s).ok())
                .and_then(|t| admit(t, block, grammar))
                .or_else(|| src.as_sampled.clone().and_then(|t| admit(t, block, grammar)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chem::Molecule;
    use model::TokenMode;

    const MOLECULES: &[&str] = &[
        "CC(=O)Oc1ccccc1C(=O)O",
        "O=S(=O)(Nc1ncccn1)c1ccc(N)cc1",
        "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
        "CCN(CC)CCNC(=O)c1ccc(N)cc1",
    ];

    fn vocab() -> Vocab {
        Vocab::from_corpus(
            MOLECULES.iter().copied().chain(["C1CC2CC3CC4CC5CC6CC7CC8CC9CC1"]),
            TokenMode::Char,
        )
    }

    fn sources<'a>(vocab: &Vocab, smiles: &[&'a str]) -> Vec<Source<'a>> {
        smiles
            .iter()
            .enumerate()
            .map(|(i, s)| Source {
                molecule: Molecule::parse(s).is_some().then_some(*s),
                as_sampled: vocab.encode_with_specials(s).ok(),
                reward: i as f64,
            })
            .collect()
    }

    #[test]
    fn rewrites_each_molecule_as_another_string_of_it() {
        let vocab = vocab();
        let srcs = sources(&vocab, MOLECULES);
        let mut changed = 0;
        for round in 0..5 {
            let out = randomized_sequences(&srcs, &vocab, 200, None, round);
            for (a, smiles) in out.iter().zip(MOLECULES) {
                let a = a.as_ref().expect("admitted");
                assert_eq!(a.tokens.first(), Some(&model::BOS));
                assert_eq!(a.tokens.last(), Some(&model::EOS));
                let written = vocab.decode(&a.tokens);
                let same = Molecule::parse(&written).expect("a molecule").canonical_smiles();
                assert_eq!(
                    same,
                    Molecule::parse(smiles).unwrap().canonical_smiles(),
                    "{written}"
                );
                changed += usize::from(written != *smiles);
            }
        }
        // 20 rewrites of molecules with 13–26 atoms: nearly all differ from the input.
        assert!(changed >= 15, "only {changed} of 20 rewritten");
        // The same seed gives the same strings.
        assert_eq!(
            randomized_sequences(&srcs, &vocab, 200, None, 7),
            randomized_sequences(&srcs, &vocab, 200, None, 7)
        );
    }

    #[test]
    fn keeps_the_sampled_string_when_no_rewrite_is_admitted() {
        let vocab = vocab();
        // An invalid string keeps its tokens. CCO is 4 tokens with EOS; a rewrite starting at the
        // middle atom (C(C)O) is 6, so under a block of 4 only the 4-token strings get through.
        let srcs = sources(&vocab, &["CC(C", "CCO"]);
        let out = randomized_sequences(&srcs, &vocab, 200, None, 1);
        assert_eq!(
            out[0].as_ref().unwrap().tokens,
            vocab.encode_with_specials("CC(C").unwrap()
        );
        for seed in 0..20 {
            let short = randomized_sequences(&srcs, &vocab, 4, None, seed);
            let tokens = &short[1].as_ref().unwrap().tokens;
            assert_eq!(tokens.len(), 5);
            assert!(["CCO", "OCC"].contains(&vocab.decode(tokens).as_str()));
        }
        // Under a block shorter than any string of the molecule, neither is admitted; a molecule
        // the vocabulary cannot write (no B, no r) is dropped.
        let none = randomized_sequences(&srcs, &vocab, 2, None, 1);
        assert!(none[0].is_none() && none[1].is_none());
        let brominated = [Source {
            molecule: Some("CCBr"),
            as_sampled: None,
            reward: 1.0,
        }];
        assert_eq!(
            randomized_sequences(&brominated, &vocab, 200, None, 1),
            vec![None]
        );
    }

    #[test]
    fn under_the_grammar_every_string_comes_with_its_masks() {
        let vocab = vocab();
        let grammar = SmilesGrammar::new(&vocab);
        let srcs = sources(&vocab, MOLECULES);
        for a in randomized_sequences(&srcs, &vocab, 200, Some(&grammar), 3) {
            let a = a.unwrap();
            assert_eq!(a.masks, grammar.masks_along(&a.tokens[1..]));
            assert!(a.masks.is_some());
        }
    }
}
