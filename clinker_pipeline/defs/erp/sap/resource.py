"""How the SAP assets reach S/4HANA and IBP: live with a base URL, bundled payloads without."""

from __future__ import annotations

from typing import Any, ClassVar

from clinker_pipeline.lib.env_resource import Env
from clinker_pipeline.lib.source_resource import RETRY_ENV, SourceResource


class SapResource(SourceResource):
    """SAP S/4HANA and IBP over OData; with no base URL, the bundled wire-format payloads."""

    ENV: ClassVar = {
        **RETRY_ENV,
        "base_url": Env("SAP_BASE_URL"),
        "username": Env("SAP_USERNAME", secret=True),
        "password": Env("SAP_PASSWORD", secret=True),
        "sap_client": Env("SAP_CLIENT", "100"),  # the sap-client number
    }
    base_url: str | None = None
    username: str | None = None
    password: str | None = None
    sap_client: str | None = None
    verify_tls: bool = True
    timeout_s: float = 60.0
    deadline_s: float = 180.0

    @property
    def sample_mode(self) -> bool:
        return not self.setting("base_url")

    def client(self, **overrides: Any) -> Any:  # -> SapODataClient (lazily: requests stack)
        """The OData client; `overrides` (timeouts, policy) let `clinker health` probe cheaply."""
        from clinker_pipeline.defs.erp.sap.client import SapODataClient

        if self.sample_mode:
            return SapODataClient.sample()
        options = {
            "client": self.setting("sap_client") or None,
            "verify": self.verify_tls,
            "timeout": (10.0, self.timeout_s),
            "deadline_s": self.deadline_s,
            **overrides,
        }
        return SapODataClient(
            self.setting("base_url"),
            self.setting("username") or None,
            self.setting("password") or None,
            **options,
        )
