#!/usr/bin/env python3
"""DICOMweb against a real PACS: Orthanc (Debian `orthanc` + `orthanc-dicomweb`) and cxr-serve, each routing to the
other, with the DICOM tools of record judging the result objects.

    python tests/python/check_pacs.py --server target/release/cxr-serve --models models \
        --ort-dylib .cache/ort/cpu/libonnxruntime.so.1.31.1

`make test` installs Orthanc, its DICOMweb plugin, dicom3tools and dcmtk (`scripts/setup-system.sh --with-pacs`) and
highdicom (tests/python/requirements.txt). Orthanc runs as a plain process (as `nobody` when this runs as root) on
free loopback ports picked first (it cannot bind port 0), with a fresh database in a temporary folder; cxr-serve runs
with `--default-model both --dicomweb-push <Orthanc>/dicom-web/`. The fixtures of tests/data/dicom all share one
SOP Instance UID, so each image sent here is a copy with UIDs of its own (pydicom).

1. Orthanc STOW-RSes an image to cxr-serve (`POST /dicom-web/servers/cxr/stow`): its job succeeds; within 30 s an SR
   and a Secondary Capture per model appear in Orthanc, in the source's study (same Study Instance UID and Patient
   ID) but in new series; highdicom reads each SR back as a TID 1500 report of 14 groups whose probabilities equal
   `/predict`'s JSON for the same file and whose evidence names the source instance; `dciodvfy` finds no error in
   any of them (the fixture's own warnings — an empty Study ID, a UUID as Patient's Name — are inherited: listed).
2. Sending the same image again adds no instance to Orthanc (the result UIDs are derived from the source).
3. Orthanc stopped: cxr-serve still accepts an image (200) and queues its results; Orthanc started again on the same
   database: every queued result arrives.
4. Bad parts sent to cxr-serve each get their failure entry (not DICOM: C000; another study than the path's: A900;
   cxr-serve's own SR sent back and a DICOM without pixel data: 0122; a transfer syntax it does not decode: C122), a
   mix of good and bad is a 202, all-bad a 409, a body that is not multipart/related a 415 problem; no 5xx, and
   `/readyz` stays ready.
"""
import json
import os
import re
import shutil
import subprocess
import time

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes

from pacs_harness import PLUGIN, copy_with_new_uids, fail, http, multipart, pacs, server_arguments, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "data", "dicom", "cxr_explicit_le.dcm")
PNG = os.path.join(ROOT, "tests", "data", "images", "nih_00000001_000.png")
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
# What dciodvfy says about the fixture itself; the result objects copy its patient and study attributes.
INHERITED = ("Study ID", "Retired Person Name form", "Unrecognized defined term <99CXRGRAY>")


PASSED = []


def passed(message):
    PASSED.append(message)
    print(f"pacs: {message}")


def dciodvfy(path):
    out = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
    lines = (out.stdout + out.stderr).splitlines()
    errors = [l for l in lines if l.startswith("Error")]
    warnings = [l for l in lines if l.startswith("Warning")]
    unexplained = [w for w in warnings if not any(i in w for i in INHERITED)]
    return errors, warnings, unexplained


