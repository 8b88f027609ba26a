"""Attack tests for issue #12: API key fixtures come from tests/api."""

from tests.api.conftest import api, api_client_for, make_key  # noqa: F401
from tests.campaigns.conftest import campaign_factory, make_audience, relay_server, template  # noqa: F401
from tests.delivery.conftest import make_relay, sink  # noqa: F401
