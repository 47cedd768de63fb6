"""Area neurochemistry: nuclei → projections → areas (seed 002), receptor homeostasis
(seed 000), sleep consolidation; the per-area rows of the published state. The ENGS owns
one :class:`~engs.services.orchestrator.areas.model.AreaNeurochemistry` (docs/areas.md)."""
