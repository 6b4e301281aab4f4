//! End-to-end smoke run: `cargo run -p model --release --example pretrain_small -- OUT_DIR`.
//! Pretrains a small model on the bundled 1,000 MOSES SMILES, then samples from the checkpoint.

use model::{load_checkpoint, pretrain, sample, Device, GptConfig, PretrainOptions, SampleOptions};

fn main() -> model::Result<()> {
    model::configure_cpu_env();
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/smirl-prior".into());
    let smiles: Vec<String> = include_str!("../../tests/data/moses_test_sample.smi")
        .lines()
        .map(String::from)
        .collect();
    let opts = PretrainOptions {
        model: GptConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block_size: 64,
            ..Default::default()
        },
        out_dir: out.into(),
        max_steps: 150,
        warmup_steps: 20,
        eval_interval: 50,
        log_interval: 25,
        checkpoint_interval: 50,
        val_fraction: 0.05,
        resume: true,
        ..Default::default()
    };
    let rep = pretrain(&opts, &smiles, &Device::Cpu)?;
    println!(
        "steps {}..{}  params {}  train {} val {}  skipped {:?}",
        rep.start_step, rep.step, rep.n_params, rep.n_train, rep.n_val, rep.skipped
    );
    println!("val loss {:?}  {:.0} tokens/s", rep.val_loss, rep.tokens_per_s);
    let run = load_checkpoint(&rep.out_dir, &Device::Cpu)?;
    let mols = sample(
        &run.model,
        &run.vocab,
        None,
        &SampleOptions {
            n: 5,
            seed: 1,
            ..Default::default()
        },
    )?;
    for m in mols {
        println!("{:>8.2}  {}", m.log_likelihood, m.smiles);
    }
    Ok(())
}
