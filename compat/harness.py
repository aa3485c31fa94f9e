"""What the python suites of compat/ share: clients, checks, assertions and the runner.

A suite registers checks with @check, runs them with run(name) and gets counted by compat/run.sh,
which provides the environment: CAIRN_ENDPOINT, CAIRN_COMPAT_WORK, CAIRN_COMPAT_COUNTS and AWS_*
variables with path-style addressing; over HTTPS, AWS_CA_BUNDLE names the test certificate, which
the raw clients here trust as well.
"""

import hashlib
import http.client
import os
import ssl
import sys
import time
import traceback
import urllib.parse
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1 << 20
ENDPOINT = os.environ["CAIRN_ENDPOINT"]
WORK = Path(os.environ["CAIRN_COMPAT_WORK"])

CHECKS = []


def client(**config):
    """A boto3 S3 client at default settings, plus any botocore Config options given."""
    return boto3.client("s3", endpoint_url=ENDPOINT, config=Config(**config) if config else None)


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


def expect_eq(actual, expected, what="value"):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def expect_client_error(code, status, fn, *args, **kwargs):
    """Calls fn, which must raise ClientError with this error code and HTTP status."""
    try:
        fn(*args, **kwargs)
    except ClientError as err:
        expect_eq(err.response["Error"]["Code"], code, "error code")
        expect_eq(err.response["ResponseMetadata"]["HTTPStatusCode"], status, "HTTP status")
        return err
    raise AssertionError(f"expected ClientError {code} ({status}), the call succeeded")


def md5_etag(data):
    return '"%s"' % hashlib.md5(data).hexdigest()


def multipart_etag(data, part_size):
    digests = b"".join(
        hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    )
    return '"%s-%d"' % (hashlib.md5(digests).hexdigest(), (len(data) + part_size - 1) // part_size)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def connect(url, timeout=60):
    """An http.client connection to the host of url, trusting AWS_CA_BUNDLE over HTTPS."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def path_of(url):
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def raw_request(method, url, headers=None, body=None):
    """One plain HTTP request; returns (status, headers as a lower-case dict, body)."""
    conn = connect(url)
    try:
        conn.request(method, path_of(url), body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_for(predicate, what, timeout=60.0):
    """Polls predicate every 10 ms until it holds; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def run(suite):
    """Runs the registered checks in order, prints TAP-like lines and writes the counts."""
    passed = failed = 0
    for name, fn in CHECKS:
        start = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print(f"FAIL - {name} ({time.monotonic() - start:.1f}s)")
            for line in traceback.format_exc().strip().splitlines()[-12:]:
                print(f"       {line}")
        else:
            passed += 1
            print(f"ok   - {name} ({time.monotonic() - start:.1f}s)")
        sys.stdout.flush()
    print(f"{suite}: {passed} passed, {failed} failed")
    counts = os.environ.get("CAIRN_COMPAT_COUNTS")
    if counts:
        Path(counts).write_text(f"{passed} {failed}\n")
    return 0 if failed == 0 else 1