def check_results(orthanc, server, work, source_bytes, source):
    """The SRs and SCs of `source` in Orthanc, judged; returns their SOP Instance UIDs."""
    def results():
        found = [i for i in orthanc.instances_of_study(source.StudyInstanceUID)
                 if i["MainDicomTags"].get("SOPInstanceUID") != source.SOPInstanceUID]
        return found if len(found) >= 4 else None
    found = wait_until("2 SRs and 2 SCs in Orthanc", results, 30)
    if len(found) != 4:
        fail(f"expected 4 result instances in the study, found {len(found)}")
    status, _, body = server.post("/predict?model=both", source_bytes, "application/dicom")
    if status != 200:
        fail(f"/predict: HTTP {status}")
    predicted = {r["model"]: [f["probability"] for f in r["findings"]] for r in json.loads(body)["results"]}
    kinds, uids = [], {SR_CLASS: [], SC_CLASS: []}
    for instance in found:
        data = http("GET", orthanc.url(f"/instances/{instance['ID']}/file"))[2]
        path = os.path.join(work, f"{instance['ID']}.dcm")
        with open(path, "wb") as f:
            f.write(data)
        ds = pydicom.dcmread(path)
        uids.setdefault(ds.SOPClassUID, []).append(ds.SOPInstanceUID)
        if ds.StudyInstanceUID != source.StudyInstanceUID or ds.PatientID != source.PatientID:
            fail("a result is not in the source's study and patient")
        if ds.SeriesInstanceUID == source.SeriesInstanceUID:
            fail("a result is in the source's series")
        errors, warnings, unexplained = dciodvfy(path)
        if errors or unexplained:
            fail(f"dciodvfy on {ds.SOPClassUID}: errors {errors}, unexplained warnings {unexplained}")
        kinds.append(ds.SOPClassUID)
        if ds.SOPClassUID == SC_CLASS:
            if ds.BurnedInAnnotation != "YES" or ds.PhotometricInterpretation != "RGB":
                fail("the Secondary Capture is not an RGB picture with burned-in annotation")
            if ds.SourceImageSequence[0].ReferencedSOPInstanceUID != source.SOPInstanceUID:
                fail("the Secondary Capture does not name its source image")
            continue
        sr = hd.sr.srread(path)
        if not isinstance(sr.content, hd.sr.MeasurementReport):
            fail("highdicom does not read the SR as a TID 1500 Measurement Report")
        evidence = [e[2] for e in sr.get_evidence()]
        if evidence != [source.SOPInstanceUID]:
            fail(f"the SR's evidence is {evidence}, not the source")
        groups = sr.content.get_image_measurement_groups()
        if len(groups) != 14:
            fail(f"the SR has {len(groups)} measurement groups, not 14")
        model = "gray" if "gray" in ds.ContentSequence[3].TextValue else "color"
        label_of = {g.tracking_identifier.split(" ", 1)[1]: g for g in groups}
        for k, label in enumerate(LABELS):
            (measurement,) = label_of[label].get_measurements(name=codes.DCM.Probability)
            if abs(float(measurement.value) - predicted[model][k]) > 1e-6:
                fail(f"{model} {label}: SR {measurement.value} vs /predict {predicted[model][k]}")
            if measurement.referenced_images[0].referenced_sop_instance_uid != source.SOPInstanceUID:
                fail("a measurement does not name its source image")
        passed(f"{model} SR: 14 groups equal /predict; dciodvfy: 0 errors, {len(warnings)} inherited warnings")
    if sorted(kinds) != sorted([SR_CLASS, SR_CLASS, SC_CLASS, SC_CLASS]):
        fail(f"result classes {kinds}")
    return uids


LABELS = ["Atelectasis", "Cardiomegaly", "Emphysema", "Effusion", "Hernia", "Infiltration", "Mass", "Nodule",
          "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Fibrosis", "Pleural_Thickening"]


def stow_through_orthanc(orthanc, data):
    uploaded = orthanc.json("POST", "/instances", data)
    started = time.time()
    status, _, body = http("POST", orthanc.url("/dicom-web/servers/cxr/stow"),
                           json.dumps({"Resources": [uploaded["ID"]], "Synchronous": True}).encode())
    if status != 200:
        fail(f"Orthanc's STOW-RS job to cxr-serve failed: HTTP {status}: {body[:300]!r}")
    return time.time() - started


