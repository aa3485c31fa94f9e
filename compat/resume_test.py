#!/usr/bin/env python3
"""Transfers that resume after the client process was killed, against a running Cairn.

Started by compat/run.sh (over HTTP and over HTTPS); see harness.py for the environment. Every
transfer here is cut by SIGKILL of a child process, sent by PID, and finished by another process:
- downloads: the child streams a 64 MiB object into a file and stalls after about N bytes (a network
  that stopped); the parent kills it and resumes with `Range: bytes=N-` plus If-Match or If-Range on
  the ETag; the file must then be byte-exact. If the object changed meanwhile, If-Match gets 412 and
  If-Range the whole new object. Once with boto3, once with raw clients (curl, http.client) on
  presigned URLs.
- uploads: the child creates a 6-part multipart upload, stores the upload id and sends parts until
  part 4 stalls (its body stops after 1 MiB); the parent kills it. A new process calls ListParts,
  sends only the missing parts (4, 5, 6: recorded as sent) and completes. The stored parts must keep
  their ETag and LastModified: they were not sent again. Once with boto3, once with http.client on
  presigned URLs.
- s3transfer's parallel ranged GETs (download_file) carry If-Match on every range, and fail with 412
  when the object is replaced after the HEAD.
The same file is the children's program: `resume_test.py child-... ARGS` (see CHILDREN).
"""

import datetime
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.dont_write_bytecode = True
import harness  # noqa: E402
from s3transfer.exceptions import S3DownloadFailedError  # noqa: E402
from harness import MiB, WORK, check, expect_client_error, expect_eq, sha256_file  # noqa: E402

BUCKET = "resume-bucket"
DOWNLOAD_SIZE = 64 * MiB
# The child stops reading after this many bytes: not on a chunk (1 MiB) or a read-size boundary.
DOWNLOAD_STOP = 23 * MiB + 12345
PART_SIZE = 5 * MiB
PARTS = 6
# The last part ends inside a chunk.
UPLOAD_SIZE = PARTS * PART_SIZE - 1000
STALLED_PART = 4
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def spawn(*args):
    """Starts this file as a child process with the given mode and arguments."""
    return subprocess.Popen([sys.executable, __file__, *map(str, args)])


def kill(proc):
    """SIGKILL by PID, then reap; the child must have died of that signal."""
    proc.kill()
    proc.wait(timeout=30)
    expect_eq(proc.returncode, -signal.SIGKILL, "child exit status (killed by SIGKILL)")


def finish(proc, what, timeout=300):
    """Waits for a child that must exit 0."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise AssertionError(f"{what} did not finish within {timeout} s") from None
    expect_eq(code, 0, f"exit status of {what}")


def stall_forever(marker):
    """What a child does when its network stops: tell the parent, then wait to be killed. Should
    the parent die first (a timeout killed the suite), the child exits rather than linger."""
    parent = os.getppid()
    Path(marker).write_text("stalled\n")
    while os.getppid() == parent:
        time.sleep(0.05)
    os._exit(1)


def part_range(number):
    start = (number - 1) * PART_SIZE
    return start, min(start + PART_SIZE, UPLOAD_SIZE)


def parse_time(value):
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def parts_by_number(parts):
    """{part number: (ETag, LastModified, Size)} from boto3 dicts or a child's JSON report."""
    return {p["PartNumber"]: (p["ETag"], parse_time(p["LastModified"]), p["Size"]) for p in parts}


# ---------------------------------------------------------------------------------- children


def child_boto3_download(key, out, marker):
    """get_object streamed into `out`; stalls once DOWNLOAD_STOP bytes are written and flushed."""
    body = harness.client().get_object(Bucket=BUCKET, Key=key)["Body"]
    written = 0
    with open(out, "wb") as f:
        while chunk := body.read(100_000):
            f.write(chunk)
            f.flush()
            written += len(chunk)
            if written >= DOWNLOAD_STOP:
                stall_forever(marker)


