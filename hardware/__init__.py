"""Device profiles, the simulated Chengdu inventory and protocol-true device simulators."""
