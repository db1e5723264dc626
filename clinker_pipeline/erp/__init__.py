"""From ERP records (SAP plants and stock, IBP demand, Oracle capacity) to the planner's tables."""
