"""SAP S/4HANA and IBP over OData: the client and its bundled sample payloads."""
