#!/usr/bin/env python3
"""Conditional writes with boto3 against a running Cairn: If-None-Match: * and If-Match: ETAG on
PutObject and CompleteMultipartUpload, alone and raced.

Started by compat/run.sh (over HTTP and over HTTPS); see harness.py for the environment. The races
start 8 threads, each with its own client, at one barrier; every writer sends a different body, so
the stored object shows who won. Exactly one writer may succeed, every other one must get 412
PreconditionFailed, and the object must be the winner's.
"""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
import harness  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from harness import MiB, check, expect_client_error, expect_eq, md5_etag  # noqa: E402

BUCKET = "conditional-bucket"
WRITERS = 8
ROUNDS = 4
s3 = harness.client()


def race(attempt):
    """Runs attempt(client, index) in WRITERS threads whose requests are released together;
    returns their outcomes: ("ok", response) or (error code, HTTP status). Fails unless all
    requests were in flight at once: otherwise the round proves nothing about races."""
    clients = [harness.client() for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)
    outcomes = [None] * WRITERS
    spans = [(0.0, 0.0)] * WRITERS

    def writer(index):
        start = None

        # The barrier sits just before the request goes out, after botocore has built and
        # signed it: building takes the GIL for milliseconds per request, which would otherwise
        # spread the requests' starts further apart than a quick request lasts.
        def hold(**_):
            nonlocal start
            if start is None:
                barrier.wait(timeout=60)
                start = time.monotonic()

        clients[index].meta.events.register("before-send", hold)
        try:
            try:
                outcomes[index] = ("ok", attempt(clients[index], index))
            finally:
                spans[index] = (start or 0.0, time.monotonic())
        except ClientError as err:
            error, metadata = err.response["Error"], err.response["ResponseMetadata"]
            outcomes[index] = (error["Code"], metadata["HTTPStatusCode"])
        except Exception as err:  # a broken barrier or a transport error: reported as the outcome
            outcomes[index] = (type(err).__name__, str(err))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    last_start, first_end = max(s for s, _ in spans), min(e for _, e in spans)
    if last_start >= first_end:
        raise AssertionError(f"the {WRITERS} requests did not overlap: {spans}")
    return outcomes


def expect_one_winner(outcomes, what):
    """Exactly one writer succeeded and all others got 412; returns the winner's index."""
    winners = [i for i, outcome in enumerate(outcomes) if outcome and outcome[0] == "ok"]
    losers = sorted({outcome for outcome in outcomes if not outcome or outcome[0] != "ok"}, key=str)
    if len(winners) != 1 or losers != [("PreconditionFailed", 412)]:
        summary = [outcome if not outcome or outcome[0] != "ok" else "ok" for outcome in outcomes]
        raise AssertionError(f"{what}: expected one success and {WRITERS - 1} x 412, got {summary}")
    return winners[0]


def bodies(tag, size):
    """WRITERS different bodies of about `size` bytes (more than one 1 MiB chunk each)."""
    return [f"{tag} writer {i} ".encode() + os.urandom(size) for i in range(WRITERS)]


@check("setup: create the bucket")
def t_setup():
    s3.create_bucket(Bucket=BUCKET)


@check("put_object IfNoneMatch='*': writes a new key, then 412 PreconditionFailed; nothing changes")
def t_if_none_match():
    first = s3.put_object(Bucket=BUCKET, Key="one/new", Body=b"first", IfNoneMatch="*")
    expect_eq(first["ETag"], md5_etag(b"first"), "ETag")
    expect_client_error(
        "PreconditionFailed", 412, s3.put_object, Bucket=BUCKET, Key="one/new", Body=b"2", IfNoneMatch="*"
    )
    expect_eq(s3.get_object(Bucket=BUCKET, Key="one/new")["Body"].read(), b"first", "body after the 412")
    s3.delete_object(Bucket=BUCKET, Key="one/new")
    s3.put_object(Bucket=BUCKET, Key="one/new", Body=b"third", IfNoneMatch="*")
    got = s3.get_object(Bucket=BUCKET, Key="one/new")["Body"].read()
    expect_eq(got, b"third", "body once deleted and written again")


@check("put_object IfMatch: the current ETag writes; a stale one gets 412; a missing key NoSuchKey (404)")
def t_if_match():
    etag = s3.put_object(Bucket=BUCKET, Key="one/match", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket=BUCKET, Key="one/match", Body=b"v2", IfMatch=etag)
    expect_eq(second["ETag"], md5_etag(b"v2"), "ETag of the conditional write")
    expect_client_error(
        "PreconditionFailed", 412, s3.put_object, Bucket=BUCKET, Key="one/match", Body=b"v3", IfMatch=etag
    )
    expect_eq(s3.get_object(Bucket=BUCKET, Key="one/match")["Body"].read(), b"v2", "body after the 412")
    expect_client_error(
        "NoSuchKey", 404, s3.put_object, Bucket=BUCKET, Key="one/missing", Body=b"x", IfMatch=etag
    )
    expect_client_error("404", 404, s3.head_object, Bucket=BUCKET, Key="one/missing")


