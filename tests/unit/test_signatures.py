"""Signature vectors from ../shared/docs/hubspot-protocol.md §4 and HubSpot's published samples."""

import pytest

from throttled.hubspot.signatures import (
    SignatureError,
    SignedRequest,
    sign_v1,
    sign_v2,
    sign_v3,
    verify,
)

SECRET = "3f1c9a2e-7b4d-4e8a-9c21-5d6e7f809a1b"
URI = "https://throttle.example.com/hubspot/action?src=wf"
BODY = (
    b'{"callbackId":"ap-1234567-987654321-1-0","origin":{"portalId":1234567,'
    b'"actionDefinitionId":42,"actionDefinitionVersion":3},"inputFields":{"max_throughput":"10"}}'
)
TS = 1767225600000
REQ = SignedRequest("POST", URI, BODY)


def test_worked_example_v1():
    assert sign_v1(SECRET, REQ) == "b64b98bf6fc99cb94a56ea5dccd9fcd5f276637fc1d2d97e7e874dc017399f4e"


def test_worked_example_v2():
    assert sign_v2(SECRET, REQ) == "7d19da4dae3ebd09d9ed57dc227db0d61952d5b7ff1cabf415c6803750584572"


def test_worked_example_v3():
    assert sign_v3(SECRET, REQ, TS) == "oe3ZeOXkkRewYgynbXKXmu+K+XumlDbyDnh6CMs2XM4="


def test_hubspot_published_v1_sample():
    # HubSpot's v1 validation doc sample (developers.hubspot.com/docs/faq/v1-request-validation).
    secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
        b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
    )
    assert sign_v1(secret, SignedRequest("POST", "", body)) == (
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    )


def test_hubspot_published_v2_samples():
    # developers.hubspot.com/docs/faq/v2-request-validation: GET and POST examples.
    secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
    get = SignedRequest("GET", "https://www.example.com/webhook_uri", b"")
    assert sign_v2(secret, get) == "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    post = SignedRequest("POST", "https://www.example.com/webhook_uri", b'{"example_field":"example_value"}')
    assert sign_v2(secret, post) == "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"


def test_verify_v3_within_window():
    headers = {"X-HubSpot-Signature-v3": sign_v3(SECRET, REQ, TS), "X-HubSpot-Request-Timestamp": str(TS)}
    assert verify(SECRET, REQ, headers, now_ms=TS + 299_000) == "v3"


def test_verify_v3_headers_case_insensitive():
    headers = {"x-hubspot-signature-V3": sign_v3(SECRET, REQ, TS), "X-HUBSPOT-REQUEST-TIMESTAMP": str(TS)}
    assert verify(SECRET, REQ, headers, now_ms=TS) == "v3"


@pytest.mark.parametrize(
    ("now_ms", "reason"),
    [(TS + 300_001, "stale"), (TS - 30_001, "future")],
)
def test_verify_v3_rejects_outside_window(now_ms, reason):
    headers = {"X-HubSpot-Signature-v3": sign_v3(SECRET, REQ, TS), "X-HubSpot-Request-Timestamp": str(TS)}
    with pytest.raises(SignatureError) as info:
        verify(SECRET, REQ, headers, now_ms=now_ms)
    assert info.value.reason == reason


def test_verify_v3_rejects_tampered_body():
    headers = {"X-HubSpot-Signature-v3": sign_v3(SECRET, REQ, TS), "X-HubSpot-Request-Timestamp": str(TS)}
    tampered = SignedRequest("POST", URI, BODY.replace(b'"10"', b'"99"'))
    with pytest.raises(SignatureError) as info:
        verify(SECRET, tampered, headers, now_ms=TS)
    assert info.value.reason == "mismatch"


def test_verify_v3_decodes_listed_escapes_only():
    encoded = SignedRequest("POST", "https://x.example/a%3Ab?q=%2B%20", BODY)
    decoded = SignedRequest("POST", "https://x.example/a:b?q=%2B%20", BODY)
    assert sign_v3(SECRET, encoded, TS) == sign_v3(SECRET, decoded, TS)


def test_verify_v2_default_version_and_v1_when_enabled():
    assert verify(SECRET, REQ, {"X-HubSpot-Signature": sign_v2(SECRET, REQ)}, now_ms=0) == "v2"
    v1_headers = {"X-HubSpot-Signature": sign_v1(SECRET, REQ), "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(SignatureError) as info:
        verify(SECRET, REQ, v1_headers, now_ms=0)  # v1 covers no URI or method: off by default
    assert info.value.reason == "version"
    assert verify(SECRET, REQ, v1_headers, now_ms=0, accepted=("v3", "v2", "v1")) == "v1"


def test_v3_only_refuses_requests_without_v3():
    with pytest.raises(SignatureError) as info:
        verify(SECRET, REQ, {"X-HubSpot-Signature": sign_v2(SECRET, REQ)}, now_ms=0, accepted=("v3",))
    assert info.value.reason == "version"


def test_stripping_v3_headers_does_not_dodge_the_version_policy():
    # A captured request whose v3 headers are removed falls back to v2 only when v2 is accepted.
    stripped = {"X-HubSpot-Signature": sign_v2(SECRET, REQ), "X-HubSpot-Signature-Version": "v2"}
    with pytest.raises(SignatureError):
        verify(SECRET, REQ, stripped, now_ms=0, accepted=("v3",))


def test_verify_missing_signature():
    with pytest.raises(SignatureError) as info:
        verify(SECRET, REQ, {}, now_ms=0)
    assert info.value.reason == "missing"


def test_verify_raw_bytes_not_reserialized():
    body = b'{"name":"Pat \\u00e4","note":"a+b"}'
    request = SignedRequest("POST", URI, body)
    headers = {"X-HubSpot-Signature": sign_v2(SECRET, request)}
    assert verify(SECRET, request, headers, now_ms=0) == "v2"
    reserialized = SignedRequest("POST", URI, '{"name":"Pat ä","note":"a+b"}'.encode())
    with pytest.raises(SignatureError):
        verify(SECRET, reserialized, headers, now_ms=0)


def test_error_message_never_holds_secret():
    with pytest.raises(SignatureError) as info:
        verify(SECRET, REQ, {"X-HubSpot-Signature": "0" * 64}, now_ms=0)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
