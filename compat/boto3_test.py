#!/usr/bin/env python3
"""boto3 against a running Cairn, at boto3's default settings (endpoint and credentials aside).

Started by compat/run.sh, over HTTP and over HTTPS, which provides the server and the environment
(CAIRN_ENDPOINT, CAIRN_COMPAT_WORK, CAIRN_COMPAT_COUNTS, AWS_* variables with path-style addressing;
over HTTPS, AWS_CA_BUNDLE and SSL_CERT_FILE name the test certificate). Plain python3:
each check is a function run in order; a failed assertion or an unexpected exception fails that check
and the suite goes on. The server cuts objects into 1 MiB chunks; boto3's transfer manager cuts files
above 8 MiB into 8 MiB parts sent by 10 threads at once.
"""

import base64
import datetime
import hashlib
import io
import os
import sys
import time
import urllib.error
import urllib.request
import zlib

import boto3
from botocore.config import Config
from botocore.httpchecksum import StreamingChecksumBody

sys.dont_write_bytecode = True
from harness import (  # noqa: E402
    ENDPOINT,
    WORK,
    MiB,
    check,
    expect_client_error,
    expect_eq,
    md5_etag,
    multipart_etag,
    run,
)

BUCKET = "boto-bucket"
HOSTILE_BUCKET = "boto-hostile"

s3 = boto3.client("s3", endpoint_url=ENDPOINT)
# boto3 presigns with SigV2 by default in us-east-1 (a legacy default); `presigner` asks for SigV4.
presigner = boto3.client("s3", endpoint_url=ENDPOINT, config=Config(signature_version="s3v4"))

# Every response boto3 had to retry, as "Operation (attempts)": a server that answers correctly
# needs none here.
RETRIED = []


def _note_retries(http_response, parsed, model, **kwargs):
    attempts = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    if attempts:
        RETRIED.append(f"{model.name} ({attempts} retries)")


s3.meta.events.register("after-call.s3", _note_retries)












