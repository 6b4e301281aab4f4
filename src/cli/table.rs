//! Printing set metrics as a text table or JSON, with the published MOSES baselines.

use chem::{SetMetrics, PUBLISHED_BASELINES};
use serde_json::{json, Value};

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Null, num)
}

/// Means of QED and SA over valid molecules, and the share of high-QED molecules.
#[derive(Debug, Clone, Copy)]
pub struct PropertyMeans {
    pub qed: f64,
    pub sa: f64,
    /// Fraction of the distinct valid molecules (by canonical SMILES) with QED > 0.9, the
    /// usual "drug-like" bar of QED-optimisation benchmarks.
    pub qed_above_0_9: f64,
}

/// The metrics as a JSON object (NaN and missing values are `null`): smirl's names, and the same
/// metrics under the keys molsets' `get_all_metrics` gives them.
pub fn metrics_json(m: &SetMetrics, means: PropertyMeans) -> Value {
    let (test, test_sf) = (m.test.as_ref(), m.test_scaffolds.as_ref());
    let d = m.property_distances.as_ref();
    let mut value = json!({
        "n": m.n,
        "n_valid": m.n_valid,
        "valid": num(m.valid),
        "unique@1000": num(m.unique_at_1k),
        "unique@10000": num(m.unique_at_10k),
        "novelty": opt(m.novelty),
        "intdiv1": num(m.int_div1),
        "intdiv2": num(m.int_div2),
        "filters": num(m.filters),
        "fcd_test": opt(m.fcd_test),
        "snn_test": opt(test.map(|t| t.snn)),
        "frag_test": opt(test.map(|t| t.frag)),
        "scaf_test": opt(test.map(|t| t.scaf)),
        "fcd_test_sf": opt(m.fcd_test_scaffolds),
        "snn_test_sf": opt(test_sf.map(|t| t.snn)),
        "frag_test_sf": opt(test_sf.map(|t| t.frag)),
        "scaf_test_sf": opt(test_sf.map(|t| t.scaf)),
        "qed_mean": num(means.qed),
        "sa_mean": num(means.sa),
        "qed_above_0.9_distinct": num(means.qed_above_0_9),
    });
    let molsets = [
        ("FCD/Test", opt(m.fcd_test)),
        ("SNN/Test", opt(test.map(|t| t.snn))),
        ("Frag/Test", opt(test.map(|t| t.frag))),
        ("Scaf/Test", opt(test.map(|t| t.scaf))),
        ("FCD/TestSF", opt(m.fcd_test_scaffolds)),
        ("SNN/TestSF", opt(test_sf.map(|t| t.snn))),
        ("Frag/TestSF", opt(test_sf.map(|t| t.frag))),
        ("Scaf/TestSF", opt(test_sf.map(|t| t.scaf))),
        ("IntDiv", num(m.int_div1)),
        ("IntDiv2", num(m.int_div2)),
        ("Filters", num(m.filters)),
        ("logP", opt(d.map(|d| d.logp))),
        ("SA", opt(d.map(|d| d.sa))),
        ("QED", opt(d.map(|d| d.qed))),
        ("weight", opt(d.map(|d| d.weight))),
        ("Novelty", opt(m.novelty)),
    ];
    for (key, v) in molsets {
        value[key] = v;
    }
    value
}

fn cell(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "n/a".to_string()
    }
}

fn opt_cell(x: Option<f64>) -> String {
    x.map_or("—".to_string(), cell)
}

/// The metrics as a two-column text table.
pub fn metrics_table(m: &SetMetrics, means: PropertyMeans) -> String {
    let rows = [
        ("molecules", m.n.to_string()),
        ("valid molecules", m.n_valid.to_string()),
        ("Valid", cell(m.valid)),
        ("Unique@1k", cell(m.unique_at_1k)),
        ("Unique@10k", cell(m.unique_at_10k)),
        ("Novelty", opt_cell(m.novelty)),
        ("IntDiv1", cell(m.int_div1)),
        ("IntDiv2", cell(m.int_div2)),
        ("Filters", cell(m.filters)),
        ("FCD/Test", opt_cell(m.fcd_test)),
        ("SNN/Test", opt_cell(m.test.map(|t| t.snn))),
        ("Frag/Test", opt_cell(m.test.map(|t| t.frag))),
        ("Scaf/Test", opt_cell(m.test.map(|t| t.scaf))),
        ("FCD/TestSF", opt_cell(m.fcd_test_scaffolds)),
        ("SNN/TestSF", opt_cell(m.test_scaffolds.map(|t| t.snn))),
        ("Frag/TestSF", opt_cell(m.test_scaffolds.map(|t| t.frag))),
        ("Scaf/TestSF", opt_cell(m.test_scaffolds.map(|t| t.scaf))),
        ("logP (W1)", opt_cell(m.property_distances.map(|d| d.logp))),
        ("SA (W1)", opt_cell(m.property_distances.map(|d| d.sa))),
        ("QED (W1)", opt_cell(m.property_distances.map(|d| d.qed))),
        ("weight (W1)", opt_cell(m.property_distances.map(|d| d.weight))),
        ("mean QED", cell(means.qed)),
        ("mean SA", cell(means.sa)),
        ("QED > 0.9", cell(means.qed_above_0_9)),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        out.push_str(&format!("{name:<16} {value:>10}\n"));
    }
    out
}

