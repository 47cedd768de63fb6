"""The oracle process: the watchdog and the instance's one Prometheus exporter. Reads
every block, raises and clears interrupts in its own lane, never writes the control state."""