def bad_inputs(server, good, own_sr):
    def stow(parts, path="/dicomweb/studies", content_type="application/dicom"):
        body, ct = multipart(parts, content_type)
        return server.post(path, body, ct)

    def reasons(data):
        return [item["00081197"]["Value"][0] for item in json.loads(data).get("00081198", {}).get("Value", [])]

    no_pixels, _ = copy_with_new_uids(FIXTURE, drop_pixels=True)
    htj2k, _ = copy_with_new_uids(FIXTURE, transfer_syntax="1.2.840.10008.1.2.4.201")
    with open(PNG, "rb") as f:
        png = f.read()
    cases = [
        ("not DICOM", [png], "/dicomweb/studies", [0xC000]),
        ("another study than the path's", [good], "/dicomweb/studies/1.2.3.4", [0xA900]),
        ("its own SR sent back", [own_sr], "/dicomweb/studies", [0x0122]),
        ("no pixel data", [no_pixels], "/dicomweb/studies", [0x0122]),
        ("an unsupported transfer syntax", [htj2k], "/dicomweb/studies", [0xC122]),
    ]
    for what, parts, path, expected in cases:
        status, content_type, data = stow(parts, path)
        if status != 409 or content_type != "application/dicom+json" or reasons(data) != expected:
            fail(f"{what}: HTTP {status} {content_type} {data[:300]!r}, expected 409 with {expected}")
        passed(f"{what}: 409, failure reason {expected[0]:04X}")
    status, _, data = stow([good, png])
    body = json.loads(data)
    if status != 202 or len(body["00081199"]["Value"]) != 1 or reasons(data) != [0xC000]:
        fail(f"a good and a bad part: HTTP {status} {data[:300]!r}")
    passed("one good and one bad part: 202, both listed")
    status, content_type, data = server.post("/dicomweb/studies", good, "application/dicom")
    if status != 415 or "problem+json" not in content_type:
        fail(f"a bare DICOM body: HTTP {status} {content_type}")
    passed("a body that is not multipart/related: 415 problem")
    if server.get("/readyz")[0] != 200:
        fail("cxr-serve is not ready after the bad inputs")


def main():
    parser = server_arguments("DICOMweb against a real Orthanc (see the module docs).")
    args = parser.parse_args()
    for tool in ("/usr/sbin/Orthanc", PLUGIN, shutil.which("dciodvfy") or "dciodvfy"):
        if not os.path.exists(tool):
            fail(f"{tool} is missing: run scripts/setup-system.sh --with-pacs")
    with pacs(args) as (work, orthanc, server):
        # 1. Orthanc → cxr-serve → Orthanc.
        first, first_ds = copy_with_new_uids(FIXTURE)
        took = stow_through_orthanc(orthanc, first)
        passed(f"Orthanc's STOW-RS job to cxr-serve succeeded in {took:.2f} s")
        uids = check_results(orthanc, server, work, first, first_ds)

        # 2. The same image again: the same result objects, so nothing new in Orthanc.
        stow_through_orthanc(orthanc, first)
        time.sleep(3)
        again = orthanc.instances_of_study(first_ds.StudyInstanceUID)
        if len(again) != 5:
            fail(f"a resend left {len(again)} instances in the study, not 5")
        passed("a resend adds no instance (5 in the study)")

        # 3. The PACS away and back: nothing lost.
        orthanc.stop()
        second, second_ds = copy_with_new_uids(FIXTURE)
        body, content_type = multipart([second])
        status, _, data = server.post("/dicomweb/studies", body, content_type)
        if status != 200:
            fail(f"with Orthanc down, cxr-serve answered HTTP {status}: {data[:300]!r}")
        time.sleep(2)
        metrics = server.get("/metrics")[1].decode()
        retries = re.search(r"^cxr_dicomweb_push_retries_total (\d+)", metrics, re.M)
        if not retries or int(retries.group(1)) == 0:
            fail("no push was retried while Orthanc was down")
        orthanc.start()
        queued = wait_until("the queued results in Orthanc", lambda: len(
            orthanc.instances_of_study(second_ds.StudyInstanceUID)) == 4 or None, 30)
        passed(f"Orthanc stopped and started again: the 4 queued results arrived ({retries.group(1)} retries)")

        # 4. Bad inputs.
        own_sr_id = next(i["ID"] for i in orthanc.instances_of_study(first_ds.StudyInstanceUID)
                         if i["MainDicomTags"].get("SOPInstanceUID") == uids[SR_CLASS][0])
        own = http("GET", orthanc.url(f"/instances/{own_sr_id}/file"))[2]
        bad_inputs(server, first, own)
        metrics = server.get("/metrics")[1].decode()
        for outcome in ("queued", "pushed"):
            if not re.search(rf'^cxr_dicomweb_results_total{{outcome="{outcome}"}} [1-9]', metrics, re.M):
                fail(f"cxr_dicomweb_results_total{{outcome=\"{outcome}\"}} is 0")
        print(f"python checks: {len(PASSED)} passed")

if __name__ == "__main__":
    main()
