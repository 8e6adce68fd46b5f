#!/usr/bin/env python3
"""A real S3-compatible server on loopback for tests and benchmarks (moto's server mode).

Starts moto with authentication enforced, creates an IAM user with full access and a
bucket, then prints one JSON line to stdout:
  {"endpoint": "http://127.0.0.1:PORT", "access_key": ..., "secret_key": ..., "bucket": ...}
and serves until stdin is closed (so it dies with the test process that started it).

Usage: s3_server.py [--port 0] [--bucket NAME]
"""
import argparse
import json
import logging
import os
import socket
import sys

# Let the first few calls through unauthenticated: they create the credentials.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"

from moto.server import ThreadedMotoServer  # noqa: E402
import boto3  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bucket", default="caldera-test")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = args.port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boot = dict(endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam = boto3.client("iam", **boot)
    iam.create_user(UserName="caldera")
    iam.put_user_policy(UserName="caldera", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="caldera")["AccessKey"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket=args.bucket)
    print(json.dumps({"endpoint": endpoint, "access_key": key["AccessKeyId"],
                      "secret_key": key["SecretAccessKey"], "bucket": args.bucket}),
          flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin or dies
    finally:
        server.stop()


if __name__ == "__main__":
    main()
