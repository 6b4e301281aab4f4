//! `smirl eval`: the MOSES metric table of a sample set, next to the published baselines.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{input, reference, table};

/// Arguments of `smirl eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Generated samples (CSV/TSV/.smi, optionally .gz), in sampling order.
    samples: PathBuf,
    #[command(flatten)]
    sources: MosesSources,
    /// Name of the SMILES column of the samples file.
    #[arg(long)]
    smiles_column: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// The reference sets and weights the MOSES table needs (shared by `eval` and `report`).
#[derive(Debug, Clone, clap::Args)]
pub struct MosesSources {
    /// Training set (for novelty), e.g. data/moses/train.csv.gz [default: all 1,584,663 MOSES
    /// train molecules, embedded as hashes of their canonical SMILES]. A file's canonical SMILES
    /// are cached by content hash in $SMIRL_CACHE_DIR (default ~/.cache/smirl).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Test set (for FCD, SNN, Frag, Scaf and the property distances), e.g. data/moses/test.csv.gz;
    /// molsets' test_stats.npz beside it is used when there [default: the embedded 10,000
    /// MOSES test molecules, every 17th].
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Scaffold test set (the TestSF columns) [default: test_scaffolds.csv.gz beside --test, when
    /// there].
    #[arg(long)]
    pub test_scaffolds: Option<PathBuf>,
    /// ChemNet weights for FCD (ChemNet_v0.13_pretrained.pt from the fcd_torch 1.0.7 wheel;
    /// datasets/fetch_moses.sh fetches them) [default: beside --test, else data/moses/].
    #[arg(long)]
    pub chemnet: Option<PathBuf>,
}

/// Where ChemNet's weights are: --chemnet, else beside the test set, else data/moses/.
fn chemnet_path(args: &MosesSources) -> Option<PathBuf> {
    if let Some(p) = &args.chemnet {
        return Some(p.clone());
    }
    let beside_test = args
        .test
        .as_ref()
        .and_then(|t| t.parent())
        .map(|d| d.join(fcd::WEIGHTS_FILE));
    beside_test
        .into_iter()
        .chain([Path::new("data/moses").join(fcd::WEIGHTS_FILE)])
        .find(|p| p.is_file())
}

/// A test set with its statistics: from molsets' file beside it, or from its SMILES.
pub(crate) fn test_reference(
    path: Option<&Path>,
    embedded: input::Embedded,
    what: &str,
    chemnet: Option<&fcd::ChemNet>,
) -> anyhow::Result<(reference::Reference, String)> {
    if let Some(p) = path.filter(|p| datasets::stats_path_for(p).is_some()) {
        let r = reference::load_test(Some(p), &[], what, chemnet)?;
        return Ok((r, p.display().to_string()));
    }
    let (records, name) =
        input::read_or_embedded(path, embedded).with_context(|| format!("reading the {what}"))?;
    let r = reference::load_test(path, &records, what, chemnet)?;
    Ok((r, name))
}

impl MosesSources {
    /// The scaffold test set: --test-scaffolds, else test_scaffolds.csv.gz beside --test.
    fn test_scaffolds(&self) -> Option<PathBuf> {
        self.test_scaffolds.clone().or_else(|| {
            let beside = self.test.as_ref()?.with_file_name("test_scaffolds.csv.gz");
            beside.is_file().then_some(beside)
        })
    }

    /// Fails early, naming the file, when a given reference file is missing.
    pub fn check(&self) -> anyhow::Result<()> {
        let given = [&self.train, &self.test, &self.test_scaffolds, &self.chemnet];
        for p in given.into_iter().flatten() {
            anyhow::ensure!(p.is_file(), "{}: no such file", p.display());
        }
        Ok(())
    }

    /// The whole MOSES table of scored samples (in sampling order).
    pub fn metrics(&self, scored: &[Option<chem::MoleculeProps>]) -> anyhow::Result<chem::SetMetrics> {
        let train_name = reference::training_set_name(self.train.as_deref());
        let chemnet = match chemnet_path(self) {
            Some(p) => Some(fcd::ChemNet::load(&p)?),
            None => {
                eprintln!(
                    "note: FCD is not computed: ChemNet's weights ({}) were not found; \
                     datasets/fetch_moses.sh fetches them into data/moses/, or give --chemnet",
                    fcd::WEIGHTS_FILE
                );
                None
            }
        };
        let generated: HashSet<&str> = scored.iter().flatten().map(|p| p.canonical.as_str()).collect();
        let train = reference::training_matches(self.train.as_deref(), &generated, &train_name)?;
        let (test, test_name) = test_reference(
            self.test.as_deref(),
            input::Embedded::Test,
            "test set",
            chemnet.as_ref(),
        )?;
        let test_sf = match &self.test_scaffolds() {
            Some(p) => Some(
                test_reference(
                    Some(p),
                    input::Embedded::Test,
                    "scaffold test set",
                    chemnet.as_ref(),
                )?
                .0,
            ),
            None => None,
        };
        if self.train.is_none() || self.test.is_none() {
            eprintln!("reference sets: train = {train_name}; test = {test_name}");
        }
        let mut metrics = chem::set_metrics(
            scored,
            Some(&train),
            Some(&test.set),
            test_sf.as_ref().map(|r| &r.set),
        );
        if let Some(net) = &chemnet {
            // molsets runs ChemNet on the canonical SMILES of the valid samples, duplicates kept.
            let canonical: Vec<&str> = scored.iter().flatten().map(|p| p.canonical.as_str()).collect();
            if let Some(gen) = reference::chemnet_gaussian(net, &canonical, "samples") {
                metrics.fcd_test = test.fcd.as_ref().map(|g| fcd::frechet_distance(&gen, g));
                metrics.fcd_test_scaffolds = test_sf
                    .as_ref()
                    .and_then(|r| r.fcd.as_ref())
                    .map(|g| fcd::frechet_distance(&gen, g));
            }
        }
        Ok(metrics)
    }
}

/// Runs `smirl eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    // Every file is read or checked before any scoring, so that a bad path fails at once.
    let records = input::read(&args.samples, args.smiles_column.as_deref())?;
    args.sources.check()?;
    let smiles: Vec<&str> = records.iter().map(|r| r.smiles.as_str()).collect();
    let scored = input::score_all(&smiles, "samples");
    let metrics = args.sources.metrics(&scored)?;
    let means = table::property_means(&scored);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let mut value = table::metrics_json(&metrics, means);
        value["published"] = table::published_json();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(stdout, "{}", table::metrics_table(&metrics, means))?;
        let label = args
            .samples
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("samples");
        writeln!(stdout, "{}", table::moses_table(label, &metrics))?;
    }
    Ok(())
}