def http(method, url, data=None, headers=None):
    """A plain urllib request; returns (status, body) for any status."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


BIG = os.urandom(40 * MiB)
BIG_PATH = WORK / "big.bin"
BIG_PATH.write_bytes(BIG)
SMALL = os.urandom(3000)


@check("create_bucket, head_bucket, list_buckets")
def t_buckets():
    s3.create_bucket(Bucket=BUCKET)
    s3.head_bucket(Bucket=BUCKET)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if BUCKET not in names:
        raise AssertionError(f"{BUCKET} not in {names}")


@check("upload_file of 40 MiB (multipart, 10 threads) with ExtraArgs")
def t_upload_file():
    s3.upload_file(
        str(BIG_PATH),
        BUCKET,
        "big/40m.bin",
        ExtraArgs={"Metadata": {"origin": "boto3"}, "ContentType": "application/x-boto"},
    )
    head = s3.head_object(Bucket=BUCKET, Key="big/40m.bin")
    expect_eq(head["ContentLength"], 40 * MiB, "ContentLength")
    expect_eq(head["ETag"], multipart_etag(BIG, 8 * MiB), "ETag")
    expect_eq(head["ContentType"], "application/x-boto", "ContentType")
    expect_eq(head["Metadata"], {"origin": "boto3"}, "Metadata")


@check("download_file of 40 MiB (parallel ranged GETs) is byte-exact")
def t_download_file():
    target = WORK / "big.down"
    s3.download_file(BUCKET, "big/40m.bin", str(target))
    expect_eq(hashlib.sha256(target.read_bytes()).hexdigest(), hashlib.sha256(BIG).hexdigest(), "sha256")


@check("upload_fileobj / download_fileobj of 5 MiB")
def t_fileobj():
    data = BIG[: 5 * MiB]
    s3.upload_fileobj(io.BytesIO(data), BUCKET, "big/5m.bin")
    out = io.BytesIO()
    s3.download_fileobj(BUCKET, "big/5m.bin", out)
    expect_eq(out.getvalue() == data, True, "byte-exact")
    expect_eq(s3.head_object(Bucket=BUCKET, Key="big/5m.bin")["ETag"], md5_etag(data), "ETag")


@check("get_object with Range: inside a chunk, across chunk and part boundaries, suffix, open")
def t_get_ranges():
    size = len(BIG)
    cases = [
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=1048575-1048576", MiB - 1, MiB),
        ("bytes=1000000-3500000", 1000000, 3500000),
        ("bytes=8388600-8388620", 8 * MiB - 8, 8 * MiB + 12),
        ("bytes=8388608-25165823", 8 * MiB, 24 * MiB - 1),
        ("bytes=-5", size - 5, size - 1),
        ("bytes=41943000-", 41943000, size - 1),
        ("bytes=41943000-99999999", 41943000, size - 1),
    ]
    for header, first, last in cases:
        got = s3.get_object(Bucket=BUCKET, Key="big/40m.bin", Range=header)
        expect_eq(got["ResponseMetadata"]["HTTPStatusCode"], 206, f"status for {header}")
        expect_eq(got["ContentRange"], f"bytes {first}-{last}/{size}", f"Content-Range for {header}")
        body = got["Body"].read()
        expect_eq(len(body), last - first + 1, f"length for {header}")
        expect_eq(body == BIG[first : last + 1], True, f"bytes for {header}")


@check("get_object Range past the end -> 416 InvalidRange with Content-Range bytes */SIZE")
def t_invalid_range():
    err = expect_client_error(
        "InvalidRange", 416, s3.get_object, Bucket=BUCKET, Key="big/40m.bin", Range=f"bytes={40 * MiB}-"
    )
    headers = err.response["ResponseMetadata"]["HTTPHeaders"]
    expect_eq(headers.get("content-range"), f"bytes */{40 * MiB}", "Content-Range")


@check("get_object conditionals: If-Match, If-None-Match, If-(Un)Modified-Since; 412 outranks 416")
def t_conditionals():
    head = s3.head_object(Bucket=BUCKET, Key="big/5m.bin")
    etag, modified = head["ETag"], head["LastModified"]
    day = datetime.timedelta(days=1)
    ok = s3.get_object(Bucket=BUCKET, Key="big/5m.bin", IfMatch=etag, Range="bytes=0-9")
    expect_eq(ok["Body"].read(), BIG[:10], "body with a matching If-Match")
    expect_client_error(
        "PreconditionFailed", 412, s3.get_object, Bucket=BUCKET, Key="big/5m.bin", IfMatch='"0123"'
    )
    expect_client_error("304", 304, s3.get_object, Bucket=BUCKET, Key="big/5m.bin", IfNoneMatch=etag)
    expect_client_error(
        "304", 304, s3.get_object, Bucket=BUCKET, Key="big/5m.bin", IfModifiedSince=modified
    )
    s3.get_object(Bucket=BUCKET, Key="big/5m.bin", IfModifiedSince=modified - day)["Body"].read()
    expect_client_error(
        "PreconditionFailed",
        412,
        s3.get_object,
        Bucket=BUCKET,
        Key="big/5m.bin",
        IfUnmodifiedSince=modified - day,
    )
    expect_client_error(
        "PreconditionFailed",
        412,
        s3.get_object,
        Bucket=BUCKET,
        Key="big/5m.bin",
        IfMatch='"0123"',
        Range=f"bytes={10 * MiB}-",
    )


LIST_KEYS = sorted(
    [f"list/x/k{i:02}" for i in range(10)]
    + [f"list/y/k{i:02}" for i in range(10)]
    + [f"list/z{i}" for i in range(4)]
    + ["list/x"]  # an object and keys under the same name + "/": both must be listed
)


@check("put_object 25 keys, then a list_objects_v2 paginator with PageSize=7")
def t_paginator():
    for key in LIST_KEYS:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="list/", PaginationConfig={"PageSize": 7}
        )
    )
    expect_eq([len(p.get("Contents", [])) for p in pages], [7, 7, 7, 4], "page sizes")
    expect_eq([p["IsTruncated"] for p in pages], [True, True, True, False], "IsTruncated")
    keys = [c["Key"] for p in pages for c in p.get("Contents", [])]
    expect_eq(keys, LIST_KEYS, "keys")
    sizes = {c["Key"]: c["Size"] for p in pages for c in p["Contents"]}
    expect_eq(sizes["list/x/k03"], len("list/x/k03"), "Size in a listing")


@check("list_objects_v2 paginator with Delimiter: an object and a prefix of the same name")
def t_paginator_delimiter():
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": 2}
        )
    )
    prefixes = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    keys = [c["Key"] for page in pages for c in page.get("Contents", [])]
    expect_eq(prefixes, ["list/x/", "list/y/"], "CommonPrefixes")
    expect_eq(keys, ["list/x", "list/z0", "list/z1", "list/z2", "list/z3"], "Contents")


@check("list_objects (v1) paginator with PageSize=6")
def t_paginator_v1():
    pages = list(
        s3.get_paginator("list_objects").paginate(
            Bucket=BUCKET, Prefix="list/", PaginationConfig={"PageSize": 6}
        )
    )
    keys = [c["Key"] for p in pages for c in p.get("Contents", [])]
    expect_eq(keys, LIST_KEYS, "keys")
    expect_eq(len(pages), 5, "pages")


@check("put_object / get_object / head_object carry metadata and content headers")
def t_metadata():
    expires = datetime.datetime(2031, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
    put = s3.put_object(
        Bucket=BUCKET,
        Key="meta/obj",
        Body=SMALL,
        Metadata={"Color": "Blue", "multi-word": "two words"},
        ContentType="application/x-compat",
        ContentDisposition='attachment; filename="small.bin"',
        ContentLanguage="de",
        CacheControl="no-cache",
        Expires=expires,
    )
    expect_eq(put["ETag"], md5_etag(SMALL), "put ETag")
    for got in (
        s3.get_object(Bucket=BUCKET, Key="meta/obj"),
        s3.head_object(Bucket=BUCKET, Key="meta/obj"),
    ):
        expect_eq(got["Metadata"], {"color": "Blue", "multi-word": "two words"}, "Metadata")
        expect_eq(got["ContentType"], "application/x-compat", "ContentType")
        expect_eq(got["ContentDisposition"], 'attachment; filename="small.bin"', "ContentDisposition")
        expect_eq(got["ContentLanguage"], "de", "ContentLanguage")
        expect_eq(got["CacheControl"], "no-cache", "CacheControl")
        expect_eq(got["ContentLength"], len(SMALL), "ContentLength")
        expect_eq(got["ETag"], md5_etag(SMALL), "ETag")
        headers = got["ResponseMetadata"]["HTTPHeaders"]
        expect_eq(headers.get("expires"), "Mon, 03 Feb 2031 04:05:06 GMT", "Expires header")
        expect_eq(headers.get("accept-ranges"), "bytes", "Accept-Ranges")
        if "x-amz-request-id" not in headers:
            raise AssertionError("no x-amz-request-id header")
    body = s3.get_object(Bucket=BUCKET, Key="meta/obj")["Body"].read()
    expect_eq(body == SMALL, True, "body")


@check("overwriting a key replaces content, length, ETag and metadata")
def t_overwrite():
    s3.put_object(Bucket=BUCKET, Key="over/obj", Body=BIG[: 3 * MiB], Metadata={"v": "1"})
    s3.put_object(Bucket=BUCKET, Key="over/obj", Body=SMALL, Metadata={"v": "2"})
    got = s3.get_object(Bucket=BUCKET, Key="over/obj")
    expect_eq(got["Body"].read() == SMALL, True, "body after overwrite")
    expect_eq((got["ContentLength"], got["ETag"], got["Metadata"]), (len(SMALL), md5_etag(SMALL), {"v": "2"}),
              "length, ETag, metadata")
    # A multipart object overwritten by a single PUT, and back.
    s3.upload_file(str(BIG_PATH), BUCKET, "over/obj")
    expect_eq(s3.head_object(Bucket=BUCKET, Key="over/obj")["ETag"], multipart_etag(BIG, 8 * MiB), "ETag")
    s3.put_object(Bucket=BUCKET, Key="over/obj", Body=b"")
    got = s3.get_object(Bucket=BUCKET, Key="over/obj")
    expect_eq((got["Body"].read(), got["ETag"]), (b"", md5_etag(b"")), "empty object")
    s3.delete_object(Bucket=BUCKET, Key="over/obj")


@check("a zero-byte 'folder/' marker lists as a CommonPrefix and as an object under its prefix")
def t_folder_marker():
    s3.put_object(Bucket=BUCKET, Key="folder/inside", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="folder/", Body=b"")
    top = s3.list_objects_v2(Bucket=BUCKET, Prefix="fold", Delimiter="/")
    expect_eq([p["Prefix"] for p in top.get("CommonPrefixes", [])], ["folder/"], "CommonPrefixes")
    expect_eq(top.get("Contents", []), [], "Contents at the top")
    inner = s3.list_objects_v2(Bucket=BUCKET, Prefix="folder/", Delimiter="/")
    expect_eq([c["Key"] for c in inner["Contents"]], ["folder/", "folder/inside"], "Contents under folder/")
    expect_eq(s3.head_object(Bucket=BUCKET, Key="folder/")["ContentLength"], 0, "marker length")


@check("a zero-byte put_object, then another put_object on the same connection: no retry")
def t_empty_put_then_put():
    # botocore sends `Expect: 100-continue` on every PutObject. When a zero-byte PUT is answered
    # without an interim 100, botocore keeps that early status line for the connection's next
    # response and misreads it, then waits out its read timeout (60 s by default; 10 s here to fail
    # fast) and retries. AWS answers such PUTs so that the next request is unaffected.
    client = boto3.client("s3", endpoint_url=ENDPOINT, config=Config(read_timeout=10))
    client.put_object(Bucket=BUCKET, Key="empty/first", Body=b"")
    started = time.monotonic()
    second = client.put_object(Bucket=BUCKET, Key="empty/second", Body=b"second")
    took = time.monotonic() - started
    expect_eq(second["ResponseMetadata"]["RetryAttempts"], 0, f"retries of the second PUT ({took:.1f}s)")
    expect_eq(client.get_object(Bucket=BUCKET, Key="empty/second")["Body"].read(), b"second", "body")


@check("1005 keys: MaxKeys is capped at 1000, the paginator walks all of them")
def t_many_keys():
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"many/{i:04}" for i in range(1005)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode()), keys))
    first = s3.list_objects_v2(Bucket=BUCKET, Prefix="many/", MaxKeys=5000)
    expect_eq(first["KeyCount"], 1000, "KeyCount of one page")
    expect_eq(first["IsTruncated"], True, "IsTruncated")
    if not first.get("NextContinuationToken"):
        raise AssertionError("truncated page without NextContinuationToken")
    listed = [
        c["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="many/")
        for c in page.get("Contents", [])
    ]
    expect_eq(listed, keys, "all keys")
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        done = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": batch, "Quiet": True})
        expect_eq(done.get("Errors", []), [], "delete_objects Errors")
    expect_eq(s3.list_objects_v2(Bucket=BUCKET, Prefix="many/")["KeyCount"], 0, "KeyCount after delete")


HOSTILE_KEYS = [
    'a b+c%d/é/"&',
    "x+y z",
    "q?u=e&r#y",
    "semi;colon,comma:colon@at$dollar=eq",
    "dir//double//slash",
    "日本語/ü/ñ",
    "quote'apos<lt>gt",
    "~tilde!bang*star(paren)[bracket]{brace}",
    "percent%2Fencoded%20already",
    "trailing space ",
    " leading space",
    "back\\slash",
    "emoji/😀",
    "dots/./and/../x",
]


@check("hostile key names round-trip through put/get/head/list/copy/delete")
def t_hostile_keys():
    s3.create_bucket(Bucket=HOSTILE_BUCKET)
    for i, key in enumerate(HOSTILE_KEYS):
        data = f"{i}:{key}".encode() + SMALL
        try:
            s3.put_object(Bucket=HOSTILE_BUCKET, Key=key, Body=data)
            expect_eq(s3.get_object(Bucket=HOSTILE_BUCKET, Key=key)["Body"].read() == data, True, "get")
            expect_eq(s3.head_object(Bucket=HOSTILE_BUCKET, Key=key)["ContentLength"], len(data), "head")
            listed = s3.list_objects_v2(Bucket=HOSTILE_BUCKET, Prefix=key).get("Contents", [])
            expect_eq([c["Key"] for c in listed], [key], "list with the key as prefix")
            s3.copy_object(
                Bucket=HOSTILE_BUCKET, Key=key + ".copy", CopySource={"Bucket": HOSTILE_BUCKET, "Key": key}
            )
            copy = s3.get_object(Bucket=HOSTILE_BUCKET, Key=key + ".copy")["Body"].read()
            expect_eq(copy == data, True, "copy")
        except Exception as err:
            raise AssertionError(f"key {key!r}: {err}") from err
    listed = [
        c["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=HOSTILE_BUCKET)
        for c in page.get("Contents", [])
    ]
    want = sorted(HOSTILE_KEYS + [k + ".copy" for k in HOSTILE_KEYS], key=lambda k: k.encode())
    expect_eq(listed, want, "whole listing in UTF-8 byte order")
    for key in HOSTILE_KEYS:
        s3.delete_object(Bucket=HOSTILE_BUCKET, Key=key)
        expect_client_error("404", 404, s3.head_object, Bucket=HOSTILE_BUCKET, Key=key)
    deleted = s3.delete_objects(
        Bucket=HOSTILE_BUCKET, Delete={"Objects": [{"Key": k + ".copy"} for k in HOSTILE_KEYS]}
    )
    expect_eq(
        sorted(d["Key"] for d in deleted.get("Deleted", [])),
        sorted(k + ".copy" for k in HOSTILE_KEYS),
        "delete_objects Deleted",
    )
    expect_eq(s3.list_objects_v2(Bucket=HOSTILE_BUCKET).get("KeyCount"), 0, "KeyCount after deletes")
    s3.delete_bucket(Bucket=HOSTILE_BUCKET)


@check("ClientError codes: NoSuchKey, 404 on head, NoSuchBucket, NoSuchUpload")
def t_errors():
    expect_client_error("NoSuchKey", 404, s3.get_object, Bucket=BUCKET, Key="no/such/key")
    expect_client_error("404", 404, s3.head_object, Bucket=BUCKET, Key="no/such/key")
    expect_client_error("NoSuchBucket", 404, s3.get_object, Bucket="no-such-bucket-boto", Key="k")
    expect_client_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket="no-such-bucket-boto")
    expect_client_error("404", 404, s3.head_bucket, Bucket="no-such-bucket-boto")
    expect_client_error(
        "NoSuchUpload", 404, s3.list_parts, Bucket=BUCKET, Key="big/5m.bin", UploadId="no-such-upload"
    )
    expect_client_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=BUCKET)
    expect_client_error("InvalidBucketName", 400, s3.create_bucket, Bucket="ab")


@check("get_object IfMatch with a wrong ETag -> PreconditionFailed (412)")
def t_precondition_failed():
    expect_client_error(
        "PreconditionFailed", 412, s3.get_object, Bucket=BUCKET, Key="big/40m.bin", IfMatch='"deadbeef"'
    )
    # A HEAD response has no body, so botocore can only report the status as the code.
    expect_client_error("412", 412, s3.head_object, Bucket=BUCKET, Key="big/40m.bin", IfMatch='"deadbeef"')


@check("download_file of a missing key raises a 404 ClientError")
def t_download_missing():
    expect_client_error("404", 404, s3.download_file, BUCKET, "no/such/key", str(WORK / "missing"))


@check("multipart by hand: 5 MiB + 5 MiB + 1 KiB, list_parts, complete, part GET")
def t_multipart():
    data = BIG[: 10 * MiB + 1024]
    parts_data = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/manual", Metadata={"k": "v"})
    upload_id = upload["UploadId"]
    etags = []
    for number, body in enumerate(parts_data, start=1):
        etag = s3.upload_part(
            Bucket=BUCKET, Key="mp/manual", UploadId=upload_id, PartNumber=number, Body=body
        )["ETag"]
        expect_eq(etag, md5_etag(body), f"ETag of part {number}")
        etags.append(etag)
    listed = s3.list_parts(Bucket=BUCKET, Key="mp/manual", UploadId=upload_id)["Parts"]
    expect_eq([(p["PartNumber"], p["Size"], p["ETag"]) for p in listed],
              [(n + 1, len(b), e) for n, (b, e) in enumerate(zip(parts_data, etags))], "parts")
    uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    if upload_id not in [u["UploadId"] for u in uploads]:
        raise AssertionError(f"upload {upload_id} not in list_multipart_uploads: {uploads}")
    done = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="mp/manual",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
    )
    expect_eq(done["ETag"], multipart_etag(data, 5 * MiB), "completed ETag")
    got = s3.get_object(Bucket=BUCKET, Key="mp/manual")
    expect_eq(got["Body"].read() == data, True, "body")
    expect_eq(got["Metadata"], {"k": "v"}, "Metadata")
    part = s3.get_object(Bucket=BUCKET, Key="mp/manual", PartNumber=3)
    expect_eq(part["Body"].read() == parts_data[2], True, "part 3 body")
    expect_eq(part["PartsCount"], 3, "PartsCount")
    expect_eq(part["ETag"], done["ETag"], "ETag of a part GET")


@check("abort_multipart_upload forgets the upload")
def t_abort():
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/aborted")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="mp/aborted", UploadId=upload_id, PartNumber=1, Body=SMALL)
    s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/aborted", UploadId=upload_id)
    expect_client_error("NoSuchUpload", 404, s3.list_parts, Bucket=BUCKET, Key="mp/aborted", UploadId=upload_id)
    expect_client_error("404", 404, s3.head_object, Bucket=BUCKET, Key="mp/aborted")


@check("presigned GET and PUT (SigV4) work with a plain HTTP client; expired ones get 403")
def t_presigned():
    get_url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "big/5m.bin"}, ExpiresIn=300
    )
    if "X-Amz-Signature=" not in get_url:
        raise AssertionError(f"not a SigV4 URL: {get_url}")
    status, body = http("GET", get_url)
    expect_eq(status, 200, "presigned GET status")
    expect_eq(body == BIG[: 5 * MiB], True, "presigned GET body")
    status, body = http("GET", get_url, headers={"Range": "bytes=1048570-1048580"})
    expect_eq((status, body), (206, BIG[1048570:1048581]), "ranged presigned GET")

    key = 'presigned/put a+b é'
    put_url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
    )
    status, _ = http("PUT", put_url, data=SMALL, headers={"Content-Type": "application/octet-stream"})
    expect_eq(status, 200, "presigned PUT status")
    expect_eq(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == SMALL, True, "presigned PUT body")

    expired = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "big/5m.bin"}, ExpiresIn=1
    )
    time.sleep(2)
    status, body = http("GET", expired)
    expect_eq(status, 403, "expired presigned GET status")
    if b"AccessDenied" not in body:
        raise AssertionError(f"expired URL body lacks AccessDenied: {body[:300]!r}")


@check("presigned GET and PUT at default settings (SigV2) work with a plain HTTP client")
def t_presigned_v2():
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "big/5m.bin"}, ExpiresIn=300
    )
    if "AWSAccessKeyId=" not in get_url or "Signature=" not in get_url:
        raise AssertionError(f"not a SigV2 URL: {get_url}")
    status, body = http("GET", get_url)
    expect_eq((status, body == BIG[: 5 * MiB]), (200, True), "SigV2 presigned GET status, body")
    status, body = http("GET", get_url, headers={"Range": "bytes=3145720-3145730"})
    expect_eq((status, body), (206, BIG[3145720:3145731]), "ranged SigV2 presigned GET")
    # SigV2 signs the Content-Type, so the PUT must send the one the URL was made for.
    key = "presigned/v2 put+é"
    put_url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": BUCKET, "Key": key, "ContentType": "application/x-v2"},
        ExpiresIn=300,
    )
    status, body = http("PUT", put_url, data=SMALL, headers={"Content-Type": "text/plain"})
    expect_eq(status, 403, f"SigV2 presigned PUT with another Content-Type ({body[:200]!r})")
    status, _ = http("PUT", put_url, data=SMALL, headers={"Content-Type": "application/x-v2"})
    expect_eq(status, 200, "SigV2 presigned PUT status")
    got = s3.get_object(Bucket=BUCKET, Key=key)
    expect_eq((got["Body"].read() == SMALL, got["ContentType"]), (True, "application/x-v2"), "body, type")


@check("copy() of 40 MiB: s3transfer copies 8 MiB parts with UploadPartCopy, byte-exact")
def t_managed_copy():
    sent = []

    def note(params, **kwargs):
        sent.append(params.get("CopySourceRange"))

    s3.meta.events.register("before-parameter-build.s3.UploadPartCopy", note)
    try:
        s3.copy({"Bucket": BUCKET, "Key": "big/40m.bin"}, BUCKET, "big/40m.copy")
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.UploadPartCopy", note)
    want = [f"bytes={i * 8 * MiB}-{(i + 1) * 8 * MiB - 1}" for i in range(5)]
    expect_eq(sorted(sent, key=lambda r: int(r[6:].split("-")[0])), want, "UploadPartCopy ranges")
    head = s3.head_object(Bucket=BUCKET, Key="big/40m.copy")
    expect_eq(head["ETag"], multipart_etag(BIG, 8 * MiB), "ETag of the copy")
    body = s3.get_object(Bucket=BUCKET, Key="big/40m.copy")["Body"].read()
    expect_eq(hashlib.sha256(body).hexdigest(), hashlib.sha256(BIG).hexdigest(), "sha256 of the copy")


# Three parts: 5 MiB, 5 MiB and 1 MiB + 7 bytes, so that the last one ends inside a chunk.
CHECKSUM_PARTS = [BIG[: 5 * MiB], BIG[5 * MiB : 10 * MiB], BIG[10 * MiB : 11 * MiB + 7]]
CHECKSUM_DATA = b"".join(CHECKSUM_PARTS)


def crc32_bytes(data):
    return zlib.crc32(data).to_bytes(4, "big")


def b64(raw):
    return base64.b64encode(raw).decode()


def checksum_multipart(key, algorithm, checksum_type=None, complete_extra=None):
    """Uploads CHECKSUM_PARTS with per-part checksums of `algorithm`; returns the completion,
    sent with `complete_extra` (e.g. the whole object's checksum)."""
    field = "Checksum" + algorithm
    extra = {"ChecksumType": checksum_type} if checksum_type else {}
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm=algorithm, **extra)
    expect_eq(upload.get("ChecksumAlgorithm"), algorithm, "ChecksumAlgorithm of the upload")
    digest = crc32_bytes if algorithm == "CRC32" else lambda d: hashlib.sha256(d).digest()
    parts = []
    try:
        for number, body in enumerate(CHECKSUM_PARTS, start=1):
            sent = s3.upload_part(
                Bucket=BUCKET,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=algorithm,
            )
            expect_eq(sent.get(field), b64(digest(body)), f"{field} of part {number}")
            parts.append({"PartNumber": number, "ETag": sent["ETag"], field: sent[field]})
        listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"])["Parts"]
        expect_eq([p.get(field) for p in listed], [p[field] for p in parts], f"{field} in list_parts")
        return s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
            **(complete_extra or {}),
        )
    except Exception:
        # A failed check leaves no upload behind to fail the suite's cleanup as well.
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"])
        raise