/// The MOSES table: this set as one row beside the published baselines, in two parts (the
/// README's columns do not fit one terminal line).
pub fn moses_table(label: &str, m: &SetMetrics) -> String {
    let t = m.test.as_ref();
    let ours_1 = [
        cell(m.valid),
        cell(m.unique_at_10k),
        opt_cell(m.novelty),
        cell(m.int_div1),
        cell(m.int_div2),
        cell(m.filters),
        opt_cell(m.fcd_test),
        opt_cell(t.map(|t| t.snn)),
    ];
    let ours_2 = m.reference_columns().map(opt_cell);
    type Columns = fn(&chem::PublishedBaseline) -> Vec<f64>;
    let part = |header: &[&str], ours: &[String], published: Columns| {
        let line = |name: &str, cells: &[String]| {
            let mut l = format!("{name:<12}");
            for (h, c) in header.iter().zip(cells) {
                l.push_str(&format!(" {c:>w$}", w = h.len().max(7)));
            }
            l + "\n"
        };
        let header_cells: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        let mut out = line("model", &header_cells);
        out.push_str(&line(label, ours));
        for b in PUBLISHED_BASELINES {
            let cells: Vec<String> = published(&b).into_iter().map(cell).collect();
            out.push_str(&line(b.model, &cells));
        }
        out
    };
    let mut out = part(
        &[
            "Valid",
            "Unique@10k",
            "Novelty",
            "IntDiv",
            "IntDiv2",
            "Filters",
            "FCD/Test",
            "SNN/Test",
        ],
        &ours_1,
        |b| {
            vec![
                b.valid,
                b.unique_at_10k,
                b.novelty,
                b.int_div1,
                b.int_div2,
                b.filters,
                b.fcd_test,
                b.snn_test,
            ]
        },
    );
    out.push('\n');
    out.push_str(&part(
        &[
            "FCD/TestSF",
            "SNN/TestSF",
            "Frag/Test",
            "Frag/TestSF",
            "Scaf/Test",
            "Scaf/TestSF",
        ],
        &ours_2,
        |b| b.reference_columns().to_vec(),
    ));
    out.push_str("(published rows: MOSES benchmark, Polykovskiy et al. 2020, means of three runs)\n");
    out
}

/// The published baselines as JSON, under molsets' key names.
pub fn published_json() -> Value {
    PUBLISHED_BASELINES
        .iter()
        .map(|b| {
            json!({"model": b.model, "valid": b.valid, "unique@10000": b.unique_at_10k,
                "Novelty": b.novelty, "IntDiv": b.int_div1, "IntDiv2": b.int_div2,
                "Filters": b.filters, "FCD/Test": b.fcd_test, "SNN/Test": b.snn_test,
                "FCD/TestSF": b.fcd_test_sf, "SNN/TestSF": b.snn_test_sf, "Frag/Test": b.frag_test,
                "Frag/TestSF": b.frag_test_sf, "Scaf/Test": b.scaf_test, "Scaf/TestSF": b.scaf_test_sf})
        })
        .collect()
}

/// Means of QED and SA over valid molecules (NaN values skipped).
pub fn property_means(scored: &[Option<chem::MoleculeProps>]) -> PropertyMeans {
    let mean = |f: &dyn Fn(&chem::MoleculeProps) -> f64| {
        let vals: Vec<f64> = scored.iter().flatten().map(f).filter(|x| x.is_finite()).collect();
        if vals.is_empty() {
            f64::NAN
        } else {
            vals.iter().sum::<f64>() / vals.len() as f64
        }
    };
    let mut distinct = std::collections::HashSet::new();
    let (mut high, mut total) = (0usize, 0usize);
    for p in scored.iter().flatten() {
        if distinct.insert(p.canonical.as_str()) {
            total += 1;
            high += usize::from(p.qed > 0.9);
        }
    }
    PropertyMeans {
        qed: mean(&|p| p.qed),
        sa: mean(&|p| p.sa),
        qed_above_0_9: if total == 0 {
            f64::NAN
        } else {
            high as f64 / total as f64
        },
    }
}