class StallingBody(io.BytesIO):
    """A part body whose reads stop (as a dead network would) once 1 MiB of it has been read."""

    def __init__(self, data, marker):
        super().__init__(data)
        self.marker = marker

    def read(self, size=-1):
        if self.tell() >= MiB:
            stall_forever(self.marker)
        if size is None or size < 0 or size > MiB:
            size = MiB
        return super().read(size)


def child_boto3_upload(key, source, id_file, marker):
    """Creates the upload, records its id, sends parts 1.. until part STALLED_PART stalls."""
    s3 = harness.client()
    data = Path(source).read_bytes()
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, Metadata={"resumed": "yes"})["UploadId"]
    Path(id_file).write_text(upload_id)
    for number in range(1, PARTS + 1):
        start, end = part_range(number)
        body = data[start:end]
        if number == STALLED_PART:
            body = StallingBody(body, marker)
        s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
    raise SystemExit("the upload was meant to stall")


def child_boto3_resume_upload(key, source, id_file, report):
    """A new process: ListParts, send the missing parts only, list again, complete."""
    s3 = harness.client()
    data = Path(source).read_bytes()
    upload_id = Path(id_file).read_text()
    sent, created = [], []
    s3.meta.events.register(
        "before-parameter-build.s3.UploadPart", lambda params, **_: sent.append(params["PartNumber"])
    )
    s3.meta.events.register(
        "before-parameter-build.s3.CreateMultipartUpload", lambda params, **_: created.append(params)
    )

    def listed():
        pages = s3.get_paginator("list_parts").paginate(Bucket=BUCKET, Key=key, UploadId=upload_id)
        return [p for page in pages for p in page.get("Parts", [])]

    stored = {p["PartNumber"] for p in listed()}
    for number in range(1, PARTS + 1):
        if number not in stored:
            start, end = part_range(number)
            s3.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=data[start:end]
            )
    after = listed()
    done = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in after]},
    )
    Path(report).write_text(
        json.dumps(
            {
                "listed": sorted(stored),
                "sent": sent,
                "created_uploads": len(created),
                "parts_after": [
                    {
                        "PartNumber": p["PartNumber"],
                        "ETag": p["ETag"],
                        "LastModified": p["LastModified"].isoformat(),
                        "Size": p["Size"],
                    }
                    for p in after
                ],
                "etag": done["ETag"],
            }
        )
    )


def raw_put_part(url, body, marker=None):
    """PUT one part with http.client in 64 KiB writes; stalls after 2 MiB when marker is given."""
    conn = harness.connect(url)
    conn.putrequest("PUT", harness.path_of(url))
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    for offset in range(0, len(body), 64 * 1024):
        if marker and offset >= 2 * MiB:
            stall_forever(marker)
        conn.send(body[offset : offset + 64 * 1024])
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"part upload answered {response.status}: {answer[:300]!r}")
    return response.getheader("ETag")


def child_raw_upload(source, urls_file, marker):
    """Sends parts 1.. on presigned URLs until part STALLED_PART stalls mid-body."""
    data = Path(source).read_bytes()
    urls = json.loads(Path(urls_file).read_text())
    for number in range(1, PARTS + 1):
        start, end = part_range(number)
        raw_put_part(urls["parts"][str(number)], data[start:end], marker if number == STALLED_PART else None)
    raise SystemExit("the upload was meant to stall")


def raw_list_parts(url):
    status, _, body = harness.raw_request("GET", url)
    if status != 200:
        raise SystemExit(f"ListParts answered {status}: {body[:300]!r}")
    return [
        {
            "PartNumber": int(part.findtext(f"{S3_NS}PartNumber")),
            "ETag": part.findtext(f"{S3_NS}ETag"),
            "LastModified": part.findtext(f"{S3_NS}LastModified"),
            "Size": int(part.findtext(f"{S3_NS}Size")),
        }
        for part in ET.fromstring(body).iter(f"{S3_NS}Part")
    ]


