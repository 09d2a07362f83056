//! The STOW-RS response (PS3.18 §10.5.3): an `application/dicom+json` data set listing every instance of the
//! request — accepted ones in Referenced SOP Sequence (0008,1199), refused ones in Failed SOP Sequence (0008,1198)
//! with their Failure Reason (0008,1197) — and the status that goes with it. A sender such as Orthanc fails its job
//! unless every instance it sent is listed, so a part that could not even be parsed still gets a failure entry.

use serde_json::{Map, Value, json};

/// Why an instance was refused: the Failure Reason codes of PS3.18 Table 10.5.3-2 (from PS3.4's C-STORE statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// `A700`: refused, out of resources (the models are loading or the outbound queue is full; send it again).
    OutOfResources,
    /// `A900`: the data set does not match the request (its Study Instance UID is not the one in the path).
    DataSetMismatch,
    /// `C000`: the part is not a DICOM object this service can parse, or its pixel data cannot be decoded.
    CannotUnderstand,
    /// `C122`: a transfer syntax the decoder does not handle.
    TransferSyntaxNotSupported,
    /// `0122`: an SOP class this service does not process (no image, or one of its own results sent back).
    SopClassNotSupported,
    /// `0110`: processing failed on this side.
    ProcessingFailure,
}

crate::keywords!(FailureReason, "failure reason", {
    OutOfResources => "out-of-resources",
    DataSetMismatch => "study-mismatch",
    CannotUnderstand => "cannot-understand",
    TransferSyntaxNotSupported => "transfer-syntax-not-supported",
    SopClassNotSupported => "sop-class-not-supported",
    ProcessingFailure => "processing-failure",
});

impl FailureReason {
    /// The code as Failure Reason (0008,1197) holds it.
    pub const fn code(self) -> u16 {
        match self {
            FailureReason::OutOfResources => 0xA700,
            FailureReason::DataSetMismatch => 0xA900,
            FailureReason::CannotUnderstand => 0xC000,
            FailureReason::TransferSyntaxNotSupported => 0xC122,
            FailureReason::SopClassNotSupported => 0x0122,
            FailureReason::ProcessingFailure => 0x0110,
        }
    }
}

/// What happened to one instance of a STOW-RS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceOutcome {
    /// Accepted: its results are made and queued for delivery.
    Accepted { sop_class: String, sop_instance: String },
    /// Refused. The UIDs are absent when the part could not be parsed far enough to read them.
    Failed { sop_class: Option<String>, sop_instance: Option<String>, reason: FailureReason },
}

/// The HTTP status of a STOW-RS response: 200 when every instance was accepted, 202 when some were refused,
/// 409 when none was accepted (PS3.18 §10.5.3.1).
pub fn status(outcomes: &[InstanceOutcome]) -> u16 {
    let accepted = outcomes.iter().filter(|o| matches!(o, InstanceOutcome::Accepted { .. })).count();
    match accepted {
        0 => 409,
        n if n == outcomes.len() => 200,
        _ => 202,
    }
}

/// The response body: Referenced SOP Sequence and Failed SOP Sequence (each only when not empty).
pub fn response(outcomes: &[InstanceOutcome]) -> Value {
    let uid = |value: &str| json!({ "vr": "UI", "Value": [value] });
    let (mut referenced, mut failed) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        let mut item = Map::new();
        match outcome {
            InstanceOutcome::Accepted { sop_class, sop_instance } => {
                item.insert("00081150".into(), uid(sop_class));
                item.insert("00081155".into(), uid(sop_instance));
                referenced.push(Value::Object(item));
            }
            InstanceOutcome::Failed { sop_class, sop_instance, reason } => {
                if let Some(class) = sop_class {
                    item.insert("00081150".into(), uid(class));
                }
                if let Some(instance) = sop_instance {
                    item.insert("00081155".into(), uid(instance));
                }
                item.insert("00081197".into(), json!({ "vr": "US", "Value": [reason.code()] }));
                failed.push(Value::Object(item));
            }
        }
    }
    let mut body = Map::new();
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({ "vr": "SQ", "Value": failed }));
    }
    if !referenced.is_empty() {
        body.insert("00081199".into(), json!({ "vr": "SQ", "Value": referenced }));
    }
    Value::Object(body)
}

/// A `multipart/related; type="application/dicom"` body of `parts` (each a Part 10 file), as STOW-RS requests
/// and multi-object answers carry them: returns the Content-Type (with its boundary) and the body.
pub fn multipart_related(parts: &[&[u8]]) -> (String, Vec<u8>) {
    let boundary = format!("cxr-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 80).sum::<usize>() + 40);
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_is_listed_with_the_status_that_goes_with_the_outcomes() {
        let accepted =
            InstanceOutcome::Accepted { sop_class: "1.2.840.10008.5.1.4.1.1.1".into(), sop_instance: "1.2.3".into() };
        let refused = InstanceOutcome::Failed {
            sop_class: Some("1.2.840.10008.5.1.4.1.1.88.34".into()),
            sop_instance: Some("1.2.4".into()),
            reason: FailureReason::SopClassNotSupported,
        };
        let unreadable =
            InstanceOutcome::Failed { sop_class: None, sop_instance: None, reason: FailureReason::CannotUnderstand };
        assert_eq!(status(std::slice::from_ref(&accepted)), 200);
        assert_eq!(status(&[accepted.clone(), refused.clone()]), 202);
        assert_eq!(status(&[refused.clone(), unreadable.clone()]), 409);
        let body = response(&[accepted, refused, unreadable]);
        assert_eq!(body["00081199"]["Value"][0]["00081155"]["Value"][0], "1.2.3");
        assert_eq!(body["00081198"]["Value"][0]["00081197"]["Value"][0], 0x0122);
        assert_eq!(body["00081198"]["Value"][1]["00081197"]["Value"][0], 0xC000);
        assert!(body["00081198"]["Value"][1].get("00081155").is_none());
        assert!(response(&[]).as_object().unwrap().is_empty());
    }

    #[test]
    fn multipart_bodies_frame_each_part_with_the_declared_boundary() {
        let (content_type, body) = multipart_related(&[b"one", b"two"]);
        let boundary = content_type.rsplit("boundary=").next().unwrap();
        assert!(content_type.starts_with("multipart/related; type=\"application/dicom\"; boundary=cxr-"));
        let text = String::from_utf8(body).unwrap();
        let expected = format!(
            "--{boundary}\r\nContent-Type: application/dicom\r\n\r\none\r\n--{boundary}\r\nContent-Type: \
             application/dicom\r\n\r\ntwo\r\n--{boundary}--\r\n"
        );
        assert_eq!(text, expected);
    }
}