@check(f"{WRITERS} concurrent put_object IfNoneMatch='*' on a new key, {ROUNDS} rounds: exactly one wins")
def t_race_if_none_match():
    for round_number in range(ROUNDS):
        key = f"race/new-{round_number}"
        data = bodies(key, 2 * MiB + 4096)
        outcomes = race(
            lambda client, i: client.put_object(Bucket=BUCKET, Key=key, Body=data[i], IfNoneMatch="*")
        )
        winner = expect_one_winner(outcomes, f"round {round_number}")
        got = s3.get_object(Bucket=BUCKET, Key=key)
        expect_eq(got["Body"].read() == data[winner], True, f"round {round_number}: the winner's body")
        expect_eq(got["ETag"], outcomes[winner][1]["ETag"], f"round {round_number}: the winner's ETag")


@check(f"{WRITERS} concurrent put_object IfMatch on one ETag (compare-and-swap), {ROUNDS} rounds: one wins")
def t_race_if_match():
    key = "race/swap"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=b"start")["ETag"]
    for round_number in range(ROUNDS):
        data = bodies(f"{key} {round_number}", 2 * MiB + 4096)
        outcomes = race(
            lambda client, i: client.put_object(Bucket=BUCKET, Key=key, Body=data[i], IfMatch=etag)
        )
        winner = expect_one_winner(outcomes, f"round {round_number}")
        got = s3.get_object(Bucket=BUCKET, Key=key)
        expect_eq(got["Body"].read() == data[winner], True, f"round {round_number}: the winner's body")
        etag = outcomes[winner][1]["ETag"]
        expect_eq(got["ETag"], etag, f"round {round_number}: the winner's ETag")


def two_part_upload(client, key, tag):
    """A started upload of 5 MiB + 1 KiB; returns (upload id, parts, whole body)."""
    first, second = tag.encode() + os.urandom(5 * MiB - len(tag)), os.urandom(1024)
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    parts = []
    for number, body in ((1, first), (2, second)):
        sent = client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    return upload_id, parts, first + second


def complete(client, key, upload_id, parts, **conditions):
    return client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **conditions
    )


@check("complete_multipart_upload IfNoneMatch='*': 412 on an existing key (object kept); writes a new one")
def t_complete_if_none_match():
    s3.put_object(Bucket=BUCKET, Key="mp/exists", Body=b"already here")
    upload_id, parts, _ = two_part_upload(s3, "mp/exists", "refused")
    expect_client_error(
        "PreconditionFailed", 412, complete, s3, "mp/exists", upload_id, parts, IfNoneMatch="*"
    )
    got = s3.get_object(Bucket=BUCKET, Key="mp/exists")["Body"].read()
    expect_eq(got, b"already here", "body after the 412")
    try:
        s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/exists", UploadId=upload_id)
    except ClientError as err:
        expect_eq(err.response["Error"]["Code"], "NoSuchUpload", "abort after a refused completion")

    upload_id, parts, data = two_part_upload(s3, "mp/fresh", "fresh")
    done = complete(s3, "mp/fresh", upload_id, parts, IfNoneMatch="*")
    expect_eq(done["ETag"], harness.multipart_etag(data, 5 * MiB), "ETag")
    expect_eq(s3.get_object(Bucket=BUCKET, Key="mp/fresh")["Body"].read() == data, True, "body")


@check("complete_multipart_upload IfMatch: current ETag writes; stale -> 412; missing key -> NoSuchKey")
def t_complete_if_match():
    etag = s3.put_object(Bucket=BUCKET, Key="mp/match", Body=b"v1")["ETag"]
    upload_id, parts, data = two_part_upload(s3, "mp/match", "swap")
    expect_client_error(
        "PreconditionFailed", 412, complete, s3, "mp/match", upload_id, parts, IfMatch=md5_etag(b"other")
    )
    done = complete(s3, "mp/match", upload_id, parts, IfMatch=etag)
    expect_eq(s3.get_object(Bucket=BUCKET, Key="mp/match")["Body"].read() == data, True, "body")
    expect_eq(done["ETag"], harness.multipart_etag(data, 5 * MiB), "ETag")

    upload_id, parts, _ = two_part_upload(s3, "mp/missing", "missing")
    expect_client_error("NoSuchKey", 404, complete, s3, "mp/missing", upload_id, parts, IfMatch=etag)
    expect_client_error("404", 404, s3.head_object, Bucket=BUCKET, Key="mp/missing")
    s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/missing", UploadId=upload_id)


@check(f"{WRITERS} multipart uploads of one new key completed at once with IfNoneMatch='*': one wins")
def t_race_complete():
    key = "race/multipart"
    uploads = [two_part_upload(s3, key, f"upload {i}") for i in range(WRITERS)]
    outcomes = race(lambda client, i: complete(client, key, uploads[i][0], uploads[i][1], IfNoneMatch="*"))
    winner = expect_one_winner(outcomes, "completions")
    got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    expect_eq(got == uploads[winner][2], True, "the winner's body is stored")
    for i, (upload_id, _, _) in enumerate(uploads):
        if i != winner:
            try:
                s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
            except ClientError as err:
                expect_eq(err.response["Error"]["Code"], "NoSuchUpload", "abort of a losing upload")


@check("cleanup: delete the objects and the bucket")
def t_cleanup():
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        objects = [{"Key": c["Key"]} for c in page.get("Contents", [])]
        if objects:
            done = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objects})
            expect_eq(done.get("Errors", []), [], "delete_objects Errors")
    expect_eq(s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []), [], "uploads left")
    s3.delete_bucket(Bucket=BUCKET)


if __name__ == "__main__":
    sys.exit(harness.run("conditional"))
