//! Score tables: a truth column and two score columns of any CSV with a header row (what `cxr-train delong`
//! compares), e.g. a run's `test_predictions.csv` or a spreadsheet exported from another tool.

use std::path::Path;

use super::{DataError, read_text};

/// The truth and the two score columns of a table, one entry per row.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreColumns {
    pub truth: Vec<bool>,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// Reads columns `truth`, `a` and `b` (header names, surrounding spaces ignored) of the CSV at `path` (`.gz`
/// read transparently). Truth must be 0 or 1 and scores finite numbers; a bad cell names its row and value.
pub fn read_score_columns(path: &Path, truth: &str, a: &str, b: &str) -> Result<ScoreColumns, DataError> {
    let text = read_text(path)?;
    let format = |problem: String| DataError::Format { path: path.display().to_string(), problem };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| DataError::csv(path, e))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
            format(format!("no column `{name}` (columns: {})", headers.iter().collect::<Vec<_>>().join(", ")))
        })
    };
    let (t, ca, cb) = (column(truth)?, column(a)?, column(b)?);
    let mut out = ScoreColumns { truth: Vec::new(), a: Vec::new(), b: Vec::new() };
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| DataError::csv(path, e))?;
        let at = |i: usize| row.get(i).unwrap_or("").trim();
        // Rows are numbered as a spreadsheet shows them: the header is row 1.
        let bad = |what: &str, v: &str| format(format!("row {}: {what} `{v}`", line + 2));
        out.truth.push(match at(t) {
            "1" | "1.0" => true,
            "0" | "0.0" => false,
            v => return Err(bad("truth must be 0 or 1, got", v)),
        });
        for (col, scores) in [(ca, &mut out.a), (cb, &mut out.b)] {
            let v: f64 = at(col).parse().map_err(|_| bad("not a number:", at(col)))?;
            if !v.is_finite() {
                return Err(bad("not a finite number:", at(col)));
            }
            scores.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` to a file of its own under the system's temporary folder (named by the test and the
    /// process, so parallel tests never share one).
    fn table(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cxr-scores-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scores.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_the_named_columns_in_row_order() {
        let path = table("columns", "id, y ,p,q\na,1,0.9,0.8\nb,0.0,0.2,0.4\n");
        let columns = read_score_columns(&path, "y", "p", "q").unwrap();
        assert_eq!(columns, ScoreColumns { truth: vec![true, false], a: vec![0.9, 0.2], b: vec![0.8, 0.4] });
    }

    #[test]
    fn a_bad_table_names_the_column_or_the_row() {
        let path = table("truth", "y,p,q\n1,0.9,0.8\n2,0.1,0.2\n");
        let missing = read_score_columns(&path, "truth", "p", "q").unwrap_err().to_string();
        assert!(missing.contains("no column `truth` (columns: y, p, q)"), "{missing}");
        let truth = read_score_columns(&path, "y", "p", "q").unwrap_err().to_string();
        assert!(truth.contains("row 3: truth must be 0 or 1, got `2`"), "{truth}");
        let path = table("nan", "y,p,q\n1,NaN,0.8\n");
        let nan = read_score_columns(&path, "y", "p", "q").unwrap_err().to_string();
        assert!(nan.contains("row 2: not a finite number: `NaN`"), "{nan}");
    }
}