@check("multipart CRC32 FULL_OBJECT: the checksum is zlib.crc32 of the whole object; GET validates it")
def t_checksum_full_object():
    done = checksum_multipart("sum/full", "CRC32", "FULL_OBJECT")
    want = b64(crc32_bytes(CHECKSUM_DATA))
    expect_eq((done.get("ChecksumCRC32"), done.get("ChecksumType")), (want, "FULL_OBJECT"), "completion")
    head = s3.head_object(Bucket=BUCKET, Key="sum/full", ChecksumMode="ENABLED")
    expect_eq((head.get("ChecksumCRC32"), head.get("ChecksumType")), (want, "FULL_OBJECT"), "head_object")
    got = s3.get_object(Bucket=BUCKET, Key="sum/full", ChecksumMode="ENABLED")
    expect_eq(got.get("ChecksumCRC32"), want, "get_object ChecksumCRC32")
    if not isinstance(got["Body"], StreamingChecksumBody):
        raise AssertionError(f"botocore did not wrap the body for validation: {type(got['Body'])}")
    expect_eq(got["Body"].read() == CHECKSUM_DATA, True, "body (validated against the CRC32 on read)")


@check("multipart CRC32 COMPOSITE: crc32 of the part crc32s, then -3")
def t_checksum_composite():
    done = checksum_multipart("sum/composite", "CRC32", "COMPOSITE")
    want = b64(crc32_bytes(b"".join(crc32_bytes(p) for p in CHECKSUM_PARTS))) + "-3"
    expect_eq((done.get("ChecksumCRC32"), done.get("ChecksumType")), (want, "COMPOSITE"), "completion")
    head = s3.head_object(Bucket=BUCKET, Key="sum/composite", ChecksumMode="ENABLED")
    expect_eq((head.get("ChecksumCRC32"), head.get("ChecksumType")), (want, "COMPOSITE"), "head_object")
    got = s3.get_object(Bucket=BUCKET, Key="sum/composite", ChecksumMode="ENABLED")
    expect_eq(got.get("ChecksumCRC32"), want, "get_object ChecksumCRC32")
    expect_eq(got["Body"].read() == CHECKSUM_DATA, True, "body")


