//! The CD-FUDGE value model on the shipped prior (models/prior): values do not depend on the
//! batch, a fitted model predicts a held-out reward from beginnings of molecules better than the
//! mean does, it round-trips through its file, and bad files name themselves.

use std::path::Path;
use std::sync::OnceLock;

use rl::scoring::Scorer;
use rl::steer::{reward_of, steer, SteerOptions};
use rl::value_head::{ValueHead, ValueReport, ValueTraining};
use rl::{NoReferences, TuneConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn prior() -> model::Loaded {
    model::configure_cpu_env();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/prior");
    model::load_checkpoint(&dir, &model::Device::Cpu).unwrap()
}

fn scorer(toml: &str) -> Scorer {
    let cfg = TuneConfig::from_toml(
        toml,
        Path::new(env!("CARGO_MANIFEST_DIR")),
        Path::new("test.toml"),
    )
    .unwrap();
    Scorer::new(&cfg.scoring, Path::new("."), &NoReferences).unwrap()
}

/// 1 for a valid molecule with a sulfur atom: whether a beginning already has one is plain in
/// its string, so a working value model must learn much of this reward's variance.
fn sulfur() -> Scorer {
    scorer(
        "[scoring]\n[[scoring.components]]\ntype = \"required_smarts\"\nweight = 1.0\nsmarts = [\"[#16]\"]\n",
    )
}

fn training(molecules: usize, epochs: usize) -> ValueTraining {
    ValueTraining {
        molecules,
        hidden: 32,
        epochs,
        lr: 1e-3,
        batch: 64,
        sampling: model::SampleOptions {
            max_len: 100,
            ..Default::default()
        },
        seed: 5,
    }
}

#[test]
fn values_do_not_depend_on_the_rows_beside_them() {
    let run = prior();
    let head = ValueHead::new(&run.model, 16, 1).unwrap();
    let seqs: Vec<Vec<u32>> = ["CCO", "c1ccccc1C(=O)N", "C", "CC(C)(C)Oc1ccc(Cl)cc1S"]
        .iter()
        .map(|s| run.vocab.encode(s).unwrap())
        .collect();
    let together = head.values(&seqs).unwrap();
    for (s, v) in seqs.iter().zip(&together) {
        let alone = head.values(std::slice::from_ref(s)).unwrap()[0];
        assert!((alone - v).abs() < 1e-5, "{alone} vs {v}");
    }
    // A value depends on the beginning: the first and last strings differ.
    assert!((together[0] - together[3]).abs() > 1e-6);
    assert!(head.values(&[vec![]]).is_err(), "an empty beginning has no value");
}

/// A value model of [`sulfur`] fitted once for the tests that need one, with the epochs it
/// reported.
fn fitted() -> &'static (ValueHead, ValueReport, Vec<usize>) {
    static FITTED: OnceLock<(ValueHead, ValueReport, Vec<usize>)> = OnceLock::new();
    FITTED.get_or_init(|| {
        let run = prior();
        let mut epochs = Vec::new();
        let (head, report) = ValueHead::train(
            &run.model,
            &run.vocab,
            &sulfur(),
            &training(1500, 3),
            &mut |e, _| epochs.push(e),
        )
        .unwrap();
        (head, report, epochs)
    })
}

#[test]
fn a_fitted_value_model_predicts_held_out_rewards_from_beginnings() {
    let run = prior();
    let reward = sulfur();
    let (head, report, epochs) = fitted();
    assert_eq!(epochs, &[1, 2, 3]);
    assert!(report.held_out_pairs > 0 && report.train_pairs > 5 * report.held_out_pairs);
    // Against the mean reward predicted everywhere, on molecules it never saw.
    assert!(
        report.explained() > 0.25,
        "explains {:.3} (MSE {:.4} vs {:.4})",
        report.explained(),
        report.held_out_mse,
        report.constant_mse
    );
    // On whole molecules the value is the reward itself: the error is far below the variance.
    assert!(report.whole_mse < 0.5 * report.constant_mse, "{report:?}");
    // Fresh molecules: a string with sulfur is valued above one without.
    let fresh = model::sample(
        &run.model,
        &run.vocab,
        None,
        &model::SampleOptions {
            n: 300,
            seed: 77,
            max_len: 100,
            ..Default::default()
        },
    )
    .unwrap();
    let rewards = reward_of(&reward, &fresh).unwrap();
    let seqs: Vec<Vec<u32>> = fresh.iter().map(|s| s.tokens.clone()).collect();
    let values = head.values(&seqs).unwrap();
    let mean_where = |hit: bool| {
        let v: Vec<f64> = (0..fresh.len())
            .filter(|&i| (rewards[i] > 0.5) == hit)
            .map(|i| values[i])
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean_where(true) > mean_where(false) + 0.5,
        "{} vs {}",
        mean_where(true),
        mean_where(false)
    );
}

#[test]
fn a_saved_value_model_loads_the_same_and_bad_files_name_themselves() {
    let run = prior();
    let head = ValueHead::new(&run.model, 8, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value.safetensors");
    head.save(&path).unwrap();
    let back = ValueHead::load(&path, &run.model).unwrap();
    let seqs = vec![run.vocab.encode("CC(=O)Nc1ccc(O)cc1").unwrap()];
    assert_eq!(head.values(&seqs).unwrap(), back.values(&seqs).unwrap());

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not safetensors").unwrap();
    let err = ValueHead::load(&junk, &run.model).unwrap_err().to_string();
    assert!(err.contains("junk.safetensors"), "{err}");

    // A value model of another prior (n_embd 32) does not fit this one.
    let other_cfg = model::GptConfig {
        n_embd: 32,
        n_head: 2,
        ..run.config.clone()
    };
    let varmap = candle_nn::VarMap::new();
    let other = model::Gpt::init(&other_cfg, &varmap, 0, &model::Device::Cpu).unwrap();
    let other_path = dir.path().join("other.safetensors");
    ValueHead::new(&other, 8, 2).unwrap().save(&other_path).unwrap();
    let err = ValueHead::load(&other_path, &run.model).unwrap_err().to_string();
    assert!(
        err.contains("other.safetensors") && err.contains("another model"),
        "{err}"
    );
}

#[test]
fn steering_with_a_value_model_values_by_one_pass_per_continuation() {
    let run = prior();
    let reward = sulfur();
    let head = fitted().0.clone();
    let opts = |value_head| SteerOptions {
        n: 40,
        block: 10,
        candidates: 6,
        rollouts: 1,
        value_head,
        sampling: model::SampleOptions {
            batch_size: 128,
            max_len: 100,
            seed: 3,
            ..Default::default()
        },
    };
    let steered = steer(&run.model, &run.vocab, &reward, &opts(Some(head)), &mut |_| {}).unwrap();
    assert_eq!(steered.samples.len(), 40);
    let again = reward_of(&reward, &steered.samples).unwrap();
    assert_eq!(steered.rewards, again);
    let plain = model::sample(
        &run.model,
        &run.vocab,
        None,
        &model::SampleOptions {
            n: 40,
            max_len: 100,
            seed: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let plain = mean(&reward_of(&reward, &plain).unwrap());
    assert!(
        mean(&steered.rewards) > plain + 0.3,
        "steered {} plain {plain}",
        mean(&steered.rewards)
    );
}
