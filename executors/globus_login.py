"""Globus Compute credentials, checked without a network call and never by prompting.

`login_problem()` reads the SDK's token storage (without creating it) and the
`GLOBUS_COMPUTE_CLIENT_ID` / `GLOBUS_COMPUTE_CLIENT_SECRET` variables, so a missing login is
a `NotLoggedIn` error at once, never an interactive prompt. When stdin is not a terminal the
SDK's login flow is replaced by one that raises `NotLoggedIn`, so a token that turns out to
be bad later cannot prompt either.
"""

from __future__ import annotations

import os
import sys

from rasterflow.rasterize_core.errors import OptionalDependencyMissing, SubmitError

LOGIN_HELP = (
    "log in once on this machine with `globus-compute-endpoint login` (a browser link and a "
    "code to paste), or, for scripts and CI, set GLOBUS_COMPUTE_CLIENT_ID and "
    "GLOBUS_COMPUTE_CLIENT_SECRET to a Globus service client's id and secret"
)


class NotLoggedIn(SubmitError):
    """No usable Globus credentials: submitting would need an interactive login."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"not logged in to Globus Compute ({reason}): {LOGIN_HELP}")


def login_problem() -> str | None:
    """Why creating a Globus Compute client would need an interactive login, or None.

    Looks only at the environment and the SDK's token storage (`storage.db` in
    `$GLOBUS_COMPUTE_USER_DIR`, default `~/.globus_compute`): no network, no prompt, and
    nothing is created when the storage is missing.
    """
    client_id = os.environ.get("GLOBUS_COMPUTE_CLIENT_ID")
    secret = os.environ.get("GLOBUS_COMPUTE_CLIENT_SECRET")
    if secret and not client_id:
        return "GLOBUS_COMPUTE_CLIENT_SECRET is set but GLOBUS_COMPUTE_CLIENT_ID is not"
    if client_id and secret:
        return None  # a service client: its tokens come from the secret, never from a person
    try:
        import globus_sdk
        from globus_compute_sdk.sdk.compute_dir import get_compute_dir
    except ImportError as exc:
        raise OptionalDependencyMissing("globus", "Globus Compute", exc) from exc
    storage = get_compute_dir() / "storage.db"  # get_, not ensure_: creates nothing
    if not storage.is_file():
        return f"no stored login: {storage} does not exist"
    app = _globus_app(interactive=False)
    globus_sdk.ComputeClientV2(app=app)  # adds the service's scope requirements to the app
    if app.login_required():
        return f"the login stored in {storage} is missing, expired or lacks the scopes"
    return None


def _globus_app(interactive: bool):
    """The GlobusApp the SDK would build (`get_globus_app`), never prompting unless asked."""
    import platform

    from globus_compute_sdk.sdk.auth.globus_app import DEFAULT_CLIENT_ID, get_globus_app
    from globus_compute_sdk.sdk.auth.token_storage import get_token_storage
    from globus_sdk import GlobusAppConfig, UserApp
    from globus_sdk.login_flows import CommandLineLoginFlowManager

    client_id = os.environ.get("GLOBUS_COMPUTE_CLIENT_ID")
    if client_id and os.environ.get("GLOBUS_COMPUTE_CLIENT_SECRET"):
        return get_globus_app()  # ClientApp: no login flow at all

    class RefuseToPrompt(CommandLineLoginFlowManager):
        def run_login_flow(self, auth_parameters):
            raise NotLoggedIn("the stored login needs renewing and no terminal is attached")

    config = GlobusAppConfig(
        token_storage=get_token_storage(),
        request_refresh_tokens=True,
        login_flow_manager=None if interactive else RefuseToPrompt,
    )
    return UserApp(
        app_name=platform.node(), client_id=client_id or DEFAULT_CLIENT_ID, config=config
    )


def require_login() -> None:
    """Raise `NotLoggedIn` unless a client can be created without asking anyone."""
    problem = login_problem()
    if problem:
        raise NotLoggedIn(problem)


def compute_client():
    """A `globus_compute_sdk.Client` for the submission (after `require_login`)."""
    require_login()
    try:
        from globus_compute_sdk import Client
    except ImportError as exc:
        raise OptionalDependencyMissing("globus", "Globus Compute", exc) from exc

    interactive = sys.stdin is not None and sys.stdin.isatty()
    return Client(app=_globus_app(interactive))