@check("multipart SHA256 without ChecksumType is COMPOSITE: sha256 of the part sha256s, then -3")
def t_checksum_sha256_default_composite():
    done = checksum_multipart("sum/sha256", "SHA256")
    want = b64(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in CHECKSUM_PARTS)).digest())
    expect_eq(done.get("ChecksumSHA256"), want + "-3", "completion ChecksumSHA256")
    head = s3.head_object(Bucket=BUCKET, Key="sum/sha256", ChecksumMode="ENABLED")
    expect_eq((head.get("ChecksumSHA256"), head.get("ChecksumType")), (want + "-3", "COMPOSITE"), "head")


@check("multipart checksum rules: CRC64NVME COMPOSITE refused; a part of another algorithm refused")
def t_checksum_rules():
    expect_client_error(
        "InvalidRequest",
        400,
        s3.create_multipart_upload,
        Bucket=BUCKET,
        Key="sum/refused",
        ChecksumAlgorithm="CRC64NVME",
        ChecksumType="COMPOSITE",
    )
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="sum/mixed", ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    # Over HTTP boto3 sends the part's SHA-256 as a header, over HTTPS as an aws-chunked trailer:
    # both must be refused.
    try:
        expect_client_error(
            "InvalidRequest",
            400,
            s3.upload_part,
            Bucket=BUCKET,
            Key="sum/mixed",
            UploadId=upload_id,
            PartNumber=1,
            Body=SMALL,
            ChecksumAlgorithm="SHA256",
        )
        parts = s3.list_parts(Bucket=BUCKET, Key="sum/mixed", UploadId=upload_id).get("Parts", [])
        expect_eq(parts, [], "parts")
    finally:
        s3.abort_multipart_upload(Bucket=BUCKET, Key="sum/mixed", UploadId=upload_id)


