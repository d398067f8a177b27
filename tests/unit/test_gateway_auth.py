"""Tokens and roles: who may do what, and how refusals look."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import Role, TokenError, TokenVerifier, granted, mint_token
from foundation.settings import Settings

SECRET = "unit-test-secret-of-at-least-32-bytes!"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(auth={"jwt_secret": SECRET})


@pytest.fixture(scope="module")
def client(settings: Settings) -> TestClient:
    # No `with`: the lifespan (servers) does not run; auth is decided before any is needed.
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.mark.parametrize(("roles", "expected"), [
    ({Role.VIEWER}, {Role.VIEWER}),
    ({Role.RESPONDER}, {Role.RESPONDER, Role.VIEWER}),
    ({Role.ADMIN}, set(Role)),
    ({Role.INGEST}, {Role.INGEST}),
    ({Role.INGEST, Role.VIEWER}, {Role.INGEST, Role.VIEWER}),
    (set(), set()),
])
def test_roles_nest(roles: set[Role], expected: set[Role]) -> None:
    assert granted(roles) == expected


def test_a_minted_token_verifies_to_its_subject_and_roles(settings: Settings) -> None:
    user = TokenVerifier(settings).verify(mint_token(settings, "alice", ["responder"]))
    assert user.sub == "alice"
    assert user.roles == {Role.RESPONDER}
    assert user.may(Role.VIEWER) and user.may(Role.RESPONDER)
    assert not user.may(Role.ADMIN) and not user.may(Role.INGEST)
    assert user.actor.model_dump(mode="json") == {"kind": "user", "id": "alice"}


def test_unknown_roles_are_ignored_not_granted(settings: Settings) -> None:
    token = jwt.encode({"sub": "bob", "roles": ["viewer", "superuser"], "iss": "warroom",
                        "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert TokenVerifier(settings).verify(token).roles == {Role.VIEWER}


def test_minting_refuses_unknown_roles(settings: Settings) -> None:
    with pytest.raises(ValueError):
        mint_token(settings, "alice", ["superuser"])


@pytest.mark.parametrize("claims_or_token", [
    {"sub": "a", "roles": ["viewer"], "iss": "warroom", "exp": 1},                  # expired
    {"sub": "a", "roles": ["viewer"], "iss": "elsewhere", "exp": 2**31},            # wrong issuer
    {"roles": ["viewer"], "iss": "warroom", "exp": 2**31},                          # no subject
    {"sub": "a", "roles": ["viewer"], "iss": "warroom"},                            # no expiry
    {"sub": "a", "roles": "viewer", "iss": "warroom", "exp": 2**31},                # roles not a list
    "not-a-jwt",
])
def test_untrustworthy_tokens_are_refused(settings: Settings, claims_or_token) -> None:
    token = claims_or_token if isinstance(claims_or_token, str) else jwt.encode(
        claims_or_token, SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        TokenVerifier(settings).verify(token)


def test_tokens_signed_otherwise_are_refused(settings: Settings) -> None:
    claims = {"sub": "a", "roles": ["admin"], "iss": "warroom", "exp": 2**31}
    other_secret = jwt.encode(claims, "another-secret-of-at-least-32-bytes!!", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (other_secret, unsigned):
        with pytest.raises(TokenError):
            TokenVerifier(settings).verify(token)


def test_rs256_tokens_verify_with_the_public_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = Settings(auth={"jwt_public_key": public})
    token = jwt.encode({"sub": "svc", "roles": ["viewer"], "iss": "warroom", "exp": 2**31}, key, algorithm="RS256")
    assert TokenVerifier(settings).verify(token).sub == "svc"


def test_an_app_without_a_key_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="jwt_secret"):
        create_app(Settings())


def test_no_token_is_401_problem(client: TestClient) -> None:
    response = client.get("/v1/services")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["code"] == "unauthorized" and body["status"] == 401 and body["type"] and body["title"]


def test_wrong_role_is_403_problem(client: TestClient, settings: Settings) -> None:
    response = client.get("/v1/services", headers={"Authorization": f"Bearer {mint_token(settings, 'p', ['ingest'])}"})
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    viewer = mint_token(settings, "v", ["viewer"])
    response = client.post("/v1/incidents", json={}, headers={"Authorization": f"Bearer {viewer}"})
    assert response.status_code == 403


def test_query_tokens_are_accepted_only_by_the_stream(client: TestClient, settings: Settings) -> None:
    token = mint_token(settings, "v", ["viewer"])
    assert client.get("/v1/services", params={"access_token": token}).status_code == 401

    class Disconnected:
        connected = False

    client.app.state.feed = Disconnected()
    client.app.state.pool = object()
    # Past auth, the stream refuses only because the (absent) feed is not connected.
    response = client.get("/v1/stream", params={"access_token": token})
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert client.get("/v1/stream").status_code == 401


def test_open_endpoints_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_a_verified_token_is_remembered_only_until_it_expires(settings: Settings) -> None:
    verifier = TokenVerifier(settings)
    token = mint_token(settings, "alice", ["viewer"], ttl_s=60)
    assert verifier.verify(token) is verifier.verify(token)  # served from memory the second time
    expired = jwt.encode({"sub": "a", "roles": ["viewer"], "iss": "warroom", "exp": int(time.time()) - 1},
                         SECRET, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(TokenError):
            verifier.verify(expired)