def child_raw_resume_upload(source, urls_file, report):
    """A new process with http.client only: ListParts, missing parts, ListParts, complete."""
    data = Path(source).read_bytes()
    urls = json.loads(Path(urls_file).read_text())
    stored = {p["PartNumber"] for p in raw_list_parts(urls["list"])}
    sent = []
    for number in range(1, PARTS + 1):
        if number not in stored:
            start, end = part_range(number)
            raw_put_part(urls["parts"][str(number)], data[start:end])
            sent.append(number)
    after = raw_list_parts(urls["list"])
    complete = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
        f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag></Part>" for p in after
    )
    status, _, body = harness.raw_request("POST", urls["complete"], body=complete.encode())
    if status != 200:
        raise SystemExit(f"CompleteMultipartUpload answered {status}: {body[:300]!r}")
    etag = ET.fromstring(body).findtext(f"{S3_NS}ETag")
    Path(report).write_text(
        json.dumps({"listed": sorted(stored), "sent": sent, "parts_after": after, "etag": etag})
    )


CHILDREN = {
    "child-boto3-download": child_boto3_download,
    "child-boto3-upload": child_boto3_upload,
    "child-boto3-resume-upload": child_boto3_resume_upload,
    "child-raw-upload": child_raw_upload,
    "child-raw-resume-upload": child_raw_resume_upload,
}

# ------------------------------------------------------------------------------------ checks

s3 = harness.client()
# Presigned URLs for the raw clients, SigV4 (boto3's default in us-east-1 would be SigV2).
presigner = harness.client(signature_version="s3v4")
# The payloads, made by main() in the parent only: the object to download, what replaces it, the
# object to upload.
DATA = CHANGED = UPLOAD = b""
ETAGS = {}
RAW_PARTIAL = {}


def make_payloads():
    global DATA, CHANGED, UPLOAD
    DATA = os.urandom(DOWNLOAD_SIZE)
    CHANGED = os.urandom(24 * MiB + 77)
    UPLOAD = os.urandom(UPLOAD_SIZE)


def get_with_if_range(if_range, **params):
    """get_object with an If-Range header, which boto3's GetObject has no parameter for."""
    client = harness.client()

    def add_header(request, **kwargs):
        request.headers["If-Range"] = if_range

    client.meta.events.register_first("before-sign.s3.GetObject", add_header)
    return client.get_object(Bucket=BUCKET, **params)


def append_body(path, body):
    with open(path, "ab") as f:
        while chunk := body.read(MiB):
            f.write(chunk)


def wait_then_kill(proc, ready, what, timeout=120):
    """Waits until ready() (or the child's early death, which fails), then kills the child."""
    try:
        harness.wait_for(lambda: ready() or proc.poll() is not None, what, timeout)
    finally:
        kill(proc)


def killed_boto3_download(key, name):
    """Runs the boto3 download child until it stalls, kills it; returns (partial file, N)."""
    out, marker = WORK / f"{name}.part", WORK / f"{name}.stalled"
    wait_then_kill(spawn("child-boto3-download", key, out, marker), marker.exists, "the download to stall")
    size = out.stat().st_size
    if not DOWNLOAD_STOP <= size < DOWNLOAD_SIZE:
        raise AssertionError(f"partial download of {size} bytes, expected {DOWNLOAD_STOP}..{DOWNLOAD_SIZE}")
    return out, size


@check("setup: bucket and three 64 MiB objects uploaded with upload_file")
def t_setup():
    s3.create_bucket(Bucket=BUCKET)
    source = WORK / "data.bin"
    source.write_bytes(DATA)
    for key in ("dl/boto3", "dl/raw", "dl/transfer"):
        s3.upload_file(str(source), BUCKET, key)
        ETAGS[key] = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    expect_eq(ETAGS["dl/boto3"], harness.multipart_etag(DATA, 8 * MiB), "ETag")


