"""Networks, bids, clearing models for every coordination scheme, settlement, grid
assessment and KPIs of TSO-DSO flexibility markets."""
