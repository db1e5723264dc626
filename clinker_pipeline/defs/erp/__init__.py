"""ERP feeds as assets: SAP plants and stock, IBP demand, Oracle capacity."""
