"""A throwaway signing key for every test module of this package (made per session, never stored): exports built here
are signed with it and the runtime verifies with it, as a service given the team's key would. Module-scoped so that
module fixtures (runs, exports) see it too."""

from __future__ import annotations

import secrets

import pytest

TEST_KEY = secrets.token_hex(32)


@pytest.fixture(scope="module", autouse=True)
def _signing_key():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_SIGNING_KEY", TEST_KEY)
        mp.delenv("HARNESS_SIGNING_KEY_FILE", raising=False)
        yield TEST_KEY