@check("complete_multipart_upload given the object's checksum: COMPOSITE with -3, FULL_OBJECT plain")
def t_checksum_given_at_complete():
    composite = b64(crc32_bytes(b"".join(crc32_bytes(p) for p in CHECKSUM_PARTS))) + "-3"
    done = checksum_multipart(
        "sum/given-composite",
        "CRC32",
        "COMPOSITE",
        {"ChecksumCRC32": composite, "ChecksumType": "COMPOSITE"},
    )
    expect_eq(done.get("ChecksumCRC32"), composite, "composite completion")
    full = b64(crc32_bytes(CHECKSUM_DATA))
    done = checksum_multipart(
        "sum/given-full", "CRC32", "FULL_OBJECT", {"ChecksumCRC32": full, "ChecksumType": "FULL_OBJECT"}
    )
    expect_eq(done.get("ChecksumCRC32"), full, "full-object completion")
    # A wrong one is BadDigest (tests/semantics.rs), which botocore retries as it does on AWS,
    # so it is left out of a suite that counts retries.


@check("complete_multipart_upload retried after it succeeded answers the same ETag again")
def t_complete_retried():
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="retried")["UploadId"]
    parts = []
    for number, body in enumerate([BIG[: 5 * MiB], SMALL], start=1):
        sent = s3.upload_part(Bucket=BUCKET, Key="retried", UploadId=upload_id, PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    args = {"Bucket": BUCKET, "Key": "retried", "UploadId": upload_id, "MultipartUpload": {"Parts": parts}}
    first = s3.complete_multipart_upload(**args)
    again = s3.complete_multipart_upload(**args)
    expect_eq(again["ETag"], first["ETag"], "ETag of the retried completion")
    got = s3.get_object(Bucket=BUCKET, Key="retried")["Body"].read()
    expect_eq(got == BIG[: 5 * MiB] + SMALL, True, "object bytes")


@check("delete everything, delete_bucket, head_bucket -> 404")
def t_cleanup():
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        objects = [{"Key": c["Key"]} for c in page.get("Contents", [])]
        if objects:
            result = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objects, "Quiet": True})
            expect_eq(result.get("Errors", []), [], "delete_objects Errors")
    expect_eq(s3.list_objects_v2(Bucket=BUCKET)["KeyCount"], 0, "KeyCount")
    s3.delete_bucket(Bucket=BUCKET)
    expect_client_error("404", 404, s3.head_bucket, Bucket=BUCKET)


@check("no request of this suite needed a retry")
def t_no_retries():
    expect_eq(RETRIED, [], "retried requests")



if __name__ == "__main__":
    sys.exit(run("boto3"))