@check("boto3: get_object killed (SIGKILL) after N bytes; Range bytes=N- with IfMatch completes it")
def t_boto3_resume_if_match():
    partial, n = killed_boto3_download("dl/boto3", "boto3-if-match")
    got = s3.get_object(Bucket=BUCKET, Key="dl/boto3", Range=f"bytes={n}-", IfMatch=ETAGS["dl/boto3"])
    expect_eq(got["ResponseMetadata"]["HTTPStatusCode"], 206, "status")
    expect_eq(got["ContentRange"], f"bytes {n}-{DOWNLOAD_SIZE - 1}/{DOWNLOAD_SIZE}", "Content-Range")
    expect_eq(got["ContentLength"], DOWNLOAD_SIZE - n, "Content-Length")
    expect_eq(got["ETag"], ETAGS["dl/boto3"], "ETag")
    append_body(partial, got["Body"])
    expect_eq(sha256_file(partial), hashlib.sha256(DATA).hexdigest(), f"sha256 (resumed at {n})")


@check("boto3: get_object killed (SIGKILL) after N bytes; Range bytes=N- with If-Range completes it")
def t_boto3_resume_if_range():
    partial, n = killed_boto3_download("dl/boto3", "boto3-if-range")
    got = get_with_if_range(ETAGS["dl/boto3"], Key="dl/boto3", Range=f"bytes={n}-")
    expect_eq(got["ResponseMetadata"]["HTTPStatusCode"], 206, "status")
    expect_eq(got["ContentRange"], f"bytes {n}-{DOWNLOAD_SIZE - 1}/{DOWNLOAD_SIZE}", "Content-Range")
    append_body(partial, got["Body"])
    expect_eq(sha256_file(partial), hashlib.sha256(DATA).hexdigest(), f"sha256 (resumed at {n})")


@check("boto3: object replaced before the resume: IfMatch -> 412, If-Range -> 200 with the new object")
def t_boto3_resume_changed():
    partial, n = killed_boto3_download("dl/boto3", "boto3-changed")
    old = ETAGS["dl/boto3"]
    new = s3.put_object(Bucket=BUCKET, Key="dl/boto3", Body=CHANGED)["ETag"]
    expect_client_error(
        "PreconditionFailed",
        412,
        s3.get_object,
        Bucket=BUCKET,
        Key="dl/boto3",
        Range=f"bytes={n}-",
        IfMatch=old,
    )
    got = get_with_if_range(old, Key="dl/boto3", Range=f"bytes={n}-")
    expect_eq(got["ResponseMetadata"]["HTTPStatusCode"], 200, "status with a stale If-Range")
    expect_eq(got.get("ContentRange"), None, "Content-Range of a 200")
    expect_eq((got["ContentLength"], got["ETag"]), (len(CHANGED), new), "length and ETag")
    expect_eq(got["Body"].read() == CHANGED, True, "body is the whole new object")
    got = get_with_if_range(new, Key="dl/boto3", Range=f"bytes={n}-")
    expect_eq(got["ResponseMetadata"]["HTTPStatusCode"], 206, "status with the current ETag")
    expect_eq(got["Body"].read() == CHANGED[n:], True, "body from N with the current ETag")
    partial.unlink()


def presigned_get(key):
    params = {"Bucket": BUCKET, "Key": key}
    return presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=600)


def curl(*args):
    """Runs curl and returns its status code line; a transfer error fails the check."""
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-w", "%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        raise AssertionError(f"curl {args[-1][:80]}... exited {done.returncode}: {done.stderr}")
    return done.stdout


@check("curl download killed (SIGKILL) mid-transfer; `curl -C -` with If-Match completes it")
def t_raw_resume_curl():
    url = presigned_get("dl/raw")
    partial = WORK / "raw-curl.part"
    # 32 MiB/s: the 64 MiB take two seconds, so the kill lands mid-transfer.
    proc = subprocess.Popen(["curl", "-sS", "--limit-rate", "32M", "-o", str(partial), url])
    wait_then_kill(proc, lambda: partial.exists() and partial.stat().st_size >= 8 * MiB, "8 MiB downloaded")
    n = partial.stat().st_size
    if not 8 * MiB <= n < DOWNLOAD_SIZE:
        raise AssertionError(f"partial download of {n} bytes")
    RAW_PARTIAL["n"] = n
    RAW_PARTIAL["bytes"] = partial.read_bytes()
    # -C - continues from the file's size: curl itself sends Range: bytes=N-.
    status = curl("-C", "-", "-H", f"If-Match: {ETAGS['dl/raw']}", "-o", str(partial), url)
    expect_eq(status, "206", f"status of the resumed download (from {n})")
    expect_eq(sha256_file(partial), hashlib.sha256(DATA).hexdigest(), f"sha256 (resumed at {n})")
    partial.unlink()


