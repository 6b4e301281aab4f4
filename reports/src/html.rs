//! The HTML page: layout, tables and the candidate grid. Everything from data goes through `escape`.

use std::fmt::Write;

use crate::charts::{curves_svg, distribution_svg, inline_svg};
use crate::Report;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:24px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px}\
th{background:#f2f2f2}th.sortable{cursor:pointer}th.sortable:after{content:' \\2195';color:#999}\
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.ours td{font-weight:bold;background:#eef6ff}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.notice{padding:12px;background:#fff3cd;border:1px solid #e0c36c}\
td.smiles{font-family:monospace;font-size:12px;max-width:280px;word-break:break-all}";

/// Sorts a table by a clicked header: numbers numerically, text alphabetically; again reverses.
const SORT_SCRIPT: &str = "document.querySelectorAll('table.sortable').forEach(function(t){\
t.querySelectorAll('th.sortable').forEach(function(th,i){th.addEventListener('click',function(){\
var b=t.tBodies[0],rows=Array.from(b.rows),dir=th.dataset.dir==='desc'?1:-1;th.dataset.dir=dir===1?'asc':'desc';\
rows.sort(function(x,y){var a=x.cells[i].dataset.v||x.cells[i].textContent,c=y.cells[i].dataset.v||y.cells[i].textContent;\
var p=parseFloat(a),q=parseFloat(c);if(!isNaN(p)&&!isNaN(q)){return dir*(p-q);}return dir*a.localeCompare(c);});\
rows.forEach(function(r){b.appendChild(r);});});});});";

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "n/a".to_string()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("—".to_string(), num)
}

pub(crate) fn render(r: &Report) -> String {
    let mut h = String::new();
    let title = if r.title.is_empty() {
        "smirl report"
    } else {
        &r.title
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(title),
        escape(title)
    );

    h.push_str("<h2 id=\"summary\">Run summary</h2><table>");
    for (k, v) in &r.summary {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    let _ = write!(
        h,
        "<tr><th>molecules</th><td>{}</td></tr><tr><th>valid</th><td>{}</td></tr>",
        r.n_generated, r.n_valid
    );
    for (label, href) in &r.files {
        let _ = write!(
            h,
            "<tr><th>{}</th><td><a href=\"{}\">{}</a></td></tr>",
            escape(label),
            escape(href),
            escape(href)
        );
    }
    h.push_str("</table>");
    if r.n_valid == 0 {
        let _ = write!(
            h,
            "<p class=\"notice\" id=\"no-valid\">No valid molecules: none of the {} molecules in this set could be parsed by RDKit, so there are no properties, metrics or candidates to show.</p>",
            r.n_generated
        );
    }

    if let Some(curves) = &r.curves {
        h.push_str("<h2 id=\"curves\">RL curves per step</h2><div class=\"charts\">");
        let by_step = curves.charts.iter().map(|c| (c, "step", &curves.steps));
        let by_call = curves
            .call_charts
            .iter()
            .map(|c| (c, "oracle calls", &curves.oracle_calls));
        for ((title, series), x_desc, x) in by_step.chain(by_call) {
            let series: Vec<(&str, &[f64])> = series
                .iter()
                .map(|(name, v)| (name.as_str(), v.as_slice()))
                .collect();
            if !series.is_empty() {
                h.push_str(&curves_svg(title, x_desc, x, &series));
            }
        }
        h.push_str("</div>");
    }

    if !r.distributions.is_empty() && r.n_valid > 0 {
        h.push_str("<h2 id=\"distributions\">Property distributions</h2><div class=\"charts\">");
        for d in &r.distributions {
            h.push_str(&distribution_svg(
                &escape(&d.name),
                &d.generated,
                d.reference.as_deref(),
            ));
        }
        h.push_str("</div>");
    }

    if let Some(m) = &r.metrics {
        h.push_str("<h2 id=\"metrics\">MOSES metrics</h2><table><thead><tr><th>model</th><th>Valid</th><th>Unique@10k</th><th>Novelty</th><th>IntDiv</th><th>IntDiv2</th><th>Filters</th><th>FCD/Test</th><th>SNN/Test</th></tr></thead><tbody>");
        let _ = write!(
            h,
            "<tr class=\"ours\"><td>this set</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            num(m.valid), num(m.unique_at_10k), opt(m.novelty), num(m.int_div1), num(m.int_div2), num(m.filters), opt(m.fcd_test), opt(m.test.map(|t| t.snn))
        );
        for b in chem::PUBLISHED_BASELINES {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(b.model), num(b.valid), num(b.unique_at_10k), num(b.novelty), num(b.int_div1), num(b.int_div2), num(b.filters), num(b.fcd_test), num(b.snn_test)
            );
        }
        h.push_str("</tbody></table>");
        h.push_str("<table><thead><tr><th>model</th><th>FCD/TestSF</th><th>SNN/TestSF</th><th>Frag/Test</th><th>Frag/TestSF</th><th>Scaf/Test</th><th>Scaf/TestSF</th></tr></thead><tbody>");
        let row = |h: &mut String, class: &str, name: &str, cells: [String; 6]| {
            let _ = write!(h, "<tr{class}><td>{name}</td>");
            for c in cells {
                let _ = write!(h, "<td class=\"num\">{c}</td>");
            }
            h.push_str("</tr>");
        };
        row(
            &mut h,
            " class=\"ours\"",
            "this set",
            m.reference_columns().map(opt),
        );
        for b in chem::PUBLISHED_BASELINES {
            row(&mut h, "", &escape(b.model), b.reference_columns().map(num));
        }
        h.push_str("</tbody></table><p>Published rows: MOSES benchmark (Polykovskiy et al. 2020, means of three runs), MOSES test and scaffold test sets. Novelty is against the training set given to smirl; FCD needs ChemNet's weights (datasets/fetch_moses.sh), and the TestSF columns a scaffold test set (--test-scaffolds).</p>");
    }

    if !r.candidates.is_empty() {
        let score_names: Vec<&str> = r.candidates[0].scores.iter().map(|(n, _)| n.as_str()).collect();
        h.push_str("<h2 id=\"candidates\">Top candidates</h2><table class=\"sortable\"><thead><tr><th class=\"sortable\">rank</th><th>structure</th><th class=\"sortable\">SMILES</th><th class=\"sortable\">name</th>");
        for n in &score_names {
            let _ = write!(h, "<th class=\"sortable\">{}</th>", escape(n));
        }
        h.push_str("</tr></thead><tbody>");
        for (rank, c) in r.candidates.iter().enumerate() {
            let picture = chem::Molecule::parse(&c.smiles)
                .and_then(|m| m.to_svg(220, 160).ok())
                .map(|svg| inline_svg(&svg))
                .unwrap_or_else(|| "no picture".to_string());
            let _ = write!(
                h,
                "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"smiles\">{}</td><td>{}</td>",
                rank + 1,
                picture,
                escape(&c.smiles),
                escape(c.name.as_deref().unwrap_or(""))
            );
            for (_, v) in &c.scores {
                let _ = write!(h, "<td class=\"num\" data-v=\"{v}\">{}</td>", num(*v));
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
    }
    let _ = write!(h, "<script>{SORT_SCRIPT}</script></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x&y')</script>"),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;"
        );
    }
}
