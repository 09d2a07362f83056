//! The Indiana University chest X-ray collection (OpenI, `NLMCXR`): normal vs abnormal.
//!
//! A study is *normal* when its report's MeSH major terms are exactly `normal`, else *abnormal*. Frontal views
//! come from the DICOM metadata table (`View Position` PA or AP; images whose View Position is empty carry no
//! orientation in that table and are not counted as frontal). One frontal image per patient: the first, in
//! image-id order, of the patient's first report.
//!
//! The reports are a fixed, machine-written XML layout; the two things read from them (`parentImage` ids and the
//! `major` MeSH terms) are extracted by a small scanner instead of a general XML parser.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DataError, read_text};

/// One report with a frontal image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndianaRecord {
    /// Report file name, e.g. `1.xml`.
    pub report: String,
    pub patient: String,
    /// Image id in the metadata table, e.g. `CXR1_IM-0001-4001`.
    pub image: String,
    /// The DICOM file name from the metadata table (`filename` column), when present.
    pub dicom_file: Option<String>,
    pub normal: bool,
}

impl IndianaRecord {
    /// Where the image is under `images`: the DICOM file when it exists, else `<image id>.png`.
    pub fn image_path(&self, images: &Path) -> PathBuf {
        if let Some(dicom) = &self.dicom_file {
            let path = images.join(dicom.trim_start_matches("./"));
            if path.exists() {
                return path;
            }
        }
        images.join(format!("{}.png", self.image))
    }
}

/// What the derivation found, next to the paper's 3,691.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndianaCounts {
    pub reports: usize,
    pub reports_with_images: usize,
    pub images_in_metadata: usize,
    pub frontal_images: usize,
    /// Patients (= selected images) with a frontal view and a report.
    pub patients: usize,
    pub normal: usize,
    pub abnormal: usize,
}

/// One parsed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub file: String,
    pub images: Vec<String>,
    pub major_mesh: Vec<String>,
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// Parses one report's XML.
pub fn parse_report(file: &str, xml: &str) -> Report {
    let images = between(xml, "<parentImage id=\"", "\"").into_iter().map(str::to_string).collect();
    let major_mesh = between(xml, "<MeSH>", "</MeSH>")
        .into_iter()
        .flat_map(|mesh| between(mesh, "<major>", "</major>"))
        .map(|m| m.trim().to_string())
        .collect();
    Report { file: file.to_string(), images, major_mesh }
}

/// Reads every `*.xml` report from a folder or from the `NLMCXR_reports.tgz` archive, sorted by file name.
pub fn read_reports(path: &Path) -> Result<Vec<Report>, DataError> {
    let mut reports = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
            let file = entry.map_err(|e| DataError::io(path, e))?.path();
            if file.extension().is_some_and(|e| e == "xml") {
                let name = super::loader::file_name(&file);
                reports.push(parse_report(&name, &read_text(&file)?));
            }
        }
    } else {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for entry in archive.entries().map_err(|e| DataError::io(path, e))? {
            let mut entry = entry.map_err(|e| DataError::io(path, e))?;
            let name = entry.path().map_err(|e| DataError::io(path, e))?.into_owned();
            if name.extension().is_some_and(|e| e == "xml") {
                let mut xml = String::new();
                entry.read_to_string(&mut xml).map_err(|e| DataError::io(path, e))?;
                reports.push(parse_report(&super::loader::file_name(&name), &xml));
            }
        }
    }
    if reports.is_empty() {
        return Err(DataError::Empty { path: path.display().to_string() });
    }
    // Numeric order of `N.xml`, then by name.
    reports.sort_by_key(|r| (r.file.trim_end_matches(".xml").parse::<u64>().unwrap_or(u64::MAX), r.file.clone()));
    Ok(reports)
}

/// One row of the DICOM metadata table: the columns this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub patient: String,
    pub view_position: String,
    pub filename: Option<String>,
}

/// Reads `nlmcxr_dicom_metadata.csv(.gz)`: image id → patient, view position and DICOM file name.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, ImageMeta>, DataError> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| DataError::csv(path, e))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let missing =
        |name: &str| DataError::Format { path: path.display().to_string(), problem: format!("no `{name}` column") };
    let id = column("imageid").ok_or_else(|| missing("imageid"))?;
    let patient = column("Patient ID").ok_or_else(|| missing("Patient ID"))?;
    let view = column("View Position").ok_or_else(|| missing("View Position"))?;
    let filename = column("filename");
    let mut out = HashMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| DataError::csv(path, e))?;
        let get = |i: usize| row.get(i).unwrap_or("").trim().to_string();
        out.insert(
            get(id),
            ImageMeta {
                patient: get(patient),
                view_position: get(view),
                filename: filename.map(get).filter(|f| !f.is_empty()),
            },
        );
    }
    Ok(out)
}

/// A report's image reference (`CXR12_1_IM-0123-1001`) as the metadata table's id (`CXR12_IM-0123-1001`).
pub fn metadata_id(parent_image: &str) -> String {
    let mut parts = parent_image.splitn(3, '_');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(study), Some(n), Some(rest)) if n.chars().all(|c| c.is_ascii_digit()) => format!("{study}_{rest}"),
        _ => parent_image.to_string(),
    }
}

fn is_frontal(meta: &ImageMeta) -> bool {
    matches!(meta.view_position.as_str(), "PA" | "AP")
}

/// One frontal image per patient with its normal/abnormal label, and the counts behind it.
pub fn derive(reports: &[Report], metadata: &HashMap<String, ImageMeta>) -> (Vec<IndianaRecord>, IndianaCounts) {
    let mut by_patient: BTreeMap<String, IndianaRecord> = BTreeMap::new();
    let mut frontal_images = 0;
    for report in reports {
        let mut frontal: Vec<(String, &ImageMeta)> = report
            .images
            .iter()
            .map(|i| metadata_id(i))
            .filter_map(|id| metadata.get(&id).map(|m| (id, m)))
            .filter(|(_, m)| is_frontal(m))
            .collect();
        frontal_images += frontal.len();
        frontal.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((image, meta)) = frontal.into_iter().next() {
            let normal = report.major_mesh.len() == 1 && report.major_mesh[0].eq_ignore_ascii_case("normal");
            by_patient.entry(meta.patient.clone()).or_insert(IndianaRecord {
                report: report.file.clone(),
                patient: meta.patient.clone(),
                image,
                dicom_file: meta.filename.clone(),
                normal,
            });
        }
    }
    let records: Vec<IndianaRecord> = by_patient.into_values().collect();
    let normal = records.iter().filter(|r| r.normal).count();
    let counts = IndianaCounts {
        reports: reports.len(),
        reports_with_images: reports.iter().filter(|r| !r.images.is_empty()).count(),
        images_in_metadata: metadata.len(),
        frontal_images,
        patients: records.len(),
        normal,
        abnormal: records.len() - normal,
    };
    (records, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_scanner_reads_images_and_major_terms() {
        let xml = r#"<eCitation><MeSH><major>normal</major></MeSH>
            <parentImage id="CXR1_1_IM-0001-3001"><figureId>F1</figureId></parentImage>
            <parentImage id="CXR1_1_IM-0001-4001"></parentImage></eCitation>"#;
        let r = parse_report("1.xml", xml);
        assert_eq!(r.images, ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]);
        assert_eq!(r.major_mesh, ["normal"]);
        assert_eq!(metadata_id("CXR1_1_IM-0001-3001"), "CXR1_IM-0001-3001");
        assert_eq!(metadata_id("CXR1000_IM-0003-2001"), "CXR1000_IM-0003-2001");
    }
}