@check("http.client on a presigned URL resumes the killed curl download with If-Range; then changed")
def t_raw_resume_http_client():
    url = presigned_get("dl/raw")
    old, n = ETAGS["dl/raw"], RAW_PARTIAL["n"]
    status, headers, body = harness.raw_request("GET", url, headers={"Range": f"bytes={n}-", "If-Range": old})
    expect_eq(status, 206, "status with a matching If-Range")
    expect_eq(headers.get("content-range"), f"bytes {n}-{DOWNLOAD_SIZE - 1}/{DOWNLOAD_SIZE}", "Content-Range")
    expect_eq(RAW_PARTIAL["bytes"] + body == DATA, True, "the partial file plus the body is the object")

    new = s3.put_object(Bucket=BUCKET, Key="dl/raw", Body=CHANGED)["ETag"]
    status, _, body = harness.raw_request("GET", url, headers={"Range": f"bytes={n}-", "If-Match": old})
    expect_eq(status, 412, "status with a stale If-Match")
    if b"<Code>PreconditionFailed</Code>" not in body:
        raise AssertionError(f"412 body lacks PreconditionFailed: {body[:300]!r}")
    status, headers, body = harness.raw_request("GET", url, headers={"Range": f"bytes={n}-", "If-Range": old})
    expect_eq(status, 200, "status with a stale If-Range")
    expect_eq((headers.get("etag"), headers.get("content-range")), (new, None), "ETag, Content-Range")
    expect_eq(body == CHANGED, True, "body is the whole new object")


@check("download_file of 64 MiB: 8 ranged GETs, each with IfMatch on the ETag; byte-exact")
def t_transfer_if_match():
    client = harness.client()
    seen = []

    def note(params, **kwargs):
        seen.append((params.get("Range"), params.get("IfMatch")))

    client.meta.events.register("before-parameter-build.s3.GetObject", note)
    target = WORK / "transfer.bin"
    client.download_file(BUCKET, "dl/transfer", str(target))
    expect_eq(sha256_file(target), hashlib.sha256(DATA).hexdigest(), "sha256")
    # s3transfer leaves the last range open-ended.
    want = [f"bytes={i * 8 * MiB}-{(i + 1) * 8 * MiB - 1}" for i in range(7)] + [f"bytes={56 * MiB}-"]
    expect_eq(sorted((r for r, _ in seen), key=lambda r: int(r[6:].split("-")[0])), want, "ranges")
    expect_eq({if_match for _, if_match in seen}, {ETAGS["dl/transfer"]}, "IfMatch of the GETs")
    target.unlink()


@check("download_file while the object is replaced after its HEAD: fails on 412, leaves no file")
def t_transfer_object_replaced():
    client = harness.client()
    lock = threading.Lock()
    replaced = []

    def replace_once(**kwargs):
        # Runs in the transfer's threads before each ranged GET is built: the first one swaps the
        # object, so every GET carries the ETag of a version that is gone.
        with lock:
            if not replaced:
                replaced.append(s3.put_object(Bucket=BUCKET, Key="dl/transfer", Body=CHANGED)["ETag"])

    client.meta.events.register("before-parameter-build.s3.GetObject", replace_once)
    target = WORK / "replaced" / "transfer.bin"
    target.parent.mkdir()
    # s3transfer turns the 412 PreconditionFailed of a ranged GET into this error.
    try:
        client.download_file(BUCKET, "dl/transfer", str(target))
    except S3DownloadFailedError as err:
        if "did not match expected ETag" not in str(err):
            raise
    else:
        raise AssertionError("download_file succeeded although the object changed after its HEAD")
    expect_eq(len(replaced), 1, "replacements")
    expect_eq(sorted(os.listdir(target.parent)), [], "files left behind")


