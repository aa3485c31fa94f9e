#!/usr/bin/env python3
"""boto3 against Cairn's access control: bucket policies, ACLs, ownership controls, public-access
blocks, anonymous reads and keys limited by policies (issue 18).

Started by compat/run.sh, over HTTP and over HTTPS, with the environment of harness.py plus
CAIRN_BIN and CAIRN_DATA: users and keys are made with `cairn admin --meta sqlite://DATA/meta.db
... --json` against the running server's metadata file, as an operator would. Every bucket here
belongs to the user `boto-alice`; `boto-bob` is the other account.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

sys.dont_write_bytecode = True
from harness import (  # noqa: E402
    ENDPOINT,
    check,
    expect_client_error,
    expect_eq,
    raw_request,
    run,
)

B1 = "boto-acl-b1"
B2 = "boto-acl-b2"
BOE = "boto-acl-enforced"
BPA = "boto-acl-blocked"
META = "sqlite://%s/meta.db" % os.environ["CAIRN_DATA"]
# Changes made with `cairn admin` reach the server's caches within this (the bound).
PROPAGATION = 5.0

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
STATE = {}


def admin(*args, stdin=None):
    """`cairn admin --meta META ARGS --json`; returns the JSON value it prints."""
    out = subprocess.run(
        [os.environ["CAIRN_BIN"], "admin", "--meta", META, *args, "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise AssertionError(f"cairn admin {' '.join(args)} failed: {out.stdout} {out.stderr}")
    return json.loads(out.stdout)


def client_for(key):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
    )


def anonymous():
    """A boto3 client that signs nothing, as a browser or CDN fetching a public object."""
    return boto3.client("s3", endpoint_url=ENDPOINT, config=Config(signature_version=UNSIGNED))


def eventually(fn, what, timeout=PROPAGATION):
    """Calls fn until it returns without an exception; re-raises its last one after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (AssertionError, ClientError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def alice():
    return STATE["alice"]


@check("cairn admin --json: users boto-alice and boto-bob, and keys (full, readonly, limited to B1/*)")
def t_accounts():
    users = {}
    for name in ["boto-alice", "boto-bob"]:
        user = admin("user", "create", name)
        expect_eq(user["name"], name, "user name")
        if len(user["id"]) != 64:
            raise AssertionError(f"canonical id of {name}: {user['id']!r}")
        users[name] = user
    listed = {u["name"] for u in admin("user", "list")}
    if not {"admin", "boto-alice", "boto-bob"} <= listed:
        raise AssertionError(f"user list: {listed}")
    limited = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{B1}/*"}],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(limited, f)
    admin("policy", "create", "boto-b1-objects", f.name)
    os.unlink(f.name)
    keys = {
        "alice": admin("key", "create", "boto-alice-full", "--user", "boto-alice"),
        "readonly": admin(
            "key", "create", "boto-alice-ro", "--user", "boto-alice", "--policy", "readonly"
        ),
        "limited": admin(
            "key", "create", "boto-alice-b1", "--user", "boto-alice", "--policy", "boto-b1-objects"
        ),
        "bob": admin("key", "create", "boto-bob-full", "--user", "boto-bob"),
    }
    expect_eq(keys["readonly"]["policy"], "readonly", "key policy")
    STATE["users"] = users
    STATE.update({name: client_for(key) for name, key in keys.items()})
    for bucket in [B1, B2, BOE, BPA]:
        alice().create_bucket(Bucket=bucket)
    for bucket in [B1, B2]:
        alice().put_object(Bucket=bucket, Key="obj", Body=b"private bytes")


@check("ListBuckets shows each account its own buckets only")
def t_list_buckets():
    names = [b["Name"] for b in alice().list_buckets()["Buckets"]]
    expect_eq(sorted(names), sorted([B1, B2, BOE, BPA]), "alice's buckets")
    listed = STATE["bob"].list_buckets()
    expect_eq(listed.get("Buckets", []), [], "bob's buckets")
    expect_eq(listed["Owner"]["ID"], STATE["users"]["boto-bob"]["id"], "Owner ID")


@check("create_bucket of another account's name: 409 BucketAlreadyExists")
def t_bucket_taken():
    expect_client_error("BucketAlreadyExists", 409, STATE["bob"].create_bucket, Bucket=B1)


@check("a private object: anonymous GET 403 AccessDenied, bob 403 AccessDenied")
def t_private():
    status, _, body = raw_request("GET", f"{ENDPOINT}/{B1}/obj")
    expect_eq(status, 403, f"anonymous GET status ({body[:200]!r})")
    expect_client_error("AccessDenied", 403, anonymous().get_object, Bucket=B1, Key="obj")
    expect_client_error("AccessDenied", 403, STATE["bob"].get_object, Bucket=B1, Key="obj")


@check("put_bucket_policy (public read) / get_bucket_policy / get_bucket_policy_status")
def t_bucket_policy():
    expect_client_error("NoSuchBucketPolicy", 404, alice().get_bucket_policy, Bucket=B1)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{B1}/*",
            }
        ],
    }
    alice().put_bucket_policy(Bucket=B1, Policy=json.dumps(policy))
    got = json.loads(alice().get_bucket_policy(Bucket=B1)["Policy"])
    expect_eq(got, policy, "policy read back")
    status = alice().get_bucket_policy_status(Bucket=B1)["PolicyStatus"]
    expect_eq(status["IsPublic"], True, "IsPublic")
    body = eventually(
        lambda: anonymous().get_object(Bucket=B1, Key="obj")["Body"].read(), "anonymous GET"
    )
    expect_eq(body, b"private bytes", "anonymous GET body")
    expect_client_error("AccessDenied", 403, anonymous().list_objects_v2, Bucket=B1)
    expect_client_error("AccessDenied", 403, STATE["bob"].get_bucket_policy, Bucket=B1)


@check("put_bucket_policy validates: MalformedPolicy for a bad action and for bad JSON")
def t_policy_malformed():
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:Nope", "Resource": f"arn:aws:s3:::{B2}/*"}
        ],
    }
    expect_client_error("MalformedPolicy", 400, alice().put_bucket_policy, Bucket=B2, Policy=json.dumps(bad))
    expect_client_error("MalformedPolicy", 400, alice().put_bucket_policy, Bucket=B2, Policy="not json")


@check("a bucket policy naming bob: bob reads, the status is not public; delete_bucket_policy")
def t_policy_for_bob():
    bob_id = STATE["users"]["boto-bob"]["id"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{bob_id}:root"},
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{B2}", f"arn:aws:s3:::{B2}/*"],
            }
        ],
    }
    alice().put_bucket_policy(Bucket=B2, Policy=json.dumps(policy))
    expect_eq(alice().get_bucket_policy_status(Bucket=B2)["PolicyStatus"]["IsPublic"], False, "IsPublic")
    body = eventually(lambda: STATE["bob"].get_object(Bucket=B2, Key="obj")["Body"].read(), "bob's GET")
    expect_eq(body, b"private bytes", "bob's GET body")
    keys = [o["Key"] for o in STATE["bob"].list_objects_v2(Bucket=B2)["Contents"]]
    expect_eq(keys, ["obj"], "bob's listing")
    expect_client_error("AccessDenied", 403, STATE["bob"].put_object, Bucket=B2, Key="x", Body=b"x")
    expect_client_error("AccessDenied", 403, STATE["bob"].delete_object, Bucket=B2, Key="obj")
    alice().delete_bucket_policy(Bucket=B2)
    expect_client_error("NoSuchBucketPolicy", 404, alice().get_bucket_policy, Bucket=B2)
    eventually(
        lambda: expect_client_error("AccessDenied", 403, STATE["bob"].get_object, Bucket=B2, Key="obj"),
        "bob refused once the policy is gone",
    )


@check("get_bucket_acl: the owner with FULL_CONTROL; put_bucket_acl private")
def t_bucket_acl():
    acl = alice().get_bucket_acl(Bucket=B2)
    alice_id = STATE["users"]["boto-alice"]["id"]
    expect_eq(acl["Owner"]["ID"], alice_id, "Owner ID")
    grants = [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]]
    expect_eq(grants, [(alice_id, "FULL_CONTROL")], "grants")
    alice().put_bucket_acl(Bucket=B2, ACL="private")
    expect_client_error("AccessDenied", 403, STATE["bob"].get_bucket_acl, Bucket=B2)


@check("put_object ACL=public-read: anonymous GET, HEAD and Range; get_object_acl shows AllUsers READ")
def t_public_read_object():
    data = bytes(range(256)) * 40
    alice().put_object(Bucket=B2, Key="public.bin", Body=data, ACL="public-read")
    grants = alice().get_object_acl(Bucket=B2, Key="public.bin")["Grants"]
    if not any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants):
        raise AssertionError(f"no AllUsers READ grant: {grants}")
    status, headers, body = raw_request("GET", f"{ENDPOINT}/{B2}/public.bin")
    expect_eq((status, body == data), (200, True), "anonymous GET")
    status, headers, _ = raw_request("HEAD", f"{ENDPOINT}/{B2}/public.bin")
    expect_eq((status, headers.get("content-length")), (200, str(len(data))), "anonymous HEAD")
    status, headers, body = raw_request("GET", f"{ENDPOINT}/{B2}/public.bin", {"Range": "bytes=100-299"})
    expect_eq((status, body), (206, data[100:300]), "anonymous range")
    got = anonymous().get_object(Bucket=B2, Key="public.bin", Range="bytes=0-9")["Body"].read()
    expect_eq(got, data[:10], "unsigned boto3 range")
    expect_client_error("AccessDenied", 403, anonymous().get_object_acl, Bucket=B2, Key="public.bin")


@check("put_object_acl public-read then private: anonymous GET follows")
def t_object_acl():
    alice().put_object_acl(Bucket=B2, Key="obj", ACL="public-read")
    status, _, body = raw_request("GET", f"{ENDPOINT}/{B2}/obj")
    expect_eq((status, body), (200, b"private bytes"), "anonymous GET of a public-read object")
    alice().put_object_acl(Bucket=B2, Key="obj", ACL="private")
    status, _, _ = raw_request("GET", f"{ENDPOINT}/{B2}/obj")
    expect_eq(status, 403, "anonymous GET once private again")
    expect_client_error("AccessDenied", 403, STATE["bob"].put_object_acl, Bucket=B2, Key="obj", ACL="public-read")


@check("put/get/delete_public_access_block; BlockPublicAcls refuses ACL=public-read")
def t_public_access_block():
    expect_client_error(
        "NoSuchPublicAccessBlockConfiguration", 404, alice().get_public_access_block, Bucket=BPA
    )
    config = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    alice().put_public_access_block(Bucket=BPA, PublicAccessBlockConfiguration=config)
    got = alice().get_public_access_block(Bucket=BPA)["PublicAccessBlockConfiguration"]
    expect_eq(got, config, "configuration read back")
    eventually(
        lambda: expect_client_error(
            "AccessDenied", 403, alice().put_object, Bucket=BPA, Key="p", Body=b"x", ACL="public-read"
        ),
        "BlockPublicAcls in force",
    )
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BPA}/*"}
        ],
    }
    expect_client_error("AccessDenied", 403, alice().put_bucket_policy, Bucket=BPA, Policy=json.dumps(public))
    alice().put_object(Bucket=BPA, Key="p", Body=b"x", ACL="private")
    alice().delete_public_access_block(Bucket=BPA)
    expect_client_error(
        "NoSuchPublicAccessBlockConfiguration", 404, alice().get_public_access_block, Bucket=BPA
    )
    eventually(
        lambda: alice().put_object(Bucket=BPA, Key="p", Body=b"x", ACL="public-read"),
        "public ACLs allowed once the block is gone",
    )


@check("put/get/delete_bucket_ownership_controls; BucketOwnerEnforced refuses ACLs")
def t_ownership_controls():
    expect_client_error(
        "OwnershipControlsNotFoundError", 404, alice().get_bucket_ownership_controls, Bucket=BOE
    )
    rules = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    alice().put_bucket_ownership_controls(Bucket=BOE, OwnershipControls=rules)
    got = alice().get_bucket_ownership_controls(Bucket=BOE)["OwnershipControls"]
    expect_eq(got, rules, "ownership controls read back")
    eventually(
        lambda: expect_client_error(
            "AccessControlListNotSupported", 400, alice().put_object, Bucket=BOE, Key="k", Body=b"x", ACL="public-read"
        ),
        "BucketOwnerEnforced in force",
    )
    alice().put_object(Bucket=BOE, Key="k", Body=b"x")
    expect_client_error(
        "AccessControlListNotSupported", 400, alice().put_object_acl, Bucket=BOE, Key="k", ACL="public-read"
    )
    alice().delete_bucket_ownership_controls(Bucket=BOE)
    expect_client_error(
        "OwnershipControlsNotFoundError", 404, alice().get_bucket_ownership_controls, Bucket=BOE
    )
    eventually(
        lambda: alice().put_object(Bucket=BOE, Key="k", Body=b"x", ACL="public-read"),
        "ACLs allowed once the ownership controls are gone",
    )


@check("a readonly key reads and lists but is refused PUT and DELETE (AccessDenied)")
def t_readonly_key():
    ro = STATE["readonly"]
    expect_eq(ro.get_object(Bucket=B1, Key="obj")["Body"].read(), b"private bytes", "GET")
    keys = [o["Key"] for o in ro.list_objects_v2(Bucket=B1).get("Contents", [])]
    if "obj" not in keys:
        raise AssertionError(f"listing: {keys}")
    expect_client_error("AccessDenied", 403, ro.put_object, Bucket=B1, Key="ro", Body=b"x")
    expect_client_error("AccessDenied", 403, ro.delete_object, Bucket=B1, Key="obj")
    expect_client_error("AccessDenied", 403, ro.create_bucket, Bucket="boto-acl-ro-new")
    alice().head_object(Bucket=B1, Key="obj")
    url = ro.generate_presigned_url("put_object", Params={"Bucket": B1, "Key": "ro-presigned"})
    status, _, _ = raw_request("PUT", url, body=b"x")
    expect_eq(status, 403, "presigned PUT by the readonly key")
    url = ro.generate_presigned_url("get_object", Params={"Bucket": B1, "Key": "obj"})
    status, _, body = raw_request("GET", url)
    expect_eq((status, body), (200, b"private bytes"), "presigned GET by the readonly key")


@check("a key limited to arn:aws:s3:::B1/* writes in B1 and is refused on B2")
def t_limited_key():
    lim = STATE["limited"]
    lim.put_object(Bucket=B1, Key="lim", Body=b"limited")
    expect_eq(lim.get_object(Bucket=B1, Key="lim")["Body"].read(), b"limited", "GET in B1")
    expect_client_error("AccessDenied", 403, lim.put_object, Bucket=B2, Key="lim", Body=b"x")
    expect_client_error("AccessDenied", 403, lim.get_object, Bucket=B2, Key="obj")
    expect_client_error("AccessDenied", 403, lim.list_objects_v2, Bucket=B2)
    lim.delete_object(Bucket=B1, Key="lim")


@check("bob cannot delete, overwrite, list uploads of or remove alice's bucket")
def t_other_account():
    bob = STATE["bob"]
    expect_client_error("AccessDenied", 403, bob.put_object, Bucket=B1, Key="obj", Body=b"x")
    expect_client_error("AccessDenied", 403, bob.delete_object, Bucket=B1, Key="obj")
    expect_client_error("AccessDenied", 403, bob.list_multipart_uploads, Bucket=B1)
    expect_client_error("AccessDenied", 403, bob.delete_bucket, Bucket=B1)
    result = bob.delete_objects(Bucket=B1, Delete={"Objects": [{"Key": "obj"}]})
    codes = [e["Code"] for e in result.get("Errors", [])]
    expect_eq(codes, ["AccessDenied"], "delete_objects per-key errors")
    alice().head_object(Bucket=B1, Key="obj")


@check("a deleted key is refused within 5 s")
def t_key_revoked():
    key = admin("key", "create", "boto-short-lived", "--user", "boto-alice")
    s3 = client_for(key)
    s3.list_buckets()
    admin("key", "delete", key["access_key_id"])
    eventually(
        lambda: expect_client_error("InvalidAccessKeyId", 403, s3.list_buckets),
        "the deleted key refused",
    )


@check("cleanup: alice empties and removes her buckets")
def t_cleanup():
    for bucket in [B1, B2, BOE, BPA]:
        for obj in alice().list_objects_v2(Bucket=bucket).get("Contents", []):
            alice().delete_object(Bucket=bucket, Key=obj["Key"])
        alice().delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    sys.exit(run("acl"))
