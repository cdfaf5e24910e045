"""The engine: listen → window → predict → sample → play, with no devices and no clock, its
modes, its settings and controls, its statistics, and simulated time to run it offline."""