def killed_upload(child, *args):
    """Runs an upload child until its part STALLED_PART stalls, then kills it."""
    marker = WORK / f"{child}.stalled"
    wait_then_kill(spawn(child, *args, marker), marker.exists, f"part {STALLED_PART} to stall")


def stored_parts(key, upload_id):
    return s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id).get("Parts", [])


def check_resumed(key, upload_id, before, report):
    """The resumer listed 1..3, sent 4..6, left 1..3 as they were, and the object is exact."""
    expect_eq(sorted(before), list(range(1, STALLED_PART)), "parts stored when the client was killed")
    expect_eq(report["listed"], list(range(1, STALLED_PART)), "parts the resumer found with ListParts")
    expect_eq(report["sent"], list(range(STALLED_PART, PARTS + 1)), "parts the resumer sent")
    after = parts_by_number(report["parts_after"])
    expect_eq(sorted(after), list(range(1, PARTS + 1)), "parts before completion")
    for number in before:
        expect_eq(after[number], before[number], f"part {number} (ETag, LastModified, Size) after the resume")
    expect_eq(report["etag"], harness.multipart_etag(UPLOAD, PART_SIZE), "ETag of the completed object")
    got = s3.get_object(Bucket=BUCKET, Key=key)
    expect_eq(hashlib.sha256(got["Body"].read()).hexdigest(), hashlib.sha256(UPLOAD).hexdigest(), "sha256")
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
    expect_eq([u["UploadId"] for u in uploads], [], f"uploads left for {key} (was {upload_id})")


@check("boto3 multipart upload killed (SIGKILL) in part 4 of 6; a new process sends only 4..6")
def t_boto3_resume_upload():
    source, id_file, report = WORK / "upload.bin", WORK / "boto3-upload.id", WORK / "boto3-upload.json"
    source.write_bytes(UPLOAD)
    killed_upload("child-boto3-upload", "up/boto3", source, id_file)
    upload_id = id_file.read_text()
    before = parts_by_number(stored_parts("up/boto3", upload_id))
    # LastModified has one-second resolution: a part sent again would show a later one.
    time.sleep(1.1)
    finish(spawn("child-boto3-resume-upload", "up/boto3", source, id_file, report), "the resuming process")
    result = json.loads(report.read_text())
    expect_eq(result["created_uploads"], 0, "CreateMultipartUpload calls of the resumer")
    check_resumed("up/boto3", upload_id, before, result)
    expect_eq(s3.head_object(Bucket=BUCKET, Key="up/boto3")["Metadata"], {"resumed": "yes"}, "Metadata")


@check("http.client multipart upload on presigned URLs killed mid-part 4; a new process sends 4..6")
def t_raw_resume_upload():
    source, urls_file, report = WORK / "upload.bin", WORK / "raw-upload.urls", WORK / "raw-upload.json"
    source.write_bytes(UPLOAD)
    key = "up/raw"
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    params = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id}

    def presign(operation, **more):
        return presigner.generate_presigned_url(operation, Params={**params, **more}, ExpiresIn=600)

    urls = {
        "parts": {str(n): presign("upload_part", PartNumber=n) for n in range(1, PARTS + 1)},
        "list": presign("list_parts"),
        "complete": presign("complete_multipart_upload"),
    }
    urls_file.write_text(json.dumps(urls))
    killed_upload("child-raw-upload", source, urls_file)
    before = parts_by_number(stored_parts(key, upload_id))
    time.sleep(1.1)
    finish(spawn("child-raw-resume-upload", source, urls_file, report), "the resuming process")
    check_resumed(key, upload_id, before, json.loads(report.read_text()))


@check("cleanup: delete the objects and the bucket")
def t_cleanup():
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    for upload in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=BUCKET)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
        sys.exit(0)
    make_payloads()
    sys.exit(harness.run("resume"))
