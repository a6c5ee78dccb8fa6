"""UserSig: Tencent's vectors, a cross-check against the official package, verify's reasons."""

from __future__ import annotations

import base64
import zlib

import orjson
import pytest
import TLSSigAPIv2
from hypothesis import given
from hypothesis import strategies as st

from timbridge.errors import UserSigError, UserSigProblem
from timbridge.protocol import usersig

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
APP = 1400000000

# Reference §6.4: UserSigs made by Tencent's Python library (huangjj27/TLSSigAPI @ 3073512d07bd).
VECTOR_PLAIN = (
    "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwjDB4pTsxIKCzBQlK0MTAyiAyKRWFGQWpQLFTU1NjeCiJZm5YDEzS0"
    "tDAyOYaHFmOtBM54KsUqeUwGLLqPK8UndHryCL-Lx8-1RPy7Ty1AijMk9f30hLk0x-r3CvSFulWgAPYy*9"
)
VECTOR_USERBUF = (
    "eJw9zEELwiAcBfDv4jmGs1lu0GkRUd0chMeWbv2zDdEZg*i7J5a92-s9eC-UnHj2VBZViGQYLWIHqcYJOoic0El9MQYkqvIC"
    "--Jd1GzAquCUUvLXCYZoq7LMMUnqnbKt78KvOB-u6Rr6AG299PTq3YP3bOvWR0HZcOO6sbMf7c5TLLXUtdgXwDbo-QEmHTZF"
)
VECTOR_TIME = 1569910200


def test_decodes_tencent_vector() -> None:
    info = usersig.decode(VECTOR_PLAIN)
    assert info.identifier == "0"
    assert info.sdkappid == APP
    assert info.time == VECTOR_TIME
    assert info.expire == 15552000
    assert info.sig == "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY="
    assert info.userbuf is None


def test_verifies_tencent_vectors_with_and_without_userbuf() -> None:
    now = VECTOR_TIME + 10
    plain = usersig.verify(VECTOR_PLAIN, sdkappid=APP, key=KEY, identifier="0", now=now)
    with_buf = usersig.verify(VECTOR_USERBUF, sdkappid=APP, key=KEY, identifier="0", now=now)
    assert plain.userbuf is None
    assert with_buf.userbuf == b"abc"
    assert with_buf.sig == "bC3u5cuslSg8Ds7KY58mhSkTrxunrFu50dkdkCYH4i8="


def test_sign_reproduces_vector_hmacs() -> None:
    ours = usersig.decode(usersig.sign(APP, KEY, "0", expire=15552000, now=VECTOR_TIME))
    assert ours.sig == "CpjuBdQs9ZwnuGAJR8onoOeI9fweX2vIMMY94iOJWJY="
    with_buf = usersig.sign(APP, KEY, "0", expire=15552000, now=VECTOR_TIME, userbuf=b"abc")
    assert usersig.decode(with_buf).sig == "bC3u5cuslSg8Ds7KY58mhSkTrxunrFu50dkdkCYH4i8="
    extra = usersig.sign(APP, KEY, "xiaojun", expire=86400, now=1700000000)
    assert usersig.decode(extra).sig == "SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc="


@pytest.mark.parametrize("identifier", ["administrator", "user01", "@RBT#helper", "用户"])
def test_hmac_identical_to_official_package(identifier: str) -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig(identifier, 86400)
    theirs = usersig.decode(official)
    ours = usersig.decode(usersig.sign(APP, KEY, identifier, expire=86400, now=theirs.time))
    assert ours == theirs  # identifier, sdkappid, time, expire and the HMAC itself


def test_verify_accepts_official_package_sigs() -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig_with_userbuf("user01", 3600, b"buf")
    info = usersig.verify(official, sdkappid=APP, key=KEY, identifier="user01")
    assert info.userbuf == b"buf"


def test_official_package_json_shape_matches_ours() -> None:
    """Same keys in the same order; whitespace may differ (reference §6.1)."""
    official = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("u", 60)
    ours = usersig.sign(APP, KEY, "u", expire=60)

    def keys(sig: str) -> list[str]:
        raw = sig.translate(str.maketrans("*-_", "+/="))
        return list(orjson.loads(zlib.decompress(base64.b64decode(raw))))

    assert keys(official) == keys(ours)


