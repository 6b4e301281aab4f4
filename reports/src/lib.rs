/*!
Self-contained HTML reports for smirl: one file, no external URL of any kind (CSS and a small sort
script inline, charts as inline SVG drawn with plotters, molecule pictures as inline SVG from RDKit
through `chem`). Every string from data is HTML-escaped.

# Brief overview
Fill a [`Report`] — summary rows, per-step [`Curves`], property [`Distribution`]s of the generated
set against a reference, the MOSES metric table, and [`Candidate`]s — then call [`Report::to_html`].
Sections without data are left out; a set with no valid molecule says so.
*/

mod charts;
mod html;

pub use html::escape;

/// A named series of values per step; NaN marks a missing value.
pub type Series = (String, Vec<f64>);

/// Per-step curves of an RL run, grouped into charts by the caller.
#[derive(Debug, Clone, Default)]
pub struct Curves {
    /// Step of each row.
    pub steps: Vec<f64>,
    /// Charts in display order: (title, its series).
    pub charts: Vec<(String, Vec<Series>)>,
    /// Cumulative oracle calls of each row (empty where the run does not count them): the x axis
    /// of `call_charts`.
    pub oracle_calls: Vec<f64>,
    /// Charts drawn against oracle calls rather than steps (PMO's sample-efficiency view).
    pub call_charts: Vec<(String, Vec<Series>)>,
}

/// A property's values in the generated set and, optionally, in a reference (training) set.
#[derive(Debug, Clone)]
pub struct Distribution {
    /// Property name (e.g. "QED").
    pub name: String,
    /// Values of the generated molecules.
    pub generated: Vec<f64>,
    /// Values of the reference molecules, if any.
    pub reference: Option<Vec<f64>>,
}

/// One molecule of the candidate grid.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Canonical SMILES.
    pub smiles: String,
    /// Optional name from the input.
    pub name: Option<String>,
    /// (score name, value) pairs; the first is the ranking score.
    pub scores: Vec<(String, f64)>,
}

/// Everything a report can show.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Page title.
    pub title: String,
    /// Run summary: (label, value) rows (model, config, seed, wall time, number sampled...).
    pub summary: Vec<(String, String)>,
    /// Per-step RL curves.
    pub curves: Option<Curves>,
    /// Property distributions.
    pub distributions: Vec<Distribution>,
    /// The MOSES metric table of the generated set.
    pub metrics: Option<chem::SetMetrics>,
    /// Top candidates, best first.
    pub candidates: Vec<Candidate>,
    /// Files to open beside the report: (label, link relative to the report), e.g. the run's SD file.
    pub files: Vec<(String, String)>,
    /// Number of molecules in the generated set and how many are valid.
    pub n_generated: usize,
    /// Valid molecules among them.
    pub n_valid: usize,
}

impl Report {
    /// Renders the report as one self-contained HTML document.
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}
