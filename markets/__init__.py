"""Networks, bids, clearing models for every coordination scheme, settlement, grid
assessment and KPIs of TSO-DSO flexibility markets.

Where things are: cases and networks (``case_loading``, ``transmission``, ``distribution``,
``system``); bids (``bids``); the schemes as declared stages (``layouts``), the constraints
of the clearing models (``constraints``), one market layer (``market_layer``) and how it
splits equally priced bids (``ties``), prequalification and bid aggregation, a scheme built
and cleared (``schemes``, ``pipeline``), its result and statistics (``results``, ``statistics``); payments (``settlement``); the ex-post grid
assessment (``grid_state``, ``grid_assessment``) and KPIs (``kpis``).
"""
