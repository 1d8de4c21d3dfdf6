"""The exact bytes S3Client hands to its transport: method, target, every header, body.

A fixed clock and fixed credentials make every signature reproducible, so any change to what
goes on the wire (a header renamed, reordered or added, a signing step changed) fails here.
Integration: tests/integration/test_moto.py sends the same verbs to moto server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from s3result.results import config
from s3result.s3.client import S3Client
from s3result.s3.credentials import CredentialSource, StaticProvider
from s3result.s3.request import PutMode
from s3result.s3.retry import RetryConfig
from s3result.s3.transport import RawResponse

NOW = 1_700_000_000.0
Sent = tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]


@dataclass
class Recorder:
    """A transport that records every request and answers 200 with an MD5 ETag."""

    sent: list[Sent] = field(default_factory=list)

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        timeout: float | None = None,
    ) -> RawResponse:
        self.sent.append((method, target, list(headers), body))
        payload = b"" if method in (b"HEAD", b"PUT", b"DELETE") else b"answer"
        etag = f'"{hashlib.md5(payload).hexdigest()}"'
        return RawResponse(200, {"etag": etag, "content-length": str(len(payload))}, payload)

    def close(self) -> None:
        pass


def _client(recorder: Recorder) -> S3Client:
    settings = config.build(
        url="s3result+http://127.0.0.1:9000/bkt/pre?sse=aws:kms&kms_key_id=KEY1&storage_class=STANDARD_IA",
        environ={},
    )
    creds = CredentialSource([StaticProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "TOKEN/+=")])
    return S3Client(
        settings.s3,
        credentials=creds,
        transport_factory=lambda base: recorder,
        retry=RetryConfig(max_attempts=1),
        clock=lambda: NOW,
    )


def _send_all(client: S3Client) -> None:
    client.head("pre/k ey")
    client.get("pre/k ey")
    client.put("pre/k ey", b"create", mode=PutMode.CREATE, content_type="application/json")
    client.put("pre/k ey", b"update", mode=PutMode.update('"abc"'), content_type="application/json")
    client.put("pre/k ey", b"overwrite", content_type="text/plain", metadata={"Origin": "x"})
    client.delete("pre/k ey")
    client.bucket_request("GET", "lifecycle")
    client.bucket_request("PUT", "versioning", body=b"<V/>", headers=[("content-type", "application/xml")])


NAMES = ("head", "get", "put-create", "put-update", "put-overwrite", "delete", "bucket-get", "bucket-put")


GOLDEN: dict[str, Sent] = {
    "head": (
        b"HEAD",
        b"/bkt/pre/k%20ey",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=43c65cd8971068b493592d2c78f31f1177d445b495cceeda9487d710615034ff",
            ),
        ],
        b"",
    ),
    "get": (
        b"GET",
        b"/bkt/pre/k%20ey",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=56cedc5613f95fef4bc6c3adfb416b3192e335b540b7f07dc02d9cb8a3bfd138",
            ),
        ],
        b"",
    ),
    "put-create": (
        b"PUT",
        b"/bkt/pre/k%20ey",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"content-type", b"application/json"),
            (b"if-none-match", b"*"),
            (b"x-amz-server-side-encryption", b"aws:kms"),
            (b"x-amz-server-side-encryption-aws-kms-key-id", b"KEY1"),
            (b"x-amz-storage-class", b"STANDARD_IA"),
            (b"x-amz-meta-s3result-crc32", b"8fd6e0fb"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"fa8847b0c33183273f5945508b31c3208a9e4ece58ca47233a05628d8dba3799"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-meta-s3result-crc32;x-amz-security-token;x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id;x-amz-storage-class, Signature=5fe6eca6c26b258d47f1bc111da6acebff56360c4b05ad3bc2b58f5bb784e385",
            ),
            (b"Content-Length", b"6"),
        ],
        b"create",
    ),
    "put-update": (
        b"PUT",
        b"/bkt/pre/k%20ey",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"content-type", b"application/json"),
            (b"if-match", b'"abc"'),
            (b"x-amz-server-side-encryption", b"aws:kms"),
            (b"x-amz-server-side-encryption-aws-kms-key-id", b"KEY1"),
            (b"x-amz-storage-class", b"STANDARD_IA"),
            (b"x-amz-meta-s3result-crc32", b"98253578"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"2937013f2181810606b2a799b05bda2849f3e369a20982a4138f0e0a55984ce4"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;if-match;x-amz-content-sha256;x-amz-date;x-amz-meta-s3result-crc32;x-amz-security-token;x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id;x-amz-storage-class, Signature=746a1f08b77b7cb4f81c67714d1c82c7f387df6ccc2e7bda2bb54e13673b1eda",
            ),
            (b"Content-Length", b"6"),
        ],
        b"update",
    ),
    "put-overwrite": (
        b"PUT",
        b"/bkt/pre/k%20ey",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"content-type", b"text/plain"),
            (b"x-amz-server-side-encryption", b"aws:kms"),
            (b"x-amz-server-side-encryption-aws-kms-key-id", b"KEY1"),
            (b"x-amz-storage-class", b"STANDARD_IA"),
            (b"x-amz-meta-origin", b"x"),
            (b"x-amz-meta-s3result-crc32", b"2bc18006"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"d093b090a7cce6316bf817fca56cd17f42018eb8982dd49367ecb839d6996466"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-origin;x-amz-meta-s3result-crc32;x-amz-security-token;x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id;x-amz-storage-class, Signature=660824791b090effff52b11b79c4185f37903aee853eec6f10f15734e7761e95",
            ),
            (b"Content-Length", b"9"),
        ],
        b"overwrite",
    ),
    "delete": (
        b"DELETE",
        b"/bkt/pre/k%20ey",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=54b4756f1cd41241218dd04c46ce6603617571776694350920a3858b3575085c",
            ),
        ],
        b"",
    ),
    "bucket-get": (
        b"GET",
        b"/bkt?lifecycle",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=3a9f670ded378102e319de1fb25efd39f00e5b45dd804cc08d0ab3c288052976",
            ),
        ],
        b"",
    ),
    "bucket-put": (
        b"PUT",
        b"/bkt?versioning",
        [
            (b"Host", b"127.0.0.1:9000"),
            (b"Accept-Encoding", b"identity"),
            (b"content-type", b"application/xml"),
            (b"x-amz-date", b"20231114T221320Z"),
            (b"x-amz-content-sha256", b"6bbc3cd12971a7cac311770ceaf509833b39ad2f7ebe51fac33458c7e875495a"),
            (b"x-amz-security-token", b"TOKEN/+="),
            (
                b"Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=8a6bf9f6a6211f030d8dabc939323f301cfb08c5857c713b1d4bb05f30cd55ce",
            ),
            (b"Content-Length", b"4"),
        ],
        b"<V/>",
    ),
}


def test_the_client_sends_exactly_these_bytes() -> None:
    recorder = Recorder()
    _send_all(_client(recorder))
    got = dict(zip(NAMES, recorder.sent, strict=True))
    for name in NAMES:
        assert got[name] == GOLDEN[name], name


if __name__ == "__main__":  # pragma: no cover - regenerates GOLDEN by hand, after a deliberate change
    rec = Recorder()
    _send_all(_client(rec))
    for name, sent in zip(NAMES, rec.sent, strict=True):
        print(f"    {name!r}: {sent!r},")
