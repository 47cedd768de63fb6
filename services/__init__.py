"""ENGS services: one sub-package per process (physics, orchestrator, oracle) plus the
command-line front end (:mod:`engs.services.cli`) that starts them."""
