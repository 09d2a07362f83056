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
import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "data", "dicom", "cxr_explicit_le.dcm")
PNG = os.path.join(ROOT, "tests", "data", "images", "nih_00000001_000.png")
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
# What dciodvfy says about the fixture itself; the result objects copy its patient and study attributes.
INHERITED = ("Study ID", "Retired Person Name form", "Unrecognized defined term <99CXRGRAY>")


PASSED = []


def fail(message):
    sys.exit(f"pacs: {message}")


def passed(message):
    PASSED.append(message)
    print(f"pacs: {message}")


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def http(method, url, body=None, headers=None, timeout=60):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_until(what, predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    fail(f"{what}: not within {seconds} s")


def copy_with_new_uids(path, transfer_syntax=None, drop_pixels=False):
    """The fixture with a study, series and instance of its own (and optionally another transfer syntax declared in
    its file meta group, or no pixel data); returns (bytes, dataset)."""
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if drop_pixels:
        del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    if transfer_syntax:
        data = relabel_transfer_syntax(data, transfer_syntax)
    return data, ds


def relabel_transfer_syntax(data, uid):
    """`data` (a Part 10 file) with Transfer Syntax UID (0002,0010) set to `uid` and the meta group length fixed; the
    data set itself is unchanged."""
    value = uid.encode() + (b"\0" if len(uid) % 2 else b"")
    at = data.index(b"\x02\x00\x10\x00UI", 132)
    length = int.from_bytes(data[at + 6:at + 8], "little")
    old_end = at + 8 + length
    data = data[:at + 6] + len(value).to_bytes(2, "little") + value + data[old_end:]
    group_length = int.from_bytes(data[140:144], "little") + len(value) - length
    return data[:140] + group_length.to_bytes(4, "little") + data[144:]


def multipart(parts, content_type="application/dicom"):
    boundary = uuid.uuid4().hex
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + part + b"\r\n"
    body += f"--{boundary}--".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


class Orthanc:
    def __init__(self, work, port, serve_port):
        self.work, self.port = work, port
        self.db = os.path.join(work, "db")
        os.makedirs(self.db, exist_ok=True)
        os.chmod(work, 0o755)
        config = {
            "Name": "cxr-test", "StorageDirectory": self.db, "IndexDirectory": self.db, "HttpPort": port,
            "DicomServerEnabled": False, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "SaveJobs": False, "HttpTimeout": 60, "Plugins": [PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/",
                         "Servers": {"cxr": [f"http://127.0.0.1:{serve_port}/dicomweb/"]}},
        }
        self.config = os.path.join(work, "orthanc.json")
        with open(self.config, "w") as f:
            json.dump(config, f)
        self.process = None

    def start(self):
        command = ["/usr/sbin/Orthanc", self.config]
        if os.geteuid() == 0:
            shutil.chown(self.db, "nobody", "nogroup")
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + command
        log = open(os.path.join(self.work, "orthanc.log"), "a")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until("Orthanc answering", lambda: self.up(), 30)

    def up(self):
        try:
            return http("GET", self.url("/system"), timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def json(self, method, path, body=None):
        status, _, data = http(method, self.url(path), body)
        if status != 200:
            fail(f"Orthanc {method} {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data)

    def instances_of_study(self, study_uid):
        found = self.json("POST", "/tools/find", json.dumps(
            {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True}).encode())
        return found


class Server:
    def __init__(self, args, port, orthanc_port):
        self.port = port
        command = [args.server, "--bind", f"127.0.0.1:{port}", "--models", args.models, "--ort-dylib",
                   args.ort_dylib, "--default-model", "both",
                   "--dicomweb-push", f"http://127.0.0.1:{orthanc_port}/dicom-web/",
                   "--dicomweb-retry-initial-ms", "100", "--dicomweb-retry-max-secs", "1"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        for line in self.process.stdout:
            if "listening on" in line:
                break
            if time.time() > deadline:
                fail("cxr-serve did not start")
        wait_until("cxr-serve ready", lambda: self.get("/readyz")[0] == 200, 120)

    def get(self, path):
        return http("GET", f"http://127.0.0.1:{self.port}{path}")[::2]

    def post(self, path, body, content_type):
        status, headers, data = http("POST", f"http://127.0.0.1:{self.port}{path}", body,
                                     {"Content-Type": content_type})
        return status, headers.get("Content-Type", ""), data

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


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


def bad_inputs(server, orthanc_work, good, good_ds, own_sr):
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--ort-dylib", required=True)
    args = parser.parse_args()
    for tool in ("/usr/sbin/Orthanc", PLUGIN, shutil.which("dciodvfy") or "dciodvfy"):
        if not os.path.exists(tool):
            fail(f"{tool} is missing: run scripts/setup-system.sh --with-pacs")
    work = tempfile.mkdtemp(prefix="cxr-pacs-")
    orthanc_port, serve_port = free_ports(2)
    orthanc = Orthanc(work, orthanc_port, serve_port)
    server = None
    try:
        orthanc.start()
        server = Server(args, serve_port, orthanc_port)

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
        bad_inputs(server, work, first, first_ds, own)
        metrics = server.get("/metrics")[1].decode()
        for outcome in ("queued", "pushed"):
            if not re.search(rf'^cxr_dicomweb_results_total{{outcome="{outcome}"}} [1-9]', metrics, re.M):
                fail(f"cxr_dicomweb_results_total{{outcome=\"{outcome}\"}} is 0")
        print(f"python checks: {len(PASSED)} passed")
    finally:
        if server:
            server.stop()
        orthanc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
