"""What the DICOMweb test (tests/python/check_pacs.py) and benchmark (bench/python/pacs_bench.py) share: Orthanc as a
plain process on a free loopback port with a fresh database (as `nobody` when run as root), cxr-serve pushing to it,
fixture copies with UIDs of their own, STOW-RS bodies and small HTTP helpers. With CXR_KEEP_PACS_WORK set, the work
folder (both logs, Orthanc's database, the downloaded results) is kept for a look after a failure."""
import contextlib
import io
import json
import os
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

import pydicom
from pydicom.uid import generate_uid

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def fail(message):
    sys.exit(f"pacs: {message}")


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
    """Orthanc with DICOMweb on `port` and cxr-serve on `serve_port` as its DICOMweb server `cxr`."""

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
    """cxr-serve on `port`, pushing its results to Orthanc on `orthanc_port`, retrying fast."""

    def __init__(self, args, port, orthanc_port, log, default_model="both"):
        self.port = port
        command = [args.server, "--bind", f"127.0.0.1:{port}", "--models", args.models, "--ort-dylib",
                   args.ort_dylib, "--default-model", default_model,
                   "--dicomweb-push", f"http://127.0.0.1:{orthanc_port}/dicom-web/",
                   "--dicomweb-retry-initial-ms", "100", "--dicomweb-retry-max-secs", "1"]
        # The log goes to a file: a pipe nobody reads would stall the server once it is full.
        self.process = subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        wait_until("cxr-serve ready", lambda: self.ready(), 120)

    def ready(self):
        if self.process.poll() is not None:
            fail(f"cxr-serve exited with {self.process.returncode}")
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

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


def server_arguments(description):
    """The command line of the DICOMweb test and benchmark: the server binary, the models and ONNX Runtime."""
    import argparse
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--server", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--ort-dylib", required=True)
    return parser


@contextlib.contextmanager
def pacs(args, default_model="both"):
    """A fresh Orthanc and a cxr-serve routing to each other, as (work folder, Orthanc, Server); afterwards both are
    stopped and the work folder is removed."""
    work = tempfile.mkdtemp(prefix="cxr-pacs-")
    orthanc_port, serve_port = free_ports(2)
    orthanc = Orthanc(work, orthanc_port, serve_port)
    server = None
    try:
        orthanc.start()
        server = Server(args, serve_port, orthanc_port, os.path.join(work, "cxr-serve.log"), default_model)
        yield work, orthanc, server
    finally:
        if server:
            server.stop()
        orthanc.stop()
        if not os.environ.get("CXR_KEEP_PACS_WORK"):
            shutil.rmtree(work, ignore_errors=True)
