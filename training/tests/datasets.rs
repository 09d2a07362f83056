//! Facts a correct loader reproduces from the real dataset metadata in `tests/data/metadata/` (NIH ChestX-ray14's
//! `Data_Entry_2017_v2020.csv.gz`, the Indiana/OpenI reports and DICOM metadata table), and the properties of the
//! patient-disjoint split.

use std::collections::HashSet;
use std::path::PathBuf;

use cxr_core::labels::LABELS;
use cxr_train::data::{indiana, nih};

fn metadata(file: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/metadata")).join(file)
}

fn nih_records() -> Vec<nih::NihRecord> {
    nih::read_nih_csv(&metadata("Data_Entry_2017_v2020.csv.gz")).expect("NIH metadata reads")
}

#[test]
fn nih_metadata_facts() {
    let records = nih_records();
    let facts = nih::facts(&records);
    assert_eq!(facts.images, 112_120);
    assert_eq!(facts.patients, 30_805);
    assert_eq!(facts.no_finding, 60_361);
    assert_eq!(facts.views.get("PA"), Some(&67_310));
    assert_eq!(facts.views.get("AP"), Some(&44_810));
    // Images per finding (NIH's published counts), in project label order.
    let expected = [
        ("Atelectasis", 11_559),
        ("Cardiomegaly", 2_776),
        ("Emphysema", 2_516),
        ("Effusion", 13_317),
        ("Hernia", 227),
        ("Infiltration", 19_894),
        ("Mass", 5_782),
        ("Nodule", 6_331),
        ("Pneumonia", 1_431),
        ("Pneumothorax", 5_302),
        ("Consolidation", 4_667),
        ("Edema", 2_303),
        ("Fibrosis", 1_686),
        ("Pleural_Thickening", 3_385),
    ];
    for ((label, count), (name, got)) in expected.iter().zip(LABELS.iter().zip(facts.per_label)) {
        assert_eq!(label, name, "label order");
        assert_eq!(got, *count, "{label}");
    }
    // `No Finding` is all zeros and never combined with a finding.
    let first = records.iter().find(|r| r.image == "00000001_000.png").expect("00000001_000.png listed");
    assert_eq!(first.targets().iter().sum::<f32>(), 1.0);
    assert!(first.labels[1], "00000001_000.png is Cardiomegaly");
}

#[test]
fn nih_split_is_patient_disjoint_and_70_10_20() {
    let records = nih_records();
    for seed in [20180908, 1] {
        let split = nih::split_by_patient(&records, (0.7, 0.1), seed);
        let n = records.len() as f64;
        for (subset, share) in [(&split.train, 0.7), (&split.val, 0.1), (&split.test, 0.2)] {
            let got = subset.len() as f64 / n;
            assert!((got - share).abs() <= 0.01 * share, "seed {seed}: share {got:.4} vs {share}");
        }
        assert_eq!(split.train.len() + split.val.len() + split.test.len(), records.len());
        let patients = |idx: &[usize]| idx.iter().map(|&i| records[i].patient).collect::<HashSet<_>>();
        let (tr, va, te) = (patients(&split.train), patients(&split.val), patients(&split.test));
        assert!(
            tr.is_disjoint(&va) && tr.is_disjoint(&te) && va.is_disjoint(&te),
            "seed {seed}: a patient in two subsets"
        );
        // Deterministic for a seed.
        assert_eq!(split, nih::split_by_patient(&records, (0.7, 0.1), seed));
    }
    assert_ne!(nih::split_by_patient(&records, (0.7, 0.1), 1), nih::split_by_patient(&records, (0.7, 0.1), 2));
}

#[test]
fn nih_official_lists_make_the_test_set() {
    let records: Vec<_> = nih_records().into_iter().take(2_000).collect();
    let dir = std::env::temp_dir().join(format!("cxr-official-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (train_val, test) = records.split_at(1_500);
    let write = |name: &str, rs: &[nih::NihRecord]| {
        let path = dir.join(name);
        std::fs::write(&path, rs.iter().map(|r| format!("{}\n", r.image)).collect::<String>()).unwrap();
        path
    };
    let split =
        nih::official_split(&records, &write("train_val_list.txt", train_val), &write("test_list.txt", test), 0.125, 3)
            .expect("official split");
    assert_eq!(split.test, (1_500..2_000).collect::<Vec<_>>());
    assert_eq!(split.train.len() + split.val.len(), 1_500);
    let patients = |idx: &[usize]| idx.iter().map(|&i| records[i].patient).collect::<HashSet<_>>();
    assert!(patients(&split.train).is_disjoint(&patients(&split.val)));
    std::fs::remove_dir_all(dir).ok();
}

/// The counts derived from the OpenI metadata (the paper reports 3,691 patients/images; the published DICOM table
/// has an empty View Position for 2,586 of its 7,469 images, which therefore cannot be counted as frontal).
/// The expected numbers were derived independently with a short Python script over the same three files.
#[test]
fn indiana_counts_as_derived() {
    let reports = indiana::read_reports(&metadata("NLMCXR_reports.tgz")).expect("reports read");
    let table = indiana::read_metadata(&metadata("nlmcxr_dicom_metadata.csv.gz")).expect("metadata reads");
    let (records, counts) = indiana::derive(&reports, &table);
    assert_eq!(counts.reports, 3_955);
    assert_eq!(counts.reports_with_images, 3_851);
    assert_eq!(counts.images_in_metadata, 7_469);
    assert_eq!(counts.patients, 2_562);
    assert_eq!((counts.normal, counts.abnormal), (946, 1_616));
    assert_eq!(records.len(), counts.patients);
    let patients: HashSet<_> = records.iter().map(|r| &r.patient).collect();
    assert_eq!(patients.len(), records.len(), "one image per patient");
}