def _problem(sig: str, **kwargs: object) -> UserSigProblem:
    args: dict[str, object] = {"sdkappid": APP, "key": KEY, "identifier": "user01"} | kwargs
    with pytest.raises(UserSigError) as caught:
        usersig.verify(sig, **args)  # type: ignore[arg-type]
    return caught.value.problem


def test_verify_rejects_another_key() -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(APP, "another-secret-key").gen_sig("user01")
    assert _problem(official) is UserSigProblem.BAD_SIGNATURE


def test_verify_rejects_another_user() -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("user02")
    assert _problem(official) is UserSigProblem.OTHER_USER


def test_verify_rejects_another_app() -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(1400000001, KEY).gen_sig("user01")
    assert _problem(official) is UserSigProblem.OTHER_APP


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_verify_rejects_truncated(cut: int) -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("user01")
    data = official.rstrip("_")  # "_" is base64 padding: dropping it truncates nothing
    assert _problem(data[:-cut]) is UserSigProblem.MALFORMED


@pytest.mark.parametrize("junk", ["", "not a sig", "eJ!!!", "A" * 5000])
def test_verify_rejects_garbage(junk: str) -> None:
    assert _problem(junk) is UserSigProblem.MALFORMED


def test_verify_rejects_expired() -> None:
    sig = usersig.sign(APP, KEY, "user01", expire=60, now=1_700_000_000)
    assert usersig.verify(sig, sdkappid=APP, key=KEY, identifier="user01", now=1_700_000_060)
    assert _problem(sig, now=1_700_000_061) is UserSigProblem.EXPIRED


def test_tampered_expiry_fails_hmac() -> None:
    sig = usersig.sign(APP, KEY, "user01", expire=60, now=1_700_000_000)
    raw = sig.translate(str.maketrans("*-_", "+/="))
    doc = orjson.loads(zlib.decompress(base64.b64decode(raw)))
    doc["TLS.expire"] = 10**9
    forged = base64.b64encode(zlib.compress(orjson.dumps(doc))).decode()
    forged = forged.translate(str.maketrans("+/=", "*-_"))
    assert _problem(forged, now=1_700_001_000) is UserSigProblem.BAD_SIGNATURE


def test_sdkappid_as_string_is_accepted() -> None:
    """Seen in the wild: ``TLS.sdkappid`` as a JSON string (reference §6.2)."""
    sig = usersig.sign(APP, KEY, "user01", expire=60, now=1_700_000_000)
    raw = sig.translate(str.maketrans("*-_", "+/="))
    doc = orjson.loads(zlib.decompress(base64.b64decode(raw)))
    doc["TLS.sdkappid"] = str(APP)
    again = base64.b64encode(zlib.compress(orjson.dumps(doc))).decode()
    again = again.translate(str.maketrans("+/=", "*-_"))
    usersig.verify(again, sdkappid=APP, key=KEY, identifier="user01", now=1_700_000_001)


@given(identifier=st.text(min_size=1, max_size=32), expire=st.integers(1, 10**9))
def test_sign_verify_round_trip(identifier: str, expire: int) -> None:
    sig = usersig.sign(APP, KEY, identifier, expire=expire, now=1_700_000_000)
    info = usersig.verify(sig, sdkappid=APP, key=KEY, identifier=identifier, now=1_700_000_000)
    assert (info.identifier, info.expire) == (identifier, expire)
    assert set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_")


def test_signer_caches_then_renews_before_expiry() -> None:
    now = [1_700_000_000.0]
    signer = usersig.UserSigSigner(APP, KEY, expire=1000, clock=lambda: now[0])
    first = signer.get("administrator")
    now[0] += 700
    assert signer.get("administrator") == first  # 30 % of the lifetime left: still cached
    now[0] += 100
    renewed = signer.get("administrator")
    assert renewed != first  # under 25 % left: renewed, well before expiry
    assert usersig.decode(renewed).time == 1_700_000_800
    signer.invalidate("administrator")
    now[0] += 1
    assert signer.get("administrator") != renewed
    assert "5bd2" not in repr(signer)
